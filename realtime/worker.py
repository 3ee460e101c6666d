"""Run the model in a separate process so the audio process's GIL stays free.

The audio callback and the MIDI callback run on real-time JACK threads but must take the
GIL; a render thread in the same process would hold it for long stretches and, preempted
by the OS while holding it, make those threads miss their deadlines (xruns). A worker
process has its own interpreter: the host only waits on a pipe (GIL released) and copies
finished buffers, already resampled to the device rate.

Rendered audio comes back through shared memory, not the pipe: unpickling megabytes of
pads holds the host's GIL for milliseconds (buffer growth, copies, page faults), while a
numpy copy out of shared memory releases it. The pipe carries only requests and shapes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing import shared_memory
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.backends import Backend, LatentStats, load_backend


def _lower_priority(nice: int) -> None:
    """Raise the niceness of every thread of this process by ``nice``.

    On Linux niceness belongs to a thread, not the process: ``os.nice`` would leave the
    threads numpy's BLAS has already started at normal priority. Threads started later
    inherit it from the one that starts them.
    """
    try:
        tasks = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: at least this thread
        tasks = [0]
    for tid in tasks:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:
            pass  # a thread that has just ended


def _die_with_parent() -> None:
    """Have the kernel kill this process when the host that started it dies.

    A worker the host holds stopped (``ProcessBackend.hold``) cannot notice its pipe
    closing, so a host killed mid-hold would leave it stopped for ever; SIGKILL ends even
    a stopped process. Linux only (prctl); elsewhere the pipe's EOF is all there is.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _serve(conn: Any, path: str, kind: str, render_rate: int, threads: int, nice: int) -> None:
    _die_with_parent()
    if nice > 0:
        _lower_priority(nice)  # before torch starts its threads, so they inherit it
    import torch

    torch.set_num_threads(threads)
    try:
        b = load_backend(path, kind)
    except FlowshotError as err:
        conn.send(("err", str(err)))
        return
    except Exception as err:  # pragma: no cover - unexpected model failure
        conn.send(("err", f"{path}: {type(err).__name__}: {err}"))
        return
    stats = None if b.stats is None else asdict(b.stats)
    render_rate = render_rate or b.sample_rate

    def render(z: np.ndarray) -> np.ndarray:
        audio = b.render(z)
        if render_rate != b.sample_rate:
            import soxr

            audio = np.stack([soxr.resample(a, b.sample_rate, render_rate) for a in audio])
        return np.asarray(audio, dtype=np.float32)

    render_length = render(np.zeros((1, b.latent_dim))).shape[1]
    conn.send(("ready", {"name": b.name, "sample_rate": b.sample_rate, "length": b.length,
                         "latent_dim": b.latent_dim, "has_inverse": b.has_inverse, "stats": stats,
                         "describe": b.describe(), "render_length": render_length,
                         "audio_settings": b.audio_settings, "note": b.note}))
    ops = {"b2l": b.base_to_latent, "l2b": b.latent_to_base, "encode": b.encode}
    segment: shared_memory.SharedMemory | None = None  # the host's current hand-off buffer
    while True:
        try:
            op, arg = conn.recv()
        except EOFError:
            break
        if op == "close":
            break
        try:
            if op in ("render", "render_bases"):
                # render_bases runs the prior flow first: one round trip instead of two
                # per re-render, which is most of a single pad's overhead.
                x, name = arg
                started = time.perf_counter()
                z = b.base_to_latent(x) if op == "render_bases" else x
                audio = render(z)
                if segment is None or segment.name != name:
                    if segment is not None:
                        segment.close()
                    segment = shared_memory.SharedMemory(name=name)
                np.ndarray(audio.shape, np.float32, buffer=segment.buf)[...] = audio
                # The worker's own time comes back with the pads, so the host can tell the
                # model (and resampling) from the hand-off around it.
                conn.send(("ok", (audio.shape, z, time.perf_counter() - started)))
            else:
                conn.send(("ok", ops[op](arg)))
        except FlowshotError as err:
            conn.send(("err", str(err)))
        except Exception as err:
            conn.send(("err", f"model call {op} failed: {type(err).__name__}: {err}"))
    if segment is not None:
        segment.close()


