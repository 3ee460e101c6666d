"""Cost of the exported instrument on one CPU thread.

    .venv/bin/python benchmarks/export_bench.py --preset small      # untrained model
    .venv/bin/python benchmarks/export_bench.py --checkpoint RUN/last.ckpt

Prints two tables: one ``sample`` call of the scripted nn~ instrument per buffer size
(idle, 8 voices sounding, a new hit in the block), and the decoder (one whole one-shot)
in TorchScript vs onnxruntime at batch 1 and 16. Medians after warm-up. The latent
statistics are random: they do not change the cost.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from flowshot.export.onnx import DecoderGraph, make_session
from flowshot.export.ts import build_instrument
from flowshot.model.checkpoint import LoadedModel, load_model
from flowshot.model.config import preset


def random_stats(d: int, k: int = 8, p: int = 16) -> dict:
    q, _ = torch.linalg.qr(torch.randn(d, d))
    return {"macro_directions": q[:k], "macro_std": torch.ones(k), "base_mean": torch.zeros(d),
            "macro_labels": [f"knob{i}" for i in range(k)], "pad_latents": torch.randn(p, d),
            "pad_classes": ["pad"] * p, "pad_base": torch.randn(p, d)}


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def bench(loaded: LoadedModel, label: str, repeats: int, console: Console) -> None:
    cfg = loaded.config
    d, length = cfg.model.latent_dim, cfg.audio.length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.script(build_instrument(loaded, random_stats(d)))
    saved = io.BytesIO()
    torch.jit.save(ts, saved)
    table = Table(title=f"{label}: one `sample` call (ms, 1 thread, batch 1; {cfg.audio.sample_rate} Hz, {length} samples per one-shot)")
    for col in ("buffer", "block duration", "idle", "8 voices sounding", "new hit in block"):
        table.add_column(col, justify="right")
    with torch.inference_mode():
        for n in [2 ** e for e in range(6, 13)]:
            # A fresh instance per buffer size, as each nn~ object has one: TorchScript's
            # profiling executor specialises on the shapes it saw first.
            saved.seek(0)
            ts = torch.jit.load(saved)
            ts.set_polyphony(8)
            silent = torch.zeros(1, 9, n)
            idle = median_ms(lambda: ts.sample(silent), repeats * 3)

            burst = torch.zeros(1, 9, 16)
            burst[0, 0, ::2] = 1.0  # 8 hits: 8 voices sounding afterwards
            busy_times = []
            for _ in range(repeats):
                ts.reset()
                ts.sample(burst)
                t = time.perf_counter()
                ts.sample(silent)
                busy_times.append((time.perf_counter() - t) * 1e3)
            busy = statistics.median(busy_times)
            hit = torch.zeros(1, 9, n)
            hit[0, 0, n // 2] = 1.0
            ts.reset()
            new_hit = median_ms(lambda: ts.sample(hit), repeats)
            table.add_row(str(n), f"{n / cfg.audio.sample_rate * 1e3:.1f} ms", f"{idle:.3f}", f"{busy:.3f}", f"{new_hit:.2f}")
    console.print(table)

    table = Table(title=f"{label}: decoder, one whole one-shot per row (ms, 1 thread)")
    for col in ("batch", "TorchScript", "onnxruntime", "TS per one-shot", "ORT per one-shot"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decoder.onnx"
        model = ts.model
        graph = DecoderGraph(build_instrument(loaded, random_stats(d)).model).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (torch.randn(1, d),), str(path), input_names=["z"], output_names=["audio"],
                              dynamic_axes={"z": {0: "batch"}, "audio": {0: "batch"}}, opset_version=17, dynamo=False)
        sess = make_session(path, threads=1)
        for batch in (1, 16):
            z = torch.randn(batch, d)
            with torch.inference_mode():
                t_ts = median_ms(lambda: model.decode(z), repeats)
            zn = z.numpy()
            t_ort = median_ms(lambda: sess.run(None, {"z": zn}), repeats)
            table.add_row(str(batch), f"{t_ts:.2f}", f"{t_ort:.2f}", f"{t_ts / batch:.2f}", f"{t_ort / batch:.2f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a trained .ckpt")
    parser.add_argument("--preset", action="append", help="untrained preset(s): tiny, small, base")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    console = Console()
    if args.checkpoint:
        bench(load_model(args.checkpoint), f"checkpoint {args.checkpoint}", args.repeats, console)
    for name in args.preset or ([] if args.checkpoint else ["tiny"]):
        from flowshot.model.vae import FlowVAE

        cfg = preset(name)
        bench(LoadedModel(FlowVAE(cfg).eval(), cfg, {}), f"untrained {name}", args.repeats, console)


if __name__ == "__main__":
    main()
