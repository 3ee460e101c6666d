"""The held-out sounds of a data set (``builtin:drums`` unless told), as the per-class
benchmark scripts read them."""

from __future__ import annotations

import argparse

import torch

from flowshot.model.config import FlowshotConfig

BUILTIN = ("builtin:drums",)


def held_out_drums(
    cfg: FlowshotConfig, sounds: int | None = None, data: tuple[str, ...] | list[str] = BUILTIN, split: str = "val"
) -> tuple[torch.Tensor, list[str]]:
    """The validation split of ``data`` (the folders or ``builtin:drums`` a checkpoint was
    trained on) made for ``cfg``, the split training held out: audio [N, 1, L] and each
    sound's class; the first ``sounds`` only, if given. ``split="train"``: the sounds it
    trained on instead (what a model fits, against what it generalises to)."""
    from flowshot.model.data import load_examples

    examples = load_examples(list(data), cfg, progress=False)
    index = (examples.train_index() if split == "train" else examples.val_index())[:sounds]
    return examples.audio[index].unsqueeze(1), [examples.classes[i] for i in index]


def held_out_reconstructions(
    path: str, data: tuple[str, ...] | list[str] = BUILTIN, split: str = "val"
) -> tuple[FlowshotConfig, torch.Tensor, list[str], torch.Tensor, torch.Tensor, torch.nn.Module]:
    """A checkpoint trained on ``data`` -> (its config, the held-out sounds
    [N, 1, L], their classes, the model's reconstructions of them [N, 1, L], their
    posterior modes z [N, D], the model itself (eval mode), for scripts that read more of it)."""
    from flowshot.model.checkpoint import load_model

    loaded = load_model(path)
    model, cfg = loaded.model.eval(), loaded.config
    x, classes = held_out_drums(cfg, data=data, split=split)
    with torch.no_grad():
        z = model.embed(x)
        y = model.decode(z)
    return cfg, x, classes, y, z, model


def add_data_argument(ap: argparse.ArgumentParser) -> None:
    """``--data``: what the checkpoints were trained on, whose held-out split is measured."""
    ap.add_argument("--data", nargs="+", default=list(BUILTIN),
                    help="the folders or builtin:drums the checkpoints were trained on (default builtin:drums): "
                         "their held-out split is measured; classes come from the file names")


def add_split_argument(ap: argparse.ArgumentParser) -> None:
    """``--split``: the held-out sounds (default) or the ones the checkpoints trained on."""
    ap.add_argument("--split", choices=("val", "train"), default="val",
                    help="val (default): the held-out sounds; train: the sounds the checkpoints trained on, "
                         "to tell what a model cannot fit from what it does not generalise to")
