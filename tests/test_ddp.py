"""Two-process DDP training on the CPU (gloo), through Lightning's own DDP strategy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowshot.model.checkpoint import read_checkpoint

STEPS = 5


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "flowshot", "train", "builtin:drums", "--preset", "tiny",
        "--devices", "2", "--accelerator", "cpu", "--strategy", "ddp", "--max-steps", str(STEPS),
        "--out", str(run), "--cache-dir", str(tmp_path / "cache"),
        "--set", "train.builtin_size=32", "--set", "train.val_every=5",
        # Steps 4 and 5 are adversarial: two backward passes per step must work under DDP too.
        "--set", "loss.adversarial_start=3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "world size 2" in log
    # Lightning's launcher started a second process, which joined as rank 1 of 2.
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log, log[-3000:]
    ckpt = read_checkpoint(run / "last.ckpt")
    assert ckpt["flowshot"]["step"] == STEPS
    assert ckpt["global_step"] == 3 + 2 * (STEPS - 3)
    # Only rank 0 writes: one validation line per validation, no duplicates from rank 1.
    lines = (run / "validation.jsonl").read_text().splitlines()
    assert len(lines) == 2
