"""Checkpoint files: atomic writes, safe reads, and rebuilding a model from the file alone.

A flowshot checkpoint is a Lightning checkpoint with one extra key::

    checkpoint["flowshot"] = {"format": 1, "config": cfg.to_dict(),
                              "data": {"sources": [...], "classes": [...]},
                              "step": generator_steps, "latent_stats": {...} or None}

Everything in it is plain data (tensors, numbers, strings, lists, dicts), so it is read
with ``torch.load(..., weights_only=True)``: opening a checkpoint never runs code from it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from flowshot.errors import FlowshotError
from flowshot.model.config import FlowshotConfig

FORMAT = 1
MODEL_PREFIX = "model."


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into a temporary file next to ``path``, then rename over it.

    The rename is atomic on one file system, so a crash or kill mid-write leaves the
    previous file intact (plus, at worst, a stray ``.tmp`` file) instead of a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _define_checkpoint_io() -> type:
    # Lightning takes ~10 s of CPU to import; load_model (export, real-time, evaluation)
    # must not pay for it, so the plugin class is built on first use (module __getattr__).
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Lightning checkpoint IO that writes atomically and reads with ``weights_only=True``.

        Lightning 2.6 passes ``weights_only=None`` on resume, which leaves the choice to
        ``torch.load``'s default; this plugin pins it to True whatever the caller asks for.
        """

        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
            if storage_options is not None:
                raise TypeError("AtomicCheckpointIO does not take storage_options")
            atomic_torch_save(checkpoint, path)

        def load_checkpoint(
            self,
            path: Any,
            map_location: Callable | None = lambda storage, loc: storage,
            weights_only: bool | None = None,
        ) -> dict[str, Any]:
            return read_checkpoint(path, map_location=map_location)

    AtomicCheckpointIO.__module__ = __name__
    AtomicCheckpointIO.__qualname__ = "AtomicCheckpointIO"
    return AtomicCheckpointIO


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``AtomicCheckpointIO`` (a Lightning ``TorchCheckpointIO``), defined on first access."""
    if name == "AtomicCheckpointIO":
        if name not in _LAZY:
            _LAZY[name] = _define_checkpoint_io()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def flowshot_meta(
    cfg: FlowshotConfig,
    sources: list[str],
    classes: list[str],
    step: int,
    latent_stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain-data block stored under ``checkpoint["flowshot"]``."""
    return {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "data": {"sources": [str(s) for s in sources], "classes": sorted(set(classes))},
        "step": int(step),
        "latent_stats": latent_stats,
    }


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file as plain data, with one-line errors for every bad case."""
    path = Path(path)
    if not path.is_file():
        raise FlowshotError(f"checkpoint {path} does not exist: pass the .ckpt file written by `flowshot train`")
    # torch.save writes a zip archive; anything else is not a checkpoint of ours (and
    # torch's legacy reader would report random bytes as a "weights only" refusal).
    if not zipfile.is_zipfile(path):
        raise FlowshotError(f"{path} is not a PyTorch checkpoint (not a torch.save archive); pass a .ckpt from `flowshot train`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise FlowshotError(
                f"checkpoint {path} contains pickled code or objects and was refused "
                "(flowshot loads plain weights only); use a checkpoint written by `flowshot train`"
            ) from None
        raise FlowshotError(f"{path} is not a PyTorch checkpoint (unreadable: {_first_line(err)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise FlowshotError(f"{path} is not a PyTorch checkpoint (unreadable: {_first_line(err)})") from None
    if not isinstance(ckpt, dict):
        raise FlowshotError(f"{path} is not a flowshot checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint.

    Args:
        model: the FlowVAE in eval mode, on the CPU.
        config: the config it was trained with.
        meta: the checkpoint's ``"flowshot"`` block (format, data sources/classes,
            step, latent_stats).
    """

    model: torch.nn.Module
    config: FlowshotConfig
    meta: dict[str, Any] = field(default_factory=dict)


def config_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> FlowshotConfig:
    """The FlowshotConfig stored in a checkpoint dict (errors name ``path``)."""
    meta = ckpt.get("flowshot")
    if not isinstance(meta, dict):
        raise FlowshotError(f"{path} is not a flowshot checkpoint (no 'flowshot' entry); train one with `flowshot train`")
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise FlowshotError(
            f"checkpoint {path} has flowshot format {fmt!r}, this flowshot reads format {FORMAT}: "
            "use the flowshot version that wrote it or retrain"
        )
    try:
        return FlowshotConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise FlowshotError(
            f"checkpoint {path} has a config from an incompatible flowshot version ({_first_line(err)}); "
            "use the flowshot version that wrote it or retrain"
        ) from None


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the trained FlowVAE from a checkpoint file alone.

    Args:
        path: a ``.ckpt`` written by ``flowshot train`` (e.g. ``RUN/last.ckpt``).

    Returns:
        LoadedModel(model in eval mode on the CPU, config, meta).

    Raises:
        FlowshotError: missing file, not a torch file, not a flowshot checkpoint,
            pickled code inside, incompatible config or weights.
    """
    from flowshot.model.vae import FlowVAE

    ckpt = read_checkpoint(path)
    cfg = config_from_checkpoint(ckpt, path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise FlowshotError(f"checkpoint {path} has no weights (no 'state_dict'); use a checkpoint written by `flowshot train`")
    weights = {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    model = FlowVAE(cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise FlowshotError(
            f"checkpoint {path} does not match this flowshot's model ({_first_line(err)}); "
            "use the flowshot version that wrote it or retrain"
        ) from None
    model.eval()
    meta = {k: v for k, v in ckpt["flowshot"].items() if k != "config"}
    return LoadedModel(model=model, config=cfg, meta=meta)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__
