"""One interface over the three model files the host can play: .ckpt, .ts, ONNX directory.

The engine never touches torch or onnxruntime itself: it asks a ``Backend`` to map base
points to latents and latents to audio, always for a whole batch of pads at once
(one model call per re-render, never one per note).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowshot.errors import FlowshotError

_STAT_KEYS = ("macro_directions", "macro_std", "base_mean", "pad_latents", "pad_base", "base_quantiles", "base_mixing",
              "base_points", "base_spread")
# flowshot.model.latents.KERNEL_BANDWIDTH, for statistics written before it was stored
# (the audio process does not import torch).
_KERNEL_BANDWIDTH = 0.3


@dataclass
class LatentStats:
    """Latent statistics as numpy arrays (see ``flowshot.model.latents``).

    Args:
        macro_directions: [K, D] unit directions in the prior's base space.
        macro_std: [K] spread of the training points along each direction.
        base_mean: [D] mean of the training points in base space.
        macro_labels: K labels for the knobs.
        pad_latents: [P, D] cluster centres (latent space), or an empty [0, D].
        pad_base: [P, D] the same centres in base space.
        pad_classes: P class names.
        base_quantiles: [Q, D] per-dimension quantiles of the training sounds in base
            space (``flowshot.model.latents.base_quantiles``), or None for files exported
            before they were recorded (random draws then stay N(0, T^2)).
        base_mixing: [D, D] the correlation of the training sounds' normal scores as a
            Cholesky factor (``flowshot.model.latents.base_mixing``), or None (independent
            dimensions).
        base_points: [M, D] training sounds' base points for kernel draws, or None (random
            draws then go through ``base_quantiles``).
        base_spread: [D] their std per dimension.
        kernel_bandwidth: kernel draws add ``temperature * kernel_bandwidth * base_spread``
            times N(0, 1) noise to a random one of ``base_points``.
    """

    macro_directions: np.ndarray
    macro_std: np.ndarray
    base_mean: np.ndarray
    macro_labels: list[str] = field(default_factory=list)
    pad_latents: np.ndarray | None = None
    pad_base: np.ndarray | None = None
    pad_classes: list[str] = field(default_factory=list)
    base_quantiles: np.ndarray | None = None
    base_mixing: np.ndarray | None = None
    base_points: np.ndarray | None = None
    base_spread: np.ndarray | None = None
    kernel_bandwidth: float = _KERNEL_BANDWIDTH

    def random_base(self, rng: np.random.Generator, temperature: float) -> np.ndarray:
        """One random base point [D] as ``flowshot generate`` draws it: a kernel draw when the
        training sounds' points are stored (numpy twin of ``flowshot.model.latents.kernel_point``),
        else ``base_draw`` of ``temperature`` times N(0, 1) noise. ``rng`` gives the point's
        index first, then the noise."""
        d = self.base_mean.shape[0]
        if self.base_points is not None and self.base_spread is not None:
            index = int(rng.integers(0, len(self.base_points)))
            eps = rng.standard_normal(d)
            return self.base_points[index] + temperature * self.kernel_bandwidth * self.base_spread * eps
        return self.base_draw(rng.standard_normal(d) * temperature)

    def base_draw(self, eps: np.ndarray) -> np.ndarray:
        """Noise ``eps [D]`` (times the temperature) -> a random base point like the training
        sounds', per dimension and correlated as theirs are: numpy twin of ``flowshot.model.latents.marginal_base`` (the
        audio process does not import torch)."""
        table = self.base_quantiles
        if table is None or table.shape[0] < 2:
            return np.asarray(eps, dtype=np.float64)
        if self.base_mixing is not None:
            eps = self.base_mixing @ np.ravel(eps)
        q = table.shape[0]
        p = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in np.ravel(eps)]))
        pos = np.clip(p * (q - 1), 0.0, q - 1.0)
        lo = np.minimum(np.floor(pos), q - 2).astype(np.int64)
        w = pos - lo
        cols = np.arange(table.shape[1])
        a, b = table[lo, cols], table[lo + 1, cols]
        return a + (b - a) * w

    @classmethod
    def from_mapping(cls, stats: dict[str, Any] | None, latent_dim: int) -> "LatentStats | None":
        """Plain dict (tensors, lists or arrays) -> ``LatentStats``; None/empty -> None."""
        if not stats:
            return None

        def arr(key: str, ndim: int) -> np.ndarray | None:
            value = stats.get(key)
            if value is None:
                return None
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            a = np.asarray(value, dtype=np.float64)
            if a.size == 0:
                return None
            return a.reshape(-1, latent_dim) if ndim == 2 else a.reshape(-1)

        directions = arr("macro_directions", 2)
        if directions is None:
            directions = np.zeros((0, latent_dim))
        std = arr("macro_std", 1)
        if std is None:
            std = np.ones(len(directions))
        mean = arr("base_mean", 1)
        if mean is None:
            mean = np.zeros(latent_dim)
        return cls(
            macro_directions=directions,
            macro_std=std,
            base_mean=mean,
            macro_labels=[str(s) for s in stats.get("macro_labels") or []],
            pad_latents=arr("pad_latents", 2),
            pad_base=arr("pad_base", 2),
            pad_classes=[str(s) for s in stats.get("pad_classes") or []],
            base_quantiles=arr("base_quantiles", 2),
            base_mixing=arr("base_mixing", 2),
            **_kernel(arr("base_points", 2), arr("base_spread", 1), stats.get("kernel_bandwidth")),
        )


def _kernel(points: np.ndarray | None, spread: np.ndarray | None, bandwidth: Any) -> dict[str, Any]:
    """The kernel fields of ``LatentStats``: none unless points and a matching spread are there."""
    if points is None or spread is None or spread.shape[0] != points.shape[1]:
        return {}
    return {"base_points": points, "base_spread": spread,
            "kernel_bandwidth": _KERNEL_BANDWIDTH if bandwidth is None else float(np.asarray(bandwidth).reshape(-1)[0])}


class Backend:
    """What the engine needs from a model, whatever file it came from.

    Attributes:
        name: ``torch`` or ``onnx``.
        path: the model file or folder.
        sample_rate, length, latent_dim: the model's rate, one-shot length and latent size.
        stats: latent statistics, or None when the file carries none.
        has_inverse: False when ``latent_to_base`` is unavailable (ONNX has only the
            prior's forward direction).
        audio_settings: the checkpoint's ``AudioConfig`` fields (trim, normalisation...) as
            plain data; empty for files exported before they were recorded.
        note: one line for the user about how the model runs (why a .ts renders on torch,
            see ``flowshot.realtime.twin``), or "".
    """

    name = "?"
    has_inverse = True
    note = ""

    def __init__(self, path: Path, sample_rate: int, length: int, latent_dim: int, stats: LatentStats | None):
        self.path = path
        self.sample_rate = int(sample_rate)
        self.length = int(length)
        self.latent_dim = int(latent_dim)
        self.stats = stats
        self.render_rate = self.sample_rate  # rate of what ``render`` returns
        self.audio_settings: dict[str, Any] = {}

    def render(self, z: np.ndarray) -> np.ndarray:
        """Decode latents z [P, D] -> audio [P, L] float32 at ``render_rate``."""
        raise NotImplementedError

    def render_pads(self, z: np.ndarray) -> list[np.ndarray]:
        """Decode latents z [P, D] -> P separate float32 buffers [L] at ``render_rate``.

        Separate arrays, not rows of one block: a pad's buffer may outlive its siblings
        (a voice still playing it), and freeing one small array is cheap wherever it happens.
        """
        return [np.array(a, dtype=np.float32) for a in self.render(z)]

    def render_bases(self, u: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Base points u [P, D] -> (latents z [P, D], P buffers as ``render_pads``)."""
        z = self.base_to_latent(u)
        return z, self.render_pads(z)

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        """Prior flow forward: base points u [P, D] -> latents z [P, D]."""
        raise NotImplementedError

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        """Prior flow inverse: latents z [P, D] -> base points u [P, D]."""
        raise NotImplementedError

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """One-shot audio [L] at ``sample_rate`` -> its latent z [D] (posterior mode)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {self.path.name} ({self.sample_rate} Hz, {self.length} samples, D={self.latent_dim})"

    def close(self) -> None:
        """Release what the backend holds (a worker process); in-process backends hold nothing."""


class TorchBackend(Backend):
    """A flowshot checkpoint (.ckpt) or an exported TorchScript file (.ts)."""

    name = "torch"

    def __init__(self, path: Path, module: Any, sample_rate: int, length: int, latent_dim: int,
                 stats: LatentStats | None, scripted: bool):
        super().__init__(path, sample_rate, length, latent_dim, stats)
        import torch

        self._torch = torch
        self._m = module
        self._scripted = scripted
        self.twin_graphs: dict[str, bytes] = {}  # a .ts's stored ONNX twin (flowshot.realtime.twin)

    @property
    def module(self) -> Any:
        """The torch model: the deployed FlowVAE of a .ckpt, the ScriptModule of a .ts."""
        return self._m

    def _run(self, fn: Any, x: np.ndarray) -> np.ndarray:
        t = self._torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        with self._torch.inference_mode():
            return fn(t).detach().cpu().numpy()

    def render(self, z: np.ndarray) -> np.ndarray:
        fn = self._m.decode_latent if self._scripted else self._m.render
        return self._run(fn, z).reshape(len(z), -1)[:, : self.length].astype(np.float32)

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        return self._run(self._m.base_to_latent, u).astype(np.float64)

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        return self._run(self._m.latent_to_base, z).astype(np.float64)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        x = _fit_length(audio, self.length)[None, None, :]
        return self._run(self._m.embed, x)[0].astype(np.float64)


class OnnxBackend(Backend):
    """An ONNX export directory: encoder.onnx, decoder.onnx, prior.onnx, flowshot.json."""

    name = "onnx"
    has_inverse = False

    def __init__(self, path: Path, sessions: dict[str, Any], info: dict[str, Any], stats: LatentStats | None):
        super().__init__(path, info["sample_rate"], info["length"], info["latent_dim"], stats)
        self._s = sessions

    def _run(self, key: str, x: np.ndarray, prefer: str | None = None) -> np.ndarray:
        return run_session(self._s[key], x, prefer)

    def render(self, z: np.ndarray) -> np.ndarray:
        return self._run("decoder", z).reshape(len(z), -1)[:, : self.length].astype(np.float32)

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        return self._run("prior", u).astype(np.float64)

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        raise FlowshotError(
            f"{self.path}: the ONNX export has no inverse prior flow; use --backend torch with the .ts or .ckpt"
        )

    def encode(self, audio: np.ndarray) -> np.ndarray:
        x = _fit_length(audio, self.length)[None, None, :]
        return self._run("encoder", x, prefer="z")[0].astype(np.float64)


def run_session(sess: Any, x: np.ndarray, prefer: str | None = None) -> np.ndarray:
    """One onnxruntime call on the graph's one input: the output named ``prefer``, else the first."""
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    names = [o.name for o in sess.get_outputs()]
    return sess.run([prefer if prefer in names else names[0]], feed)[0]


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32).reshape(-1)[:length]
    return np.pad(a, (0, length - len(a))) if len(a) < length else a


