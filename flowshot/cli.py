"""The ``flowshot`` command: one entry point, one sub-command per job.

Each area registers its own sub-commands (``register(subparsers)``) so this file only
dispatches; errors a user can fix (``FlowshotError``) become one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from flowshot import __version__
from flowshot.errors import FlowshotError

# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "flowshot.model.commands",  # train, generate, vary
    "flowshot.export.commands",  # export ts | onnx
    "flowshot.realtime.cli",  # realtime play | render-midi
    "flowshot.evaluation.commands",  # evaluate, bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowshot",
        description="A neural one-shot instrument: train a flow-VAE on one-shot sounds, "
        "generate new ones, export them to nn~ / ONNX, and play them live.",
    )
    parser.add_argument("--version", action="version", version=f"flowshot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except FlowshotError as err:
        print(f"flowshot: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowshot: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
