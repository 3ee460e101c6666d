"""`flowshot export ts | onnx | check`: the command-line side of the export package."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowshot.errors import FlowshotError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` with its sub-commands ``ts``, ``onnx`` and ``check``."""
    export = subparsers.add_parser("export", help="export a trained checkpoint to nn~ (.ts) or ONNX",
                                   description="Export a checkpoint for nn~ (Max/PureData) or for ONNX runtimes.")
    sub = export.add_subparsers(dest="export_command", metavar="FORMAT", required=True)

    ts = sub.add_parser("ts", help="TorchScript instrument for nn~ (methods sample, decode, encode, forward)")
    ts.add_argument("checkpoint", help="a .ckpt written by `flowshot train` (e.g. RUN/last.ckpt)")
    ts.add_argument("-o", "--output", help="target .ts (default: flowshot.ts next to the checkpoint)")
    ts.add_argument("--data", nargs="+", metavar="DIR",
                    help="sounds for the macro knobs' directions (default: the data recorded in the checkpoint)")
    ts.add_argument("--macros", type=int, default=8, help="number of macro knobs of `sample` (default 8)")
    ts.add_argument("--polyphony", type=int, default=8, help="overlapping voices, 1..32 (default 8; attribute `polyphony`)")
    _add_sampler_arg(ts, "`sample`'s random draws")
    ts.add_argument("--no-onnx-twin", action="store_true",
                    help="leave out the ONNX copies of the decoder and prior that `flowshot realtime` renders "
                         "through (in about half TorchScript's time); nn~ does not use them; a third smaller file")
    ts.set_defaults(func=_run_ts)

    onnx = sub.add_parser("onnx", help="encoder.onnx, decoder.onnx, prior.onnx and flowshot.json")
    onnx.add_argument("checkpoint", help="a .ckpt written by `flowshot train`")
    onnx.add_argument("-o", "--output", help="target directory (default: onnx/ next to the checkpoint)")
    onnx.add_argument("--data", nargs="+", metavar="DIR", help="sounds for the latent statistics in flowshot.json")
    onnx.add_argument("--macros", type=int, default=8, help="number of macro directions stored (default 8)")
    _add_sampler_arg(onnx, "the live host's random draws")
    onnx.set_defaults(func=_run_onnx)

    patches = sub.add_parser("patches", help="write Pd/Max patches wired for a .ts (one cord per latent channel)")
    patches.add_argument("file", help="a .ts written by `flowshot export ts`")
    patches.add_argument("-o", "--output", help="target directory (default: the .ts's folder, where nn~ finds it)")
    patches.set_defaults(func=_run_patches)

    check = sub.add_parser("check", help="validate a .ts as a host would before loading it (exit 0 ok, 2 refused)")
    check.add_argument("file", help="a .ts file")
    check.set_defaults(func=_run_check)


def _add_sampler_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--sampler", choices=["kernel", "data"], default="kernel",
                   help=f"{what}: kernel (default) around random training sounds, as flowshot generate; "
                   "data: each dimension like the training sounds', correlated as theirs are (leaves the "
                   "training sounds' base points out of the file)")


def _run_ts(args: argparse.Namespace) -> int:
    from rich.console import Console

    from flowshot.export.stats import latent_stats_for, for_sampler
    from flowshot.export.ts import export_ts
    from flowshot.model.checkpoint import load_model

    if not 1 <= args.polyphony <= 32:
        raise FlowshotError(f"--polyphony {args.polyphony} is out of range: use 1..32")
    console = Console(stderr=True)
    out = Path(args.output) if args.output else Path(args.checkpoint).with_name("flowshot.ts")
    if out.suffix != ".ts":
        raise FlowshotError(f"output {out} must end in .ts (nn~ appends .ts to the model name)")
    if len(out.stem) < 3:
        raise FlowshotError(f"output name {out.name!r} is too short: nn~ aborts Pd on model names under 3 characters")
    loaded = load_model(args.checkpoint)
    # load_examples / compute_latent_stats draw their own progress bars.
    stats = for_sampler(latent_stats_for(loaded, args.data, args.macros, progress=True), args.sampler)
    with console.status(f"scripting and self-testing {out.name}..."):
        report = export_ts(loaded, out, stats, args.polyphony, onnx_twin=not args.no_onnx_twin)
    _print_report(out, report)
    if not args.no_onnx_twin:
        print("  ONNX twin of decode_latent and base_to_latent stored (flowshot realtime renders through it)")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from rich.console import Console

    from flowshot.export.onnx import export_onnx
    from flowshot.export.stats import latent_stats_for, for_sampler
    from flowshot.model.checkpoint import load_model

    console = Console(stderr=True)
    out = Path(args.output) if args.output else Path(args.checkpoint).with_name("onnx")
    loaded = load_model(args.checkpoint)
    stats = for_sampler(latent_stats_for(loaded, args.data, args.macros, progress=True), args.sampler)
    with console.status("exporting and checking ONNX graphs..."):
        paths = export_onnx(loaded, out, stats=stats)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from flowshot.export.selftest import check_ts

    _print_report(Path(args.file), check_ts(args.file))
    # Only now, with the file known to load in a bare interpreter, does it load here.
    from flowshot.realtime.backends import load_backend

    backend = load_backend(args.file, "auto")
    print("  ONNX twin: " + (backend.note.removeprefix("renders on torch: ") if backend.note else
                             "present, agrees with TorchScript (flowshot realtime renders through it)"))
    return 0


def _run_patches(args: argparse.Namespace) -> int:
    from flowshot.export.patches import write_patches
    from flowshot.export.selftest import check_ts

    ts = Path(args.file)
    _, _, dim, k, _ = check_ts(ts)["info"]
    for path in write_patches(Path(args.output) if args.output else ts.parent, latent_dim=dim, n_macros=k, model=ts.stem):
        print(path)
    return 0


def _print_report(path: Path, report: dict) -> None:
    sr, length, dim, k, p = report["info"]
    print(f"{path}: ok ({sr} Hz, {length} samples per one-shot, latent {dim}, {k} macros, {p} pads)")
    for name, m in report["methods"].items():
        in_ch, in_ratio, out_ch, out_ratio = m["params"]
        print(f"  method {name}: {in_ch} in (ratio {in_ratio}) -> {out_ch} out (ratio {out_ratio})")
    for name, a in report["attributes"].items():
        print(f"  attribute {name} = {a['value']}")
    print(f"  macro knobs: {', '.join(report['macro_labels'])}")
