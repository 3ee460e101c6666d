"""Run the model in a separate process so the audio process's GIL stays free.

The audio callback and the MIDI callback run on real-time JACK threads but must take the
GIL; a render thread in the same process would hold it for long stretches and, preempted
by the OS while holding it, make those threads miss their deadlines (xruns). A worker
process has its own interpreter: the host only waits on a pipe (GIL released) and copies
finished buffers, already resampled to the device rate.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.backends import Backend, LatentStats, load_backend


def _serve(conn: Any, path: str, kind: str, render_rate: int, threads: int) -> None:
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
    conn.send(("ready", {"name": b.name, "sample_rate": b.sample_rate, "length": b.length,
                         "latent_dim": b.latent_dim, "has_inverse": b.has_inverse, "stats": stats,
                         "describe": b.describe()}))
    ops = {"b2l": b.base_to_latent, "l2b": b.latent_to_base, "encode": b.encode}
    while True:
        try:
            op, arg = conn.recv()
        except EOFError:
            return
        if op == "close":
            return
        try:
            if op == "render":
                audio = b.render(arg)
                if render_rate != b.sample_rate:
                    import soxr

                    audio = np.stack([soxr.resample(a, b.sample_rate, render_rate) for a in audio]).astype(np.float32)
                conn.send(("ok", audio))
            else:
                conn.send(("ok", ops[op](arg)))
        except FlowshotError as err:
            conn.send(("err", str(err)))
        except Exception as err:
            conn.send(("err", f"model call {op} failed: {type(err).__name__}: {err}"))


class ProcessBackend(Backend):
    """A ``Backend`` whose model lives in a worker process.

    Args:
        path, kind: as for ``load_backend``.
        render_rate: rate ``render`` returns (resampled in the worker).
        threads: torch threads in the worker.
    """

    def __init__(self, path: str | Path, kind: str = "auto", render_rate: int | None = None, threads: int = 1):
        ctx = mp.get_context("spawn")  # never fork a process that has torch threads running
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(path), kind, int(render_rate or 0), threads),
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
        self._describe = info["describe"]

    def _call(self, op: str, arg: Any) -> np.ndarray:
        with self._lock:
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
        return self._call("render", np.asarray(z, dtype=np.float64))

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        return self._call("b2l", np.asarray(u, dtype=np.float64))

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        return self._call("l2b", np.asarray(z, dtype=np.float64))

    def encode(self, audio: np.ndarray) -> np.ndarray:
        return self._call("encode", np.asarray(audio, dtype=np.float32))

    def describe(self) -> str:
        return self._describe

    def close(self) -> None:
        try:
            with self._lock:
                self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
