"""The host's model worker process: pads come back through shared memory, equal to an
in-process render; the host process itself stays free of torch."""

from __future__ import annotations

import subprocess
import sys
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest
import soxr

from flowshot.realtime.backends import load_backend
from flowshot.realtime.worker import ProcessBackend

from test_engine import checkpoint_for_tests  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def worker_ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_for_tests(request, tmp_path_factory)


def test_worker_pads_equal_in_process_render_at_the_device_rate(worker_ckpt: Path) -> None:
    local = load_backend(worker_ckpt)
    rate = 11025  # not the model's 8000 Hz: the worker resamples
    remote = ProcessBackend(worker_ckpt, render_rate=rate)
    try:
        rng = np.random.default_rng(0)
        for n in (3, 16, 5):  # the shared segment grows for 16 and is reused for 5
            z = rng.standard_normal((n, local.latent_dim))
            pads = remote.render_pads(z)
            want = [soxr.resample(a, local.sample_rate, rate).astype(np.float32) for a in local.render(z)]
            assert len(pads) == n and remote.render_length == len(want[0])
            assert remote.audio_settings == local.audio_settings and remote.audio_settings["trim_db"] > 0
            for got, ref in zip(pads, want):
                assert got.dtype == np.float32 and got.base is None
                np.testing.assert_allclose(got, ref, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
        name = remote._segment.name
        assert remote._segment.size >= 16 * remote.render_length * 4
    finally:
        remote.close()
    with pytest.raises(FileNotFoundError):  # close() unlinked the segment
        shared_memory.SharedMemory(name=name)


def test_background_worker_runs_at_lower_priority_and_renders_the_same(worker_ckpt: Path) -> None:
    """The host's second worker is niced (its threads too), and renders what the first does."""
    import os

    lead = ProcessBackend(worker_ckpt)
    background = ProcessBackend(worker_ckpt, nice=10)
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, lead.pid) == mine
        tasks = [int(t) for t in os.listdir(f"/proc/{background.pid}/task")]
        assert len(tasks) > 1 and all(os.getpriority(os.PRIO_PROCESS, t) == min(19, mine + 10) for t in tasks)
        u = np.random.default_rng(1).standard_normal((2, lead.latent_dim))
        (za, pa), (zb, pb) = lead.render_bases(u), background.render_bases(u)
        np.testing.assert_array_equal(za, zb)
        for a, b in zip(pa, pb):
            np.testing.assert_array_equal(a, b)
    finally:
        lead.close()
        background.close()


def test_worker_reports_a_bad_model_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ts"
    bad.write_bytes(b"not a model")
    from flowshot.errors import FlowshotError

    with pytest.raises(FlowshotError, match="broken.ts"):
        ProcessBackend(bad)


def test_the_live_host_process_does_not_load_torch() -> None:
    """The model runs in the worker; the audio process must stay small: torch's hundreds of
    thousands of objects would make every garbage collection there cost milliseconds."""
    code = (
        "import sys\n"
        "from flowshot.cli import build_parser\n"
        "build_parser()\n"
        "import flowshot.realtime.cli, flowshot.realtime.worker, flowshot.realtime.engine\n"
        "import flowshot.realtime.midi, flowshot.realtime.osc, flowshot.realtime.audio, flowshot.realtime.kit\n"
        "print(sorted(m for m in ('torch', 'lightning', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
