"""The host's model worker process: pads come back through shared memory, equal to an
in-process render; the host process itself stays free of torch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
            t0 = time.perf_counter()
            pads = remote.render_pads(z)
            call = time.perf_counter() - t0
            assert 0 < remote.last_compute_s < call  # the worker's own part of the call
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


def process_state(pid: int) -> str:
    """The one-letter state of a process ("T" stopped, "S" sleeping...), "gone" when it is
    no more (reaped, or a zombie that only waits to be)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    return "gone" if state in ("Z", "X") else state


def wait_for_state(pid: int, state: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while process_state(pid) != state and time.monotonic() < deadline:
        time.sleep(0.005)
    return process_state(pid) == state


def test_a_held_worker_is_stopped_and_finishes_its_render_after(worker_ckpt: Path) -> None:
    """``hold`` stops the worker process: a render asked for meanwhile waits, then comes
    back equal to an unheld one when the hold ends; nested holds resume at the outermost."""
    import threading

    remote = ProcessBackend(worker_ckpt)
    try:
        u = np.random.default_rng(2).standard_normal((1, remote.latent_dim))
        _, (want,) = remote.render_bases(u)
        got: list[np.ndarray] = []
        with remote.hold():
            with remote.hold():
                assert wait_for_state(remote.pid, "T")  # a signal lands a moment later
            time.sleep(0.05)
            assert process_state(remote.pid) == "T"  # the inner exit does not resume it
            asker = threading.Thread(target=lambda: got.extend(remote.render_bases(u)[1]))
            asker.start()
            asker.join(0.5)
            assert asker.is_alive() and not got
        asker.join(10)
        assert process_state(remote.pid) != "T"
        np.testing.assert_array_equal(got[0], want)
    finally:
        remote.close()


LAUNCHER = """
import ctypes, os, signal, subprocess, sys, time
from test_realtime_worker import process_state
# Made a subreaper, this process becomes the parent of the host's orphans. The host gets
# its own process group, which stays non-orphaned through this process: so the kernel's
# SIGHUP to stopped members of orphaned groups does not end the worker, and only what
# flowshot does can.
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
host = subprocess.Popen([sys.executable, sys.argv[1]], stdout=subprocess.PIPE, text=True, process_group=0)
pid = int(host.stdout.readline())
host.wait()
deadline = time.monotonic() + 10
while process_state(pid) != "gone" and time.monotonic() < deadline:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    time.sleep(0.05)
print(host.returncode, process_state(pid))
if process_state(pid) != "gone":
    os.kill(pid, signal.SIGKILL)
"""


def test_a_worker_held_when_its_host_is_killed_dies_too(worker_ckpt: Path, tmp_path: Path) -> None:
    """A host killed while it holds its worker stopped must not leave that process stopped
    for ever (it can no longer see its pipe close)."""
    host = tmp_path / "host.py"
    host.write_text(
        "import os, signal\n"
        "from flowshot.realtime.worker import ProcessBackend\n"
        "if __name__ == '__main__':\n"  # the worker is spawned: it imports this file
        f"    b = ProcessBackend({str(worker_ckpt)!r})\n"
        "    held = b.hold()\n"  # kept: a dropped hold resumes the worker
        "    held.__enter__()\n"
        "    print(b.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(launcher), str(host)], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == ["-9", "gone"], out.stdout + out.stderr[-2000:]


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
