"""``flowshot train``, ``flowshot generate`` and ``flowshot vary``."""

from __future__ import annotations

import argparse
import ast
import json
import os
import warnings
from pathlib import Path
from typing import Any

from flowshot.errors import FlowshotError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
# Parts of the config that define the model or its data: fixed once a run has started.
FROZEN_ON_RESUME = ("audio.", "model.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the train, generate, vary, report, stats, adjust and refit-prior sub-commands."""
    _register_train(subparsers)
    _register_generate(subparsers)
    _register_vary(subparsers)
    _register_report(subparsers)
    _register_stats(subparsers)
    _register_adjust(subparsers)
    _register_refit_prior(subparsers)


# ---------------------------------------------------------------------- parsers
def _register_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a flow-VAE on one-shot sounds",
        description="Train a flow-VAE on folders/files of one-shot sounds (or builtin:drums). "
        "Writes RUN/last.ckpt, RUN/step-XXXXXXX.ckpt, RUN/samples/step-XXXXXXX/ (WAVs + grid.png), "
        "RUN/validation.jsonl and logs.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="audio folders (searched recursively), audio files, or builtin:drums")
    p.add_argument("--preset", choices=["tiny", "small", "base"], default=None,
                   help="model size: tiny (8 kHz, tests), small (22.05 kHz, default), base (44.1 kHz); "
                   "on --resume it must match the checkpoint's")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many generator steps (default: the preset's train.max_steps)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget: when it is spent, the current step becomes the last (validation, checkpoint)")
    p.add_argument("--batch-size", type=int, default=None, help="sounds per step (default: the preset's train.batch_size)")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder for checkpoints, samples and logs (default: runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.ckpt at its step, with its config and optimiser state")
    p.add_argument("--devices", type=int, default=1, help="number of devices (processes with --strategy ddp)")
    p.add_argument("--accelerator", choices=["cpu", "gpu", "auto"], default="auto", help="where to train (auto: a GPU when there is one)")
    p.add_argument("--strategy", choices=["auto", "ddp"], default="auto",
                   help="ddp: one process per device, gradients averaged (gloo backend on CPU)")
    p.add_argument("--precision", choices=PRECISIONS, default="32", help="32-bit, or bf16/fp16 mixed precision (fp16 needs a GPU)")
    p.add_argument("--no-flows", action="store_true", help="plain Gaussian VAE: no Real NVP flows on posterior and prior (ablation)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set loss.beta=0.1 --set train.val_every=200 (repeatable)")
    p.add_argument("--cache-dir", default=None, help="where preprocessed examples are cached (default: ~/.cache/flowshot or $FLOWSHOT_CACHE)")
    p.add_argument("--num-workers", type=int, default=None, help="data-loader worker processes (default: the preset's train.num_workers)")
    p.add_argument("--seed", type=int, default=None, help="global random seed (default: the preset's train.seed)")
    p.set_defaults(func=run_train)


def _register_generate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="sample new sounds from a trained model",
                              description="Sample sounds from the prior of a checkpoint: DIR/sample-000.wav ... and DIR/grid.png.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by flowshot train (e.g. RUN/last.ckpt)")
    p.add_argument("-n", type=int, default=16, help="how many sounds (default 16)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="how far the draws stray (default 1.0): kernel sampler, 0 = the training sounds' own "
                   "modes, 1 = the bandwidth stored with them; data/flow, 0 = the centre, 1 = as trained")
    p.add_argument("--sampler", choices=["kernel", "data", "flow"], default="kernel",
                   help="kernel (default): around random training sounds' base points (T scales the noise, "
                   "0 = the training sounds' own modes); data: each base dimension drawn like the training "
                   "sounds', correlated as theirs are; flow: the flow prior's N(0, T^2) as trained. The "
                   "statistics are stored in the checkpoint when training ends (older ones: flowshot stats)")
    _add_output_args(p, "seed of the sampling noise: the same seed gives the same sounds", "generated")
    p.set_defaults(func=run_generate)


def _register_vary(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("vary", help="make variations of a sound",
                              description="Encode a sound, move its latent by random offsets in the prior's base space "
                              "and decode: DIR/variation-000.wav ..., original.wav, reconstruction.wav, grid.png.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by flowshot train (e.g. RUN/last.ckpt)")
    p.add_argument("sound", metavar="SOUND", help="audio file to vary (prepared like the training data)")
    p.add_argument("-n", type=int, default=8, help="how many variations (default 8)")
    p.add_argument("--spread", type=float, default=0.5,
                   help="size of the random offsets in prior standard deviations: 0 = the reconstruction (default 0.5)")
    _add_output_args(p, "seed of the offsets", "variations")
    p.set_defaults(func=run_vary)


def _add_output_args(p: argparse.ArgumentParser, seed_help: str, default_dir: str) -> None:
    """--seed, -o/--out and --float, shared by generate and vary."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("-o", "--out", default=default_dir, metavar="DIR", help=f"output folder (default ./{default_dir})")
    p.add_argument("--float", dest="float_wav", action="store_true", help="write 32-bit float WAVs (default 16-bit PCM)")


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="pictures and numbers of a training run",
                              description="Describe a run: RUN/report/curves.png (losses), grid.png (prior samples / "
                              "held-out / reconstructions), kl_per_dim.png, report.md and report.json (KL, active units, "
                              "output level against the data), and the grid's WAVs.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by flowshot train")
    p.add_argument("--checkpoint", metavar="CKPT", help="checkpoint to describe (default RUN_DIR/last.ckpt)")
    p.add_argument("--data", nargs="+", metavar="DATA", help="held-out sounds (default: the validation split of the run's data)")
    p.add_argument("--temperature", type=float, default=1.0, help="temperature of the prior samples (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior samples")
    p.add_argument("-o", "--out", metavar="DIR", help="output folder (default RUN_DIR/report)")
    p.set_defaults(func=run_report)


def _register_stats(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stats", help="recompute a checkpoint's latent statistics (pads, macro knobs, sampling table)",
        description="Encode the training sounds with the checkpoint's model and store its latent statistics "
        "in it: the pads and macro knobs that exports and the live host start from, and the per-dimension "
        "table that `flowshot generate` draws from. Training writes them when it ends; use this for a "
        "checkpoint of a run that was killed, or written by an older flowshot. The weights are not touched; "
        "the file is replaced atomically (or written to -o).")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by flowshot train (e.g. RUN/last.ckpt)")
    p.add_argument("-o", "--out", metavar="OUT.ckpt", help="write here instead of replacing CKPT")
    p.add_argument("--data", nargs="+", metavar="DATA", help="training sounds (default: the sources recorded in the checkpoint)")
    p.add_argument("--cache-dir", default=None, help="where preprocessed examples are cached (default: ~/.cache/flowshot or $FLOWSHOT_CACHE)")
    p.set_defaults(func=run_stats)


def _training_examples(args: argparse.Namespace, loaded: Any, src: Path) -> Any:
    """The checkpoint's training sounds (``--data`` or the sources it records), preprocessed."""
    from flowshot.model.data import load_examples

    sources = list(args.data) if args.data else list(loaded.meta.get("data", {}).get("sources", []))
    if not sources:
        raise FlowshotError(f"{src} records no training data: pass --data with the sounds it was trained on")
    return load_examples(sources, loaded.config, cache_dir=args.cache_dir)


def run_stats(args: argparse.Namespace) -> int:
    import torch

    from flowshot.model.checkpoint import atomic_torch_save, load_model, read_checkpoint
    from flowshot.model.latents import compute_latent_stats

    src = Path(args.checkpoint)
    out = Path(args.out) if args.out else src
    loaded = load_model(src)
    cfg = loaded.config
    examples = _training_examples(args, loaded, src)
    with torch.no_grad():
        stats = compute_latent_stats(loaded.model, examples, examples.train_index() or None, n_macros=8, n_pads=16,
                                     sample_rate=cfg.audio.sample_rate)
    ckpt = read_checkpoint(src)
    ckpt["flowshot"]["latent_stats"] = stats
    atomic_torch_save(ckpt, out)
    print(f"latent statistics of {stats['n_examples']} training sounds "
          f"({len(stats['macro_labels'])} knobs: {', '.join(stats['macro_labels'])}; {len(stats['pad_classes'])} pads) written to {out}")
    return 0


# Settings that change what a trained decoder plays without touching what it learned.
INFERENCE_ONLY = ("model.highpass_hz", "model.highpass_order", "model.highpass_bands", "model.signal_highpass_hz",
                  "model.render_boost_max_db")


def _register_adjust(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "adjust", help="copy a checkpoint with a playback setting changed (no retraining)",
        description="Write a copy of a checkpoint with settings changed that act only when the model plays, "
        "not what it learned: model.signal_highpass_hz (25 = the upper sub-bands' signal high-passed before "
        "its envelope: the steady tone its slow offset leaves on the band edges, the multiples of 1,378 Hz in "
        "small and base, goes down to the data's level; the presets do it since 2026-12-07, older checkpoints "
        "need this), model.highpass_bands (16 = every sub-band high-passed after its envelope: the ring becomes "
        "a narrow notch), model.highpass_hz and model.highpass_order (those filters, docs/evaluation.md), "
        "model.render_boost_max_db (how far a quiet one-shot is raised to the data's level). The weights are "
        "copied as they are; export, generate, evaluate and the live host then play the copy with the new setting.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by flowshot train (e.g. RUN/last.ckpt)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", required=True,
                   help=f"one of {', '.join(INFERENCE_ONLY)} (repeatable)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.ckpt", help="the new checkpoint (not CKPT itself)")
    p.set_defaults(func=run_adjust)


def run_adjust(args: argparse.Namespace) -> int:
    from flowshot.model.checkpoint import atomic_torch_save, config_from_checkpoint, load_model, read_checkpoint

    src, out = Path(args.checkpoint), Path(args.out)
    if out.resolve() == src.resolve():
        raise FlowshotError(f"-o {out} is the input checkpoint; write the copy to a new file")
    overrides = dict(parse_override(text) for text in args.overrides)
    for key in overrides:
        if key not in INFERENCE_ONLY:
            raise FlowshotError(f"--set {key}: only {', '.join(INFERENCE_ONLY)} leave the trained weights valid; "
                                "to change anything else, train (or --resume) with it")
    ckpt = read_checkpoint(src)
    cfg = config_from_checkpoint(ckpt, src)
    if cfg.model.highpass_in_training and cfg.model.highpass_hz > 0 and any(k.startswith("model.highpass") for k in overrides):
        raise FlowshotError(f"{src} trained behind its high-pass (model.highpass_in_training): "
                            "changing the filter changes what it learned; retrain instead")
    ckpt["flowshot"]["config"] = apply_overrides(cfg, overrides).to_dict()
    atomic_torch_save(ckpt, out)
    try:
        load_model(out)  # the copy must load as every command loads it
    except FlowshotError:
        out.unlink(missing_ok=True)
        raise
    print(f"wrote {out} ({', '.join(f'{k}={v!r}' for k, v in overrides.items())})")
    return 0


def _register_refit_prior(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "refit-prior", help="experiment: fit a checkpoint's prior to its final posteriors",
        description="Fit the prior flow of a trained checkpoint to the posteriors of its training sounds, "
        "everything else frozen, and recompute the pads and macro knobs. The prior then fits much better "
        "(held-out NLL) and its samples come out louder, but in docs/evaluation.md they also scored worse "
        "(FAD, KID, diversity), so training does not do this. Writes a new checkpoint; the input is left as it is.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by flowshot train (e.g. RUN/last.ckpt)")
    p.add_argument("-o", "--out", metavar="OUT.ckpt", help="output checkpoint (default: CKPT's folder, <name>-prior.ckpt)")
    p.add_argument("--steps", type=int, default=2000, help="Adam steps of 256 posterior samples (default 2000)")
    p.add_argument("--data", nargs="+", metavar="DATA", help="training sounds (default: the sources recorded in the checkpoint)")
    p.add_argument("--cache-dir", default=None, help="where preprocessed examples are cached (default: ~/.cache/flowshot or $FLOWSHOT_CACHE)")
    p.set_defaults(func=run_refit_prior)


def run_refit_prior(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import Progress

    from flowshot.model.checkpoint import MODEL_PREFIX, atomic_torch_save, load_model, read_checkpoint
    from flowshot.model.latents import compute_latent_stats
    from flowshot.model.prior_fit import refit_prior

    src = Path(args.checkpoint)
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}-prior.ckpt")
    if out.resolve() == src.resolve():
        raise FlowshotError(f"-o {out} is the input checkpoint; write the refit to a new file")
    loaded = load_model(src)
    cfg, model = loaded.config, loaded.model
    if not cfg.model.flows:
        raise FlowshotError(f"{src} was trained with --no-flows: it has no prior flow to refit")
    steps = args.steps
    if steps < 1:
        raise FlowshotError(f"--steps {steps}: must be at least 1")
    examples = _training_examples(args, loaded, src)
    train, val = examples.train_index(), examples.val_index()
    with Progress(transient=True) as progress:
        task = progress.add_task("fitting the prior", total=steps)
        fit = refit_prior(model, examples.audio[train], steps, examples.audio[val] if val else None,
                          seed=cfg.train.seed, progress=lambda done, total: progress.update(task, completed=done))
    with torch.no_grad():
        stats = compute_latent_stats(model, examples, train, n_macros=8, n_pads=16, progress=False,
                                     sample_rate=cfg.audio.sample_rate)
    ckpt = read_checkpoint(src)
    for name, value in model.prior_flow.state_dict().items():
        ckpt["state_dict"][f"{MODEL_PREFIX}prior_flow.{name}"] = value.clone()
    ckpt["flowshot"]["latent_stats"] = stats
    atomic_torch_save(ckpt, out)
    print(f"{fit.summary()}; wrote {out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from flowshot.model.report import write_report

    r = write_report(args.run_dir, args.out, checkpoint=args.checkpoint, data=args.data,
                     temperature=args.temperature, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.run_dir) / "report"
    print(f"step {r['step']}: KL {r['kl_total_nats']:.1f} nats, {r['active_units']}/{r['latent_dim']} active units, "
          f"level real/prior/recon {r['level_real']['rms_db']:.1f}/{r['level_prior_samples']['rms_db']:.1f}/"
          f"{r['level_reconstructions']['rms_db']:.1f} dB RMS, onset {r['level_real']['onset_ms']:.1f}/"
          f"{r['level_prior_samples']['onset_ms']:.1f}/{r['level_reconstructions']['onset_ms']:.1f} ms; "
          f"wrote {out}/report.md and PNGs")
    return 0


# --------------------------------------------------------------------- generate
def run_generate(args: argparse.Namespace) -> int:
    from flowshot.model.generate import generate

    paths = generate(args.checkpoint, args.n, args.out, temperature=args.temperature, seed=args.seed, float_wav=args.float_wav,
                     sampler=args.sampler)
    print(f"wrote {len(paths)} sounds and grid.png to {Path(args.out)}")
    return 0


def run_vary(args: argparse.Namespace) -> int:
    from flowshot.model.generate import vary

    paths = vary(args.checkpoint, args.sound, args.n, args.out, spread=args.spread, seed=args.seed, float_wav=args.float_wav)
    print(f"wrote {len(paths)} variations, original.wav, reconstruction.wav and grid.png to {Path(args.out)}")
    return 0


# ------------------------------------------------------------------------ train
def parse_override(text: str) -> tuple[str, Any]:
    """``"loss.beta=0.1"`` -> ("loss.beta", 0.1); values are Python/JSON literals, else strings."""
    if "=" not in text:
        raise FlowshotError(f"--set {text!r}: expected KEY=VALUE, e.g. --set loss.beta=0.1")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """cfg.replace with the value types checked against the current ones (one-line errors)."""
    from flowshot.model.config import FlowshotConfig

    current = cfg.to_dict()
    fixed: dict[str, Any] = {}
    for key, value in overrides.items():
        node: Any = current
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise FlowshotError(f"--set {key}: no such config key (see flowshot/model/config.py)")
            node = node[part]
        if isinstance(node, bool) and not isinstance(value, bool):
            raise FlowshotError(f"--set {key}={value!r}: expected true or false")
        if isinstance(node, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if node is not None and not isinstance(node, bool) and type(value) is not type(node):
            raise FlowshotError(f"--set {key}={value!r}: expected a {type(node).__name__} like {node!r}")
        fixed[key] = value
    try:
        return cfg.replace(**fixed) if fixed else FlowshotConfig.from_dict(current)
    except (KeyError, ValueError, TypeError) as err:
        raise FlowshotError(f"--set: {err}") from None


def _is_rank_zero() -> bool:
    # Lightning's DDP launcher re-runs this command in child processes with these set.
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _resolve_config(args: argparse.Namespace, run_dir: Path) -> tuple[Any, Path | None]:
    from flowshot.model.checkpoint import config_from_checkpoint, read_checkpoint
    from flowshot.model.config import preset

    last = run_dir / "last.ckpt"
    overrides = dict(parse_override(o) for o in args.overrides)
    if args.resume:
        if not last.is_file():
            raise FlowshotError(f"--resume: {last} does not exist; start a new run without --resume")
        cfg = config_from_checkpoint(read_checkpoint(last), last)
        if args.preset is not None and args.preset != cfg.preset:
            raise FlowshotError(
                f"--resume: {last} was trained with preset {cfg.preset!r}, not {args.preset!r}; drop --preset or use another --out"
            )
        if args.no_flows and cfg.model.flows:
            raise FlowshotError(f"--resume: {last} was trained with flows; --no-flows cannot change that")
        frozen = [k for k in overrides if k.startswith(FROZEN_ON_RESUME)]
        if frozen:
            raise FlowshotError(f"--resume: {', '.join(frozen)} define the model and cannot change in {last}; start a new run")
        resume_from: Path | None = last
    else:
        existing = sorted(run_dir.glob("*.ckpt")) if run_dir.is_dir() else []
        if existing:
            raise FlowshotError(
                f"{run_dir} already holds checkpoints ({existing[-1].name}); pass --resume to continue it or choose another --out"
            )
        try:
            cfg = preset(args.preset or "small")
        except ValueError as err:
            raise FlowshotError(str(err)) from None
        if args.no_flows:
            overrides["model.flows"] = False
        resume_from = None
    for flag, key in (("max_steps", "train.max_steps"), ("batch_size", "train.batch_size"),
                      ("num_workers", "train.num_workers"), ("seed", "train.seed")):
        value = getattr(args, flag)
        if value is not None:
            if value < (0 if flag in ("num_workers", "seed") else 1):
                raise FlowshotError(f"--{flag.replace('_', '-')} must be positive, got {value}")
            overrides[key] = value
    return apply_overrides(cfg, overrides), resume_from


def run_train(args: argparse.Namespace) -> int:
    import lightning as L
    import torch
    from lightning.pytorch.loggers import CSVLogger

    from flowshot.model.checkpoint import read_checkpoint
    from flowshot.model.training import FlowshotModule

    # Lightning 2.6 on torch 2.13: an internal deprecation notice the user can do nothing about.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    if args.devices < 1:
        raise FlowshotError(f"--devices must be at least 1, got {args.devices}")
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise FlowshotError("--accelerator gpu: no CUDA GPU is visible; use --accelerator cpu")
    on_cpu = args.accelerator == "cpu" or (args.accelerator == "auto" and not torch.cuda.is_available())
    if args.precision == "16-mixed" and on_cpu:
        raise FlowshotError("--precision 16-mixed needs a GPU; on the CPU use 32 or bf16-mixed")
    run_dir = Path(args.out or f"runs/{args.preset or 'small'}")
    cfg, resume_from = _resolve_config(args, run_dir)
    start_step = 0
    if resume_from is not None:
        start_step = int(read_checkpoint(resume_from)["flowshot"].get("step", 0))
        if start_step >= cfg.train.max_steps:
            raise FlowshotError(
                f"--resume: {resume_from} is already at step {start_step}; pass a --max-steps above {start_step}"
            )

    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    loader, val_audio, examples = _data(args, cfg)
    rank0 = _is_rank_zero()
    if rank0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    module = FlowshotModule(
        cfg, max_steps=cfg.train.max_steps, run_dir=run_dir, val_audio=val_audio,
        sources=list(args.data), classes=list(examples.classes),
        stats_examples=(examples, list(examples.train_index())),
        max_minutes=args.max_minutes,
    )
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        import tensorboard  # noqa: F401  (Lightning falls back badly without it)

        logger: Any = TensorBoardLogger(save_dir=str(run_dir), name="", version="logs", default_hp_metric=False)
    except ImportError:
        logger = CSVLogger(save_dir=str(run_dir), name="", version="logs")

    strategy: Any = "auto"
    # Several devices always means DDP (the one multi-process strategy flowshot supports).
    if args.strategy == "ddp" or args.devices > 1:
        from lightning.pytorch.strategies import DDPStrategy

        # Stage 1 leaves the discriminators without gradients, so DDP must expect unused parameters.
        strategy = DDPStrategy(process_group_backend="gloo" if on_cpu else None, find_unused_parameters=True)
    try:
        trainer = _trainer(args, strategy, logger, run_dir)
    except (ValueError, RuntimeError, TypeError) as err:  # Lightning's MisconfigurationException is a ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FlowshotError(f"cannot set up training ({first}); check --accelerator, --devices, --strategy, --precision") from None
    if rank0:
        print(
            f"flowshot train: preset {cfg.preset}, {len(examples.audio)} sounds "
            f"({len(loader.dataset)} train / {len(val_audio)} val), steps {start_step} -> {cfg.train.max_steps}, "
            f"world size {trainer.world_size}, run {run_dir}"
        )
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
    if trainer.is_global_zero:
        print(f"flowshot train: step {module.gen_step}, checkpoint {run_dir / 'last.ckpt'}")
    return 0


def _trainer(args: argparse.Namespace, strategy: Any, logger: Any, run_dir: Path) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar

    from flowshot.model.checkpoint import AtomicCheckpointIO

    return L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=strategy,
        precision=args.precision,
        max_epochs=-1,
        max_steps=-1,  # flowshot stops on its own generator-step counter
        logger=logger,
        callbacks=[RichProgressBar()],
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,
        default_root_dir=str(run_dir),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        log_every_n_steps=1,  # flowshot logs by generator step itself; this only silences a warning
    )


def _data(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any, Any]:
    """Examples -> (train DataLoader of [B, 2, L]: heard, target, val audio [V, L], ExampleSet)."""
    import torch
    from torch.utils.data import DataLoader

    from flowshot.model.augment import Augmenter
    from flowshot.model.data import OneShotDataset, load_examples

    examples = load_examples(list(args.data), cfg, cache_dir=args.cache_dir, progress=_is_rank_zero())
    train_idx, val_idx = list(examples.train_index()), list(examples.val_index())
    if not train_idx:
        raise FlowshotError(f"no training sounds left after the validation split of {', '.join(args.data)}; add more sounds")
    augment = Augmenter(cfg.augment, cfg.audio.sample_rate, cfg.audio.length)
    dataset = OneShotDataset(examples, train_idx, augment)
    bs = cfg.train.batch_size
    loader = DataLoader(
        dataset,
        batch_size=bs,
        shuffle=True,
        drop_last=len(dataset) >= bs,  # equal batches, unless the data is smaller than one batch
        num_workers=cfg.train.num_workers,
        persistent_workers=cfg.train.num_workers > 0,
    )
    audio = torch.as_tensor(examples.audio, dtype=torch.float32)
    val_audio = audio[val_idx] if val_idx else audio[:0]
    return loader, val_audio, examples