def load_backend(path: str | Path, backend: str = "auto") -> Backend:
    """Open a model for the host, refusing broken files with a one-line ``FlowshotError``.

    Args:
        path: a flowshot checkpoint (.ckpt), an exported TorchScript file (.ts), or an
            ONNX export directory.
        backend: ``torch``, ``onnx`` or ``auto``. A directory plays on onnxruntime. A file
            plays on torch with ``torch``; otherwise its renders go to onnxruntime through
            its ONNX twin (``flowshot.realtime.twin``): ``auto`` falls back to torch where
            there is none (with ``note`` saying why), ``onnx`` refuses.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FlowshotError(f"model {p} does not exist; pass --model with a .ckpt, a .ts or an ONNX export folder")
    if backend not in ("auto", "torch", "onnx"):
        raise FlowshotError(f"--backend {backend!r} is unknown; choose torch or onnx")
    if p.is_dir():
        if backend == "torch":
            raise FlowshotError(f"{p} is a folder (ONNX export); use --backend onnx, or pass a .ts/.ckpt for torch")
        return _load_onnx(p)
    model = _load_ts(p) if p.suffix == ".ts" else _load_ckpt(p)
    if backend == "torch":
        return model
    from flowshot.realtime.twin import with_twin

    return with_twin(model, required=backend == "onnx")


def _load_ckpt(p: Path) -> TorchBackend:
    try:
        from flowshot.model.checkpoint import load_model
    except ImportError as err:  # pragma: no cover - only while the model package is incomplete
        raise FlowshotError(f"cannot load {p}: flowshot.model.checkpoint is unavailable ({err})") from None
    loaded = load_model(p)  # raises FlowshotError for foreign/corrupt files
    cfg = loaded.config
    meta = loaded.meta or {}
    raw_stats = meta.get("latent_stats")
    if raw_stats is None and isinstance(meta.get("flowshot"), dict):
        raw_stats = meta["flowshot"].get("latent_stats")
    d = cfg.model.latent_dim
    from flowshot.export.ts import inference_model

    # The deployed form (weight norm and snake alphas folded): the same function, faster.
    model = inference_model(loaded)
    backend = TorchBackend(p, model, cfg.audio.sample_rate, cfg.audio.length, d,
                           LatentStats.from_mapping(raw_stats, d), scripted=False)
    backend.audio_settings = asdict(cfg.audio)
    return backend


_TS_METHODS = ("decode_latent", "base_to_latent", "latent_to_base", "embed", "get_info")


def _load_ts(p: Path) -> TorchBackend:
    import torch

    from flowshot.export.ts import TWIN_MEMBERS

    extra = {member: "" for member in TWIN_MEMBERS.values()}  # filled in by the load; b"" when absent
    try:
        m = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as err:  # torch raises many types for a bad archive
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FlowshotError(f"{p} is not a loadable TorchScript file ({first}); re-export it with `flowshot export ts`") from None
    missing = [name for name in _TS_METHODS if not hasattr(m, name)]
    if missing:
        raise FlowshotError(f"{p} lacks the host methods {', '.join(missing)}; export it with `flowshot export ts`")
    try:
        info = [int(v) for v in m.get_info()]
        sr, length, d = info[0], info[1], info[2]
        buffers = dict(m.named_buffers())
        raw = {k: buffers[k] for k in _STAT_KEYS if k in buffers}
        raw["macro_labels"] = list(m.get_macro_labels()) if hasattr(m, "get_macro_labels") else []
        raw["pad_classes"] = list(m.get_pad_classes()) if hasattr(m, "get_pad_classes") else []
        if hasattr(m, "kernel_bandwidth"):
            raw["kernel_bandwidth"] = float(m.kernel_bandwidth)
    except Exception as err:
        raise FlowshotError(f"{p}: get_info/buffers failed ({type(err).__name__}); re-export it with `flowshot export ts`") from None
    m.eval()
    backend = TorchBackend(p, m, sr, length, d, LatentStats.from_mapping(raw, d), scripted=True)
    backend.audio_settings = _json_object(getattr(m, "audio_config", "{}"))
    backend.twin_graphs = {name: bytes(extra[member]) for name, member in TWIN_MEMBERS.items()}
    return backend


def _load_onnx(p: Path) -> Backend:
    files = {k: p / f"{k}.onnx" for k in ("encoder", "decoder", "prior")}
    meta_path = p / "flowshot.json"
    missing = [f.name for f in [*files.values(), meta_path] if not f.is_file()]
    if missing:
        raise FlowshotError(f"ONNX folder {p} lacks {', '.join(missing)}; export it with `flowshot export onnx`")
    try:
        info = json.loads(meta_path.read_text())
        int(info["sample_rate"]), int(info["length"]), int(info["latent_dim"])
    except (ValueError, KeyError, TypeError) as err:
        raise FlowshotError(f"{meta_path} is not a flowshot ONNX description ({err}); re-export the folder") from None
    try:
        from flowshot.export.onnx import make_session
    except ImportError:
        make_session = None
    sessions = {}
    for key, f in files.items():
        try:
            if make_session is not None:
                sessions[key] = make_session(f, threads=1)
            else:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                sessions[key] = ort.InferenceSession(str(f), opts, providers=["CPUExecutionProvider"])
        except FlowshotError:
            raise
        except Exception as err:
            raise FlowshotError(f"{f} is not a loadable ONNX graph ({type(err).__name__}); re-export the folder") from None
    raw = info.get("latent_stats", info)
    backend = OnnxBackend(p, sessions, info, LatentStats.from_mapping(raw, int(info["latent_dim"])))
    audio = (info.get("config") or {}).get("audio")
    backend.audio_settings = dict(audio) if isinstance(audio, dict) else {}
    return backend


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
