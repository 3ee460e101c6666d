"""Sub-commands ``flowshot evaluate`` and ``flowshot bench``."""

from __future__ import annotations

import argparse

from flowshot.errors import FlowshotError

# The registered embeddings, named here so that building the parser does not import torch:
# every `flowshot` command builds it, and `flowshot realtime play` must stay a light process
# (a test checks this list against the registry).
EMBEDDINGS = ("aisfx", "logmel")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and ``bench`` to the flowshot command."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint (FAD, KID, NDB, reconstruction, latent health) against real sounds",
        description="Score a checkpoint's prior samples and reconstructions against a test set, next to "
        "references measured in the same run: real training sounds (floor), coloured noise bursts "
        "(ceiling) and any --compare checkpoints. Writes metrics.json, metrics.md and PNGs.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by `flowshot train` (e.g. RUN/last.ckpt)")
    p.add_argument("--data", nargs="+", required=True, metavar="TEST",
                   help="test folders/files or builtin:drums (the training sources: their held-out split is used)")
    p.add_argument("-n", "--samples", type=int, default=None, metavar="N",
                   help="prior samples per model (default: the test-set size, at least 200)")
    p.add_argument("-o", "--out", default="eval", metavar="DIR", help="output folder (default: eval)")
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT", help="more checkpoints to score in the same run")
    p.add_argument("--embedding", default="aisfx", metavar="NAME",
                   help=f"embedding for the distribution metrics: {', '.join(EMBEDDINGS)} "
                   "(default: aisfx, the pretrained sound-effects CNN)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, subsets, k-means and the baseline")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior's base noise for the samples (default 1.0: the prior itself)")
    p.add_argument("--sampler", choices=["kernel", "data", "flow", "both"], default="kernel",
                   help="prior samples: kernel (default, as flowshot generate: around random training sounds' "
                   "base points), data (each dimension like the training sounds', correlated as theirs are), "
                   "flow (the flow prior's N(0, T^2)), both (kernel, and flow as an extra row)")
    p.add_argument("--max-train", type=int, default=1000, metavar="N",
                   help="at most this many training sounds as the reference (default: 1000)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.set_defaults(func=_evaluate)

    b = subparsers.add_parser(
        "bench",
        help="render time per one-shot (eager / TorchScript / onnxruntime), FLOPs, training speed",
        description="Benchmark a checkpoint, or a preset with random weights: render time of one one-shot "
        "for eager PyTorch, TorchScript and onnxruntime on 1 and 2 threads (batch 1 and 16), FLOPs and "
        "the time floor at the machine's measured matmul rate, training examples/s, memory, parameters.",
    )
    b.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT", help="checkpoint (default: --preset with random weights)")
    b.add_argument("--preset", choices=["tiny", "small", "base"], default="tiny", help="preset when no CKPT is given")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a preset setting before timing it, e.g. --set \"model.decoder_dilations=[1,3]\" (repeatable)")
    b.add_argument("--json", default=None, metavar="FILE", help="also save the results as JSON")
    b.add_argument("--repeats", type=int, default=10, help="timed calls per measurement; the median is reported")
    b.add_argument("--train-steps", type=int, default=3, help="timed training steps per stage")
    b.set_defaults(func=_bench)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise FlowshotError(f"{flag} {value}: must be at least 1")


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from flowshot.evaluation.evaluate import EvalSettings, run_with_progress

    _positive(args.samples, "-n")
    _positive(args.max_train, "--max-train")
    _positive(args.threads, "--threads")
    if args.samples is not None and args.samples < 2:
        raise FlowshotError(f"-n {args.samples}: evaluation needs at least 2 prior samples")
    if args.threads:
        torch.set_num_threads(args.threads)
    run_with_progress(
        EvalSettings(
            checkpoint=args.checkpoint,
            data=list(args.data),
            out_dir=args.out,
            n_samples=args.samples,
            compare=list(args.compare),
            embedding=args.embedding,
            seed=args.seed,
            temperature=args.temperature,
            sampler=args.sampler,
            max_train=args.max_train,
        )
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from flowshot.evaluation.bench import BenchSettings, print_report, run_bench

    _positive(args.repeats, "--repeats")
    _positive(args.train_steps, "--train-steps")
    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        result = run_bench(
            BenchSettings(
                checkpoint=args.checkpoint,
                preset=args.preset,
                overrides=tuple(args.overrides),
                repeats=args.repeats,
                train_steps=args.train_steps,
                json_path=args.json,
            ),
            say=lambda msg: status.update(msg),
        )
    print_report(result)
    if args.json:
        console.print(f"saved {args.json}")
    return 0
