"""``flowshot bench``: how fast one one-shot renders, against what this machine could do.

Render time of the decode path (latent -> audio) for eager PyTorch, TorchScript
(``torch.jit.script``) and onnxruntime, on 1 and 2 threads, batch 1 and 16; the decode
FLOPs counted by ``torch.utils.flop_counter``; the time floor those FLOPs would take at the
float32 matrix-product rate MEASURED in the same run; training examples per second of
real ``FlowshotModule`` steps; peak memory and parameter counts. Timings are medians over
``repeats`` after warm-up calls.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from flowshot.errors import FlowshotError

BACKENDS = ("eager", "torchscript", "onnxruntime")
RENDER_COLUMNS = (
    "backend",
    "threads",
    "batch",
    "ms_per_call",
    "ms_per_oneshot",
    "realtime_factor",
    "floor_ms",
    "ratio_to_floor",
    "status",
)


@dataclass
class BenchSettings:
    """Args:
    checkpoint: a trained checkpoint, or None to use ``preset`` with random weights.
    preset: config preset when no checkpoint is given.
    overrides: ``KEY=VALUE`` changes to the preset (as ``flowshot train --set``), to
        time a variant of it.
    repeats: timed calls per measurement (median reported), after ``warmup`` calls.
    threads: torch / onnxruntime intra-op thread counts to try.
    batches: batch sizes to try.
    train_steps: timed training steps per stage (after one warm-up step).
    train_threads: torch threads for the training steps (1: the CPU is shared).
    json_path: where to save the results (None: not saved).
    """

    checkpoint: str | None = None
    preset: str = "tiny"
    overrides: tuple[str, ...] = ()
    repeats: int = 10
    warmup: int = 2
    threads: tuple[int, ...] = (1, 2)
    batches: tuple[int, ...] = (1, 16)
    train_steps: int = 3
    train_threads: int = 1
    json_path: str | None = None


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(threads: int, n: int = 1024, repeats: int = 7) -> float:
    """Peak float32 matrix-product rate (GFLOP/s) on ``threads`` threads: 2 n^3 / fastest time."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = min(_timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (multiply-add = 2) of ``fn()``, counted per aten op (convolutions, matrix
    products) by ``torch.utils.flop_counter``: functional convolutions (polyphase
    up-sampling, PQMF) are seen too, which module hooks would miss."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return int(counter.get_total_flops())


def decode_flops(model: nn.Module, latent_dim: int) -> int:
    """FLOPs of decoding ONE one-shot (latent [1, D] -> audio [1, 1, L])."""
    return count_flops(lambda: model.decode(torch.zeros(1, latent_dim)))


def parameter_counts(model: nn.Module, cfg: Any) -> dict[str, int]:
    """Trainable parameters of each part of the generator, and of the discriminators."""
    from flowshot.model.discriminators import Discriminators

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    parts = {name: count(child) for name, child in model.named_children()}
    parts["generator_total"] = count(model)
    parts["decode_path"] = count(model.decoder) + count(model.pqmf)
    parts["discriminators"] = count(Discriminators(cfg))
    return parts


