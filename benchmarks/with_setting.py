"""A copy of a checkpoint with inference-only settings changed in its stored config.

Some settings act only outside training (``model.highpass_*`` with
``highpass_in_training`` false), so a trained model can be heard and scored with and
without them, weights untouched:

    python benchmarks/with_setting.py runs/small-s0/last.ckpt -o runs/small-s0/edges25.ckpt \\
        --set model.highpass_bands=16
    flowshot evaluate runs/small-s0/edges25.ckpt --data builtin:drums --compare runs/small-s0/last.ckpt

The copy is checked by loading it as every command does; one that does not load is
removed again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import atomic_torch_save, config_from_checkpoint, load_model, read_checkpoint
from flowshot.model.commands import apply_overrides, parse_override

# Settings that change what a trained decoder plays without touching what it learned.
INFERENCE_ONLY = ("model.highpass_hz", "model.highpass_order", "model.highpass_bands", "model.render_boost_max_db")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("-o", "--out", required=True, help="the new checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"one of {', '.join(INFERENCE_ONLY)} (repeatable)")
    args = parser.parse_args(argv)
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        for key in overrides:
            if key not in INFERENCE_ONLY:
                raise FlowshotError(f"--set {key}: only {', '.join(INFERENCE_ONLY)} leave the trained weights valid")
        ckpt = read_checkpoint(args.checkpoint)
        cfg = config_from_checkpoint(ckpt, args.checkpoint)
        trained_behind = cfg.model.highpass_in_training and cfg.model.highpass_hz > 0
        if trained_behind and any(k.startswith("model.highpass") for k in overrides):
            raise FlowshotError(f"{args.checkpoint} trained behind its high-pass (model.highpass_in_training): "
                                "changing the filter changes what it learned; retrain instead")
        ckpt["flowshot"]["config"] = apply_overrides(cfg, overrides).to_dict()
        atomic_torch_save(ckpt, args.out)
        try:
            load_model(args.out)
        except FlowshotError:
            Path(args.out).unlink(missing_ok=True)
            raise
    except FlowshotError as err:
        print(f"with_setting: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({', '.join(f'{k}={v!r}' for k, v in overrides.items())})")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
