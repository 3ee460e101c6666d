"""A copy of a checkpoint with inference-only settings changed: ``flowshot adjust``.

Kept under this name because docs/evaluation.md's commands use it; it takes the same
arguments and does the same as

    flowshot adjust runs/small-s0/last.ckpt -o runs/small-s0/edges25.ckpt --set model.highpass_bands=16
"""

from __future__ import annotations

import sys

from flowshot.cli import main

if __name__ == "__main__":
    sys.exit(main(["adjust", *sys.argv[1:]]))