class ProcessBackend(Backend):
    """A ``Backend`` whose model lives in a worker process.

    Args:
        path, kind: as for ``load_backend``.
        render_rate: rate ``render`` returns (resampled in the worker).
        threads: torch threads in the worker.
        nice: how much lower than normal the worker's CPU priority is (0 = normal); the
            host's background worker uses it so its renders yield to the lead worker's.
    """

    def __init__(self, path: str | Path, kind: str = "auto", render_rate: int | None = None, threads: int = 1,
                 nice: int = 0):
        ctx = mp.get_context("spawn")  # never fork a process that has torch threads running
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(path), kind, int(render_rate or 0), threads, int(nice)),
                                 name="flowshot-model", daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()  # render thread and OSC thread may both call
        try:
            status, info = self._conn.recv()
        except EOFError:
            raise FlowshotError(f"the model worker for {path} exited while loading; try --backend torch with a .ts") from None
        if status != "ready":
            self._proc.join(5)
            raise FlowshotError(info)
        stats = None
        if info["stats"] is not None:
            stats = LatentStats(**info["stats"])
        super().__init__(Path(path), info["sample_rate"], info["length"], info["latent_dim"], stats)
        self.name = info["name"]
        self.has_inverse = info["has_inverse"]
        self.render_rate = int(render_rate or info["sample_rate"])
        self.render_length = int(info["render_length"])
        self.audio_settings = dict(info["audio_settings"])
        self._describe = info["describe"]
        self.note = info["note"]
        self._segment: shared_memory.SharedMemory | None = None  # grown to the largest batch asked for
        self.last_compute_s: float | None = None  # the last render's time inside the worker
        self._held = 0  # nesting depth of hold(); the process is stopped while > 0
        self._hold_lock = threading.Lock()

    def _call(self, op: str, arg: Any) -> Any:
        with self._lock:
            return self._call_locked(op, arg)

    def _call_locked(self, op: str, arg: Any) -> Any:
        try:
            self._conn.send((op, arg))
            status, value = self._conn.recv()
        except (EOFError, BrokenPipeError, OSError):
            raise FlowshotError("the model worker process died; restart flowshot realtime") from None
        if status != "ok":
            raise FlowshotError(value)
        return value

    def render(self, z: np.ndarray) -> np.ndarray:
        """Latents z [P, D] -> audio [P, L'] float32 at ``render_rate``."""
        return np.stack(self.render_pads(z))

    def render_pads(self, z: np.ndarray) -> list[np.ndarray]:
        """Latents z [P, D] -> P float32 buffers [L'] at ``render_rate``, via shared memory."""
        return self._render("render", z)[1]

    def render_bases(self, u: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Base points u [P, D] -> (latents, buffers) in one request to the worker."""
        return self._render("render_bases", u)

    def _render(self, op: str, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x = np.asarray(x, dtype=np.float64)
        with self._lock:  # the segment is this call's until its pads are copied out
            need = max(1, len(x)) * self.render_length * 4
            if self._segment is None or self._segment.size < need:
                self._release_segment()
                self._segment = shared_memory.SharedMemory(create=True, size=need)
            shape, z, self.last_compute_s = self._call_locked(op, (x, self._segment.name))
            block = np.ndarray(shape, np.float32, buffer=self._segment.buf)
            pads = [np.empty(shape[1], np.float32) for _ in range(shape[0])]
            for out, row in zip(pads, block):
                np.copyto(out, row)  # a plain copy releases the GIL
            del block  # no view may outlive the segment
        return np.asarray(z, dtype=np.float64), pads

    def _release_segment(self) -> None:
        if self._segment is not None:
            self._segment.close()
            self._segment.unlink()
            self._segment = None

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        return self._call("b2l", np.asarray(u, dtype=np.float64))

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        return self._call("l2b", np.asarray(z, dtype=np.float64))

    def encode(self, audio: np.ndarray) -> np.ndarray:
        return self._call("encode", np.asarray(audio, dtype=np.float32))

    def describe(self) -> str:
        return self._describe

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Stop the worker process for the length of a ``with`` block, mid-render if need be.

        The host holds its background worker while the lead worker answers a knob move:
        a model call cannot be interrupted, and in the real-time benchmark the knob's
        render took 8 to 12 ms at worst beside a background render, 7 to 8 held
        (docs/benchmarks.md). A call to a held worker waits until the block ends; its
        render then finishes as if nothing happened. Nested holds resume at the
        outermost exit.
        """
        with self._hold_lock:
            if self._held == 0:
                self._signal(signal.SIGSTOP)
            self._held += 1
        try:
            yield
        finally:
            with self._hold_lock:
                self._held = max(0, self._held - 1)  # close() may have reset it meanwhile
                if self._held == 0:
                    self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self._proc.pid, sig)
        except (ProcessLookupError, TypeError):
            pass  # the worker is gone; its next call says so

    @property
    def pid(self) -> int | None:
        """The worker process's id (the live panel shows its CPU use)."""
        return self._proc.pid

    def close(self) -> None:
        with self._hold_lock:  # a stopped worker would never read the close request
            self._held = 0
            self._signal(signal.SIGCONT)
        try:
            with self._lock:
                self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
        with self._lock:
            self._release_segment()
