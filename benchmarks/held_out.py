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


def held_out_reconstructions(
    path: str,
) -> tuple[FlowshotConfig, torch.Tensor, list[str], torch.Tensor, torch.Tensor, torch.nn.Module]:
    """A checkpoint trained on ``builtin:drums`` -> (its config, the held-out sounds
    [N, 1, L], their classes, the model's reconstructions of them [N, 1, L], their
    posterior modes z [N, D], the model itself (eval mode), for scripts that read more of it)."""
    from flowshot.model.checkpoint import load_model

    loaded = load_model(path)
    model, cfg = loaded.model.eval(), loaded.config
    x, classes = held_out_drums(cfg)
    with torch.no_grad():
        z = model.embed(x)
        y = model.decode(z)
    return cfg, x, classes, y, z, model
