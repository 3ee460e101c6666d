"""Shared fixtures: a real, briefly trained tiny checkpoint for export / real-time / evaluation."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import torch

# The suite's caches (preprocessed data, the host's ONNX twins of checkpoints) stay out of
# the user's ~/.cache; host subprocesses inherit the variable and share the folder.
_CACHE = tempfile.mkdtemp(prefix="flowshot-test-cache-")
os.environ["FLOWSHOT_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

# Enough steps for a checkpoint whose sounds differ from random init, few enough for ~20 s.
TINY_STEPS = 40
TINY_BUILTIN_SIZE = 64


def train_tiny(run_dir: Path, steps: int, *extra: str, cache_dir: Path | None = None) -> int:
    """``flowshot train builtin:drums --preset tiny`` in-process, on one thread; returns the exit code."""
    from flowshot.cli import main

    argv = [
        "train", "builtin:drums", "--preset", "tiny", "--max-steps", str(steps), "--out", str(run_dir),
        "--accelerator", "cpu", "--set", f"train.builtin_size={TINY_BUILTIN_SIZE}",
    ]
    if cache_dir is not None:
        argv += ["--cache-dir", str(cache_dir)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machines share two cores between many jobs
    try:
        return main(argv + list(extra))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (the machine's two cores are shared), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of ``last.ckpt`` of the tiny preset trained for 40 steps on 64 builtin drums."""
    root = tmp_path_factory.mktemp("tiny_run")
    run_dir = root / "run"
    rc = train_tiny(
        run_dir, TINY_STEPS, "--set", f"train.val_every={TINY_STEPS}", "--set", f"train.ckpt_every={TINY_STEPS}",
        cache_dir=root / "cache",
    )
    ckpt = run_dir / "last.ckpt"
    assert rc == 0 and ckpt.is_file(), f"tiny training failed (exit code {rc})"
    return ckpt
