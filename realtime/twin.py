"""The ONNX twin of a torch model: the host's renders on onnxruntime, the rest on torch.

On one CPU thread onnxruntime renders a `small` one-shot in about half TorchScript's time,
with a shorter tail (docs/benchmarks.md), and a knob move reaches the ear one render later
(on a slow day TorchScript alone missed the 10 ms goal by 3 to 11 ms): the twin makes a .ts
or a .ckpt as quick as an ONNX folder. Its graphs come from the same weights. A .ts
written by `flowshot export ts` carries them (``flowshot.export.ts.TWIN_MEMBERS``); for a
.ckpt they are traced once and cached under the checkpoint's content hash. Encoding a sound and the inverse prior flow (a WAV loaded
into a pad, a morph) stay on torch: ONNX has no inverse, and neither is on a knob's path.
Every twin is compared with its torch model as it is loaded; one that disagrees is left
out, and the host plays on torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.backends import Backend, TorchBackend, run_session

# Bump when the traced graphs change for the same checkpoint (folding, layout, opset).
TWIN_VERSION = 1
GRAPHS = ("decoder", "prior")


class TwinBackend(Backend):
    """``render`` and ``base_to_latent`` through onnxruntime, everything else through torch.

    Args:
        torch_backend: the model as ``load_backend(path, "torch")`` opened it.
        sessions: {"decoder": session, "prior": session}.
        origin: where the graphs came from, for ``describe``.
    """

    name = "onnx+torch"

    def __init__(self, torch_backend: TorchBackend, sessions: dict[str, Any], origin: str):
        t = torch_backend
        super().__init__(t.path, t.sample_rate, t.length, t.latent_dim, t.stats)
        self.audio_settings = dict(t.audio_settings)
        self.torch = t
        self._s = sessions
        self.origin = origin

    def render(self, z: np.ndarray) -> np.ndarray:
        return run_session(self._s["decoder"], z).reshape(len(z), -1)[:, : self.length].astype(np.float32)

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        return run_session(self._s["prior"], u).astype(np.float64)

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        return self.torch.latent_to_base(z)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        return self.torch.encode(audio)

    def describe(self) -> str:
        return (f"onnxruntime+torch {self.path.name} ({self.sample_rate} Hz, {self.length} samples, "
                f"D={self.latent_dim}; renders on onnxruntime, {self.origin})")


def with_twin(backend: TorchBackend, required: bool = False) -> Backend:
    """``backend`` with its renders moved to onnxruntime, or ``backend`` itself where it cannot be.

    Args:
        backend: a torch backend of a .ts or .ckpt.
        required: raise instead of falling back (``--backend onnx`` given a file).
    Returns:
        a ``TwinBackend``, or ``backend`` with ``note`` saying why it stays on torch.
    """
    try:
        import onnxruntime  # noqa: F401

        if backend.path.suffix == ".ts":
            graphs = _stored_graphs(backend)
            try:
                twin = _checked(backend, graphs, "graphs stored in the .ts")
            except FlowshotError as err:
                raise FlowshotError(f"{err}; re-export it with `flowshot export ts`") from None
        else:
            twin = _checkpoint_twin(backend)
    except (FlowshotError, ImportError) as err:
        if required:
            raise FlowshotError(f"--backend onnx cannot play {backend.path}: {err}") from None
        backend.note = f"renders on torch: {err}"
        return backend
    return twin


def _stored_graphs(backend: TorchBackend) -> dict[str, bytes]:
    graphs = {name: graph for name, graph in backend.twin_graphs.items() if graph}
    if set(graphs) != set(GRAPHS):
        raise FlowshotError("the .ts carries no ONNX twin (exported before it had one, or with --no-onnx-twin); "
                            "re-export it with `flowshot export ts` for the quicker renders")
    return graphs


def _checkpoint_twin(backend: TorchBackend) -> TwinBackend:
    """The checkpoint's twin from the cache, traced into it first where it is missing or wrong."""
    folder = twin_cache_dir(backend.path)
    origin = "graphs traced from the checkpoint, cached"
    if all((folder / f"{name}.onnx").is_file() for name in GRAPHS):
        try:
            return _checked(backend, _read(folder), origin)
        except FlowshotError:
            shutil.rmtree(folder, ignore_errors=True)  # damaged or foreign: traced again below
    try:
        _build(backend, folder)
    except FlowshotError:
        raise
    except Exception as err:  # an unwritable cache, a graph the exporter cannot trace: play on torch
        raise FlowshotError(f"tracing its ONNX twin into {folder.parent} failed ({type(err).__name__}: {err})") from None
    return _checked(backend, _read(folder), origin)


def _read(folder: Path) -> dict[str, bytes]:
    return {name: (folder / f"{name}.onnx").read_bytes() for name in GRAPHS}


def _checked(backend: TorchBackend, graphs: dict[str, bytes], origin: str) -> TwinBackend:
    from flowshot.export.onnx import make_session

    sessions = {}
    for name, graph in graphs.items():
        try:
            sessions[name] = make_session(graph, threads=1)
        except FlowshotError:
            raise FlowshotError(f"onnxruntime does not load its ONNX {name}") from None
    twin = TwinBackend(backend, sessions, origin)
    _check(backend, twin)
    return twin


def twin_cache_dir(checkpoint: Path) -> Path:
    """Where the twin of ``checkpoint`` lives: the cache folder, keyed by the file's content."""
    from flowshot import __version__
    from flowshot.model.data import default_cache_dir

    digest = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"twin {TWIN_VERSION} flowshot {__version__}".encode())
    return default_cache_dir() / "onnx-twins" / digest.hexdigest()[:32]


def _build(backend: TorchBackend, folder: Path) -> None:
    """Trace the checkpoint's twin from the model ``backend`` already holds into ``folder``."""
    from flowshot.export.onnx import write_graphs

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Traced into a private folder, then renamed: a host killed mid-way, or a second worker
    # tracing the same checkpoint, never leaves a half-written twin where the next one looks.
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_graphs(backend.module, backend.length, backend.latent_dim, tmp, names=GRAPHS)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not another process's twin winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check(reference: TorchBackend, twin: TwinBackend) -> None:
    """The twin must give the torch model's latents and audio (``export.onnx.TOLERANCE``)."""
    from flowshot.export.onnx import TOLERANCE

    u = np.random.default_rng(0).standard_normal((2, reference.latent_dim)) * 0.5
    z_ref = reference.base_to_latent(u)
    a_ref = reference.render(z_ref)
    for what, want, run in (("prior", z_ref, lambda: twin.base_to_latent(u)), ("decoder", a_ref, lambda: twin.render(z_ref))):
        try:
            got = run()
        except Exception as err:  # onnxruntime's own exception types: a graph of another shape
            raise FlowshotError(f"its ONNX {what} does not run ({type(err).__name__})") from None
        if got.shape != want.shape:
            raise FlowshotError(f"its ONNX {what} gives {list(got.shape)}, the torch model {list(want.shape)}")
        err = float(np.max(np.abs(want - got))) / (float(np.max(np.abs(want))) + 1e-12)
        if not err <= TOLERANCE:
            raise FlowshotError(f"its ONNX {what} differs from the torch model by {err:.1e} of the peak (over {TOLERANCE:.0e})")
