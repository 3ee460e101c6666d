"""Latent statistics for an export: from the checkpoint, or computed on its training data."""

from __future__ import annotations

from typing import Any

import torch

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import LoadedModel

_SAMPLING_KEYS = ("base_quantiles", "base_mixing", "base_points", "base_spread")
_KEYS = ("macro_directions", "macro_std", "base_mean", "macro_labels", "pad_latents", "pad_classes", "pad_base")


def latent_stats_for(loaded: LoadedModel, data: list[str] | None = None, n_macros: int = 8,
                     n_pads: int = 16, progress: bool = True) -> dict[str, Any]:
    """The macro directions / pads an exported instrument needs.

    Uses the statistics stored in the checkpoint when they have ``n_macros`` directions and
    no ``data`` is given; otherwise loads ``data`` (or the sources recorded in the checkpoint)
    with the checkpoint's config and runs ``compute_latent_stats`` on every example.

    Args:
        loaded: the checkpoint's model, config and meta.
        data: sources (folders, files, ``builtin:drums``) overriding the recorded ones.
        n_macros: number of macro knobs K.
        n_pads: number of pad latents P.
    Returns:
        dict with macro_directions [K, D], macro_std [K], base_mean [D], macro_labels,
        pad_latents [P, D], pad_classes, pad_base [P, D], base_quantiles [Q, D],
        base_mixing [D, D], base_points [M, D], base_spread [D] and kernel_bandwidth (the
        sampling statistics, missing only from statistics of an older checkpoint whose
        training data is not at hand).
    """
    if n_macros < 1 or n_macros > loaded.config.model.latent_dim:
        raise FlowshotError(f"--macros {n_macros} is out of range: use 1..{loaded.config.model.latent_dim} (the latent size)")
    stored = loaded.meta.get("latent_stats")
    fallback = None
    if not data and isinstance(stored, dict) and all(k in stored for k in _KEYS):
        if torch.as_tensor(stored["macro_directions"]).shape[0] == n_macros:
            if all(k in stored for k in _SAMPLING_KEYS):
                return stored
            # Written before some sampling statistics existed: recompute when the training
            # data is at hand, else export what there is (random draws then fall back to
            # the copula, independent dimensions or N(0, T^2), whatever is stored).
            fallback = stored
    try:
        return _compute(loaded, data, n_macros, n_pads, progress)
    except FlowshotError as err:
        if fallback is None:
            raise
        missing = ", ".join(k for k in _SAMPLING_KEYS if k not in fallback)
        print(f"note: keeping the checkpoint's latent statistics without {missing} ({err})")
        return fallback


def for_sampler(stats: dict[str, Any], sampler: str) -> dict[str, Any]:
    """``stats`` for an export whose random draws use ``sampler``: "kernel" keeps
    everything; "data" leaves the training sounds' base points out, so draws use the copula."""
    if sampler == "kernel":
        return stats
    if sampler == "data":
        return {k: v for k, v in stats.items() if k not in ("base_points", "base_spread")}
    raise FlowshotError(f"--sampler {sampler!r} is not known for an export; use kernel or data")


def _compute(loaded: LoadedModel, data: list[str] | None, n_macros: int, n_pads: int, progress: bool) -> dict[str, Any]:
    sources = list(data) if data else list(loaded.meta.get("data", {}).get("sources", []))
    if not sources:
        raise FlowshotError("the checkpoint records no training data: pass --data DIR (the sounds it was trained on)")
    from flowshot.model.data import load_examples
    from flowshot.model.latents import compute_latent_stats

    try:
        examples = load_examples(sources, loaded.config, progress=progress)
    except FlowshotError as err:
        raise FlowshotError(f"{err} (the macro knobs need the training data: pass --data DIR)") from None
    with torch.no_grad():
        return compute_latent_stats(loaded.model, examples, None, n_macros=n_macros, n_pads=n_pads, progress=progress)