class DecodePath(nn.Module):
    """What a trigger runs: latent [B, D] -> audio [B, 1, L]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_for_bench(settings: BenchSettings) -> Any:
    """A LoadedModel from the checkpoint, or random weights of the preset."""
    from flowshot.model.checkpoint import LoadedModel, load_model
    from flowshot.model.config import preset
    from flowshot.model.vae import FlowVAE

    if settings.checkpoint:
        return load_model(settings.checkpoint)
    from flowshot.model.commands import apply_overrides, parse_override

    try:
        cfg = preset(settings.preset)
        if settings.overrides:
            cfg = apply_overrides(cfg, dict(parse_override(o) for o in settings.overrides))
    except ValueError as err:  # unknown preset; apply_overrides reports its own FlowshotError
        raise FlowshotError(f"--preset {settings.preset}: {err}") from None
    torch.manual_seed(0)
    return LoadedModel(model=FlowVAE(cfg).eval(), config=cfg, meta={"step": 0})


def render_only_stats(dim: int) -> dict[str, Any]:
    """Empty knob and pad tables for an export that is only timed.

    Latent statistics only fill flowshot.json's knob/pad tables, which a render never
    reads; empty tables spare loading the training data just to time the decoder.
    """
    return {
        "macro_directions": torch.zeros(0, dim),
        "macro_std": torch.zeros(0),
        "base_mean": torch.zeros(dim),
        "macro_labels": [],
        "pad_latents": torch.zeros(0, dim),
        "pad_classes": [],
        "pad_base": torch.zeros(0, dim),
    }


def _render_fns(loaded: Any, backend: str, tmp: Path) -> Callable[[int, np.ndarray], Callable[[], Any]]:
    """For a backend, a factory: (threads, z [B, D]) -> a no-argument render call.

    Every backend runs the deployed form of the model (``export.ts.inference_model``:
    weight norm and the snakes' alphas folded into plain weights), not the training module.
    """
    from flowshot.export.ts import inference_model

    model = inference_model(loaded)
    if backend == "eager":

        def eager(threads: int, z: np.ndarray) -> Callable[[], Any]:
            zt = torch.from_numpy(z)

            def call() -> Any:
                with torch.inference_mode():
                    return model.decode(zt)

            return call

        return eager
    if backend == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit; nn~ needs it
            scripted = torch.jit.script(DecodePath(model).eval())

        def ts(threads: int, z: np.ndarray) -> Callable[[], Any]:
            zt = torch.from_numpy(z)

            def call() -> Any:
                with torch.no_grad():
                    return scripted(zt)

            return call

        return ts
    from flowshot.export.onnx import export_onnx, make_session

    paths = export_onnx(loaded, tmp / "onnx", stats=render_only_stats(int(loaded.config.model.latent_dim)))
    decoder = paths["decoder"]

    def ort(threads: int, z: np.ndarray) -> Callable[[], Any]:
        session = make_session(decoder, threads=threads)
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: z})

    return ort


def render_table(loaded: Any, settings: BenchSettings, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Time every (backend, threads, batch); a backend that cannot be built gets rows with its error."""
    cfg = loaded.config
    duration = cfg.audio.length / cfg.audio.sample_rate
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flowshot-bench-") as tmp:
        for backend in BACKENDS:
            try:
                make = _render_fns(loaded, backend, Path(tmp))
                error = ""
            except FlowshotError as err:
                make, error = None, f"unavailable: {err}"
            except Exception as err:  # report, keep benchmarking the other backends
                make, error = None, f"unavailable: {type(err).__name__}: {str(err).strip().splitlines()[0][:120]}"
            for threads in settings.threads:
                torch.set_num_threads(threads)
                for batch in settings.batches:
                    say(f"{backend}: {threads} thread(s), batch {batch}")
                    row: dict[str, Any] = {
                        "backend": backend,
                        "threads": threads,
                        "batch": batch,
                        "ms_per_call": None,
                        "ms_per_oneshot": None,
                        "realtime_factor": None,
                        "floor_ms": None,
                        "ratio_to_floor": None,
                        "status": error or "ok",
                    }
                    if make is not None:
                        z = rng.standard_normal((batch, loaded.model.latent_dim)).astype(np.float32)
                        sec = median_seconds(make(threads, z), settings.repeats, settings.warmup)
                        row.update(
                            ms_per_call=sec * 1e3,
                            ms_per_oneshot=sec * 1e3 / batch,
                            realtime_factor=duration * batch / sec,
                        )
                    rows.append(row)
    return rows


def add_floors(rows: list[dict[str, Any]], flops: int, gflops: dict[int, float]) -> None:
    """Fill ``floor_ms`` (the FLOPs at the measured matmul rate) and ``ratio_to_floor``."""
    for row in rows:
        floor_s = flops * row["batch"] / (gflops[row["threads"]] * 1e9)
        row["floor_ms"] = floor_s * 1e3
        if row["ms_per_call"] is not None and floor_s > 0:
            row["ratio_to_floor"] = row["ms_per_call"] / 1e3 / floor_s


def training_speed(cfg: Any, steps: int, threads: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Examples per second of real ``FlowshotModule`` steps (Lightning, CPU), per stage.

    Stage 1 is reconstruction + KL; stage 2 adds the discriminators. The first step of
    each stage is a warm-up and is not timed.
    """
    import lightning as L

    from flowshot.model.training import FlowshotModule

    torch.set_num_threads(threads)
    bs = cfg.train.batch_size
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn((steps + 1) * bs, 1, cfg.audio.length, generator=gen)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(audio), batch_size=bs, shuffle=False)
    result: dict[str, Any] = {"batch_size": bs, "threads": threads, "steps_timed": steps}
    for stage, start in (("stage1", 0), ("stage2", cfg.loss.adversarial_start)):
        say(f"training speed, {stage}: {steps + 1} steps of batch {bs}")
        module = FlowshotModule(cfg, max_steps=start + steps + 1)
        module.gen_step = start
        times: list[float] = []

        class Clock(L.Callback):
            def on_train_batch_start(self, *args: Any) -> None:
                self.t0 = time.perf_counter()

            def on_train_batch_end(self, *args: Any) -> None:
                times.append(time.perf_counter() - self.t0)

        # Lightning's start-up banners would break the rich status line.
        quiet = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(logging.ERROR)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Clock()],
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer.fit(module, loader)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
        timed = times[1:] or times
        result[f"{stage}_examples_per_s"] = bs / statistics.median(timed)
        result[f"{stage}_ms_per_step"] = statistics.median(timed) * 1e3
    return result


def run_bench(settings: BenchSettings, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything; returns the JSON-able result (also written to ``settings.json_path``)."""
    say = say or (lambda _msg: None)
    threads_before = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    try:
        loaded = load_for_bench(settings)
        cfg, model = loaded.config, loaded.model
        say("measuring the float32 matrix-product rate")
        gflops = {t: matmul_gflops(t) for t in settings.threads}
        from flowshot.export.ts import inference_model

        deployed = inference_model(loaded)
        flops = decode_flops(deployed, model.latent_dim)
        render = render_table(loaded, settings, say)
        # Measured again after the renders and the faster kept: on a shared CPU one
        # measurement can land in a busy moment, and the floor should be the peak.
        gflops = {t: max(g, matmul_gflops(t)) for t, g in gflops.items()}
        add_floors(render, flops, gflops)
        rss_inference = peak_rss_mib()
        training = training_speed(cfg, settings.train_steps, settings.train_threads, say)
        result = {
            "model": settings.checkpoint or f"preset {settings.preset} (random weights)",
            "preset": cfg.preset,
            "sample_rate": cfg.audio.sample_rate,
            "length": cfg.audio.length,
            "duration_s": cfg.audio.length / cfg.audio.sample_rate,
            "latent_dim": int(model.latent_dim),
            "flops_per_oneshot": flops,
            "matmul_gflops": {str(t): g for t, g in gflops.items()},
            "params": parameter_counts(model, cfg),
            "render": render,
            "training": training,
            "peak_rss_mib_after_inference": rss_inference,
            "peak_rss_mib": peak_rss_mib(),
            "repeats": settings.repeats,
            "warmup": settings.warmup,
            "torch": torch.__version__,
            # Timings on a shared machine mean little without how busy it was.
            "cpu_count": os.cpu_count(),
            "load_average_1min": [load_before, os.getloadavg()[0]],
        }
    finally:
        torch.set_num_threads(threads_before)
    if settings.json_path:
        path = Path(settings.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(path)
    return result


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_report(result: dict[str, Any]) -> None:
    """The render table and a summary, with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = (
        f"flowshot bench: {result['model']}: {result['duration_s'] * 1000:.0f} ms one-shot at "
        f"{result['sample_rate']} Hz, {result['flops_per_oneshot'] / 1e9:.3f} GFLOP per one-shot"
    )
    table = Table(title=title)
    for col in ("backend", "threads", "batch", "ms/call", "ms/one-shot", "x real time", "floor ms", "time/floor", "status"):
        table.add_column(col, justify="left" if col in ("backend", "status") else "right")
    for r in result["render"]:
        table.add_row(
            r["backend"],
            str(r["threads"]),
            str(r["batch"]),
            _num(r["ms_per_call"], ".2f"),
            _num(r["ms_per_oneshot"], ".3f"),
            _num(r["realtime_factor"], ".0f"),
            _num(r["floor_ms"], ".3f"),
            _num(r["ratio_to_floor"], ".1f"),
            r["status"],
        )
    console.print(table)
    p, t = result["params"], result["training"]
    rates = ", ".join(f"{g:.0f} GFLOP/s on {n} thread(s)" for n, g in result["matmul_gflops"].items())
    console.print(f"float32 matmul: {rates}")
    console.print(
        f"parameters: generator {p['generator_total']:,} (decode path {p['decode_path']:,}), "
        f"discriminators {p['discriminators']:,}"
    )
    console.print(
        f"training ({t['threads']} threads, batch {t['batch_size']}): stage 1 {t['stage1_examples_per_s']:.1f} ex/s, "
        f"stage 2 {t['stage2_examples_per_s']:.1f} ex/s"
    )
    console.print(
        f"peak RSS: {result['peak_rss_mib_after_inference']:.0f} MiB after inference, {result['peak_rss_mib']:.0f} MiB after training"
    )
    load = result["load_average_1min"]
    console.print(f"machine: {result['cpu_count']} CPUs, 1-min load average {load[0]:.1f} at start, {load[1]:.1f} at end")
