"""The held-out sounds of ``builtin:drums``, as the per-class benchmark scripts read them."""

from __future__ import annotations

import torch

from flowshot.model.config import FlowshotConfig


def held_out_drums(cfg: FlowshotConfig, sounds: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The validation split of ``builtin:drums`` made for ``cfg`` (the split training held
    out): audio [N, 1, L] and each sound's class; the first ``sounds`` only, if given."""
    from flowshot.model.data import load_examples

    examples = load_examples(["builtin:drums"], cfg, progress=False)
    index = examples.val_index()[:sounds]
    return examples.audio[index].unsqueeze(1), [examples.classes[i] for i in index]
