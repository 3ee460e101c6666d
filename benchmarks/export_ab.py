"""Render time of a preset's decoder in the forms ``flowshot export`` can write, A against B.

onnxruntime: 1-D convolutions as exported by torch; the same written as 2-D ones
(``flowshot.export.onnx_layout.conv1d_as_conv2d``); that with the snakes' alphas folded
into the convolutions (``flowshot.export.snake_fold``); and that with the tensors between
the convolutions kept 4-D (``onnx_layout.stay_4d``: what ``flowshot export`` writes).
TorchScript: unfolded against folded. ``--against KEY=VALUE`` adds the deployed form of
the preset with that setting changed (e.g. ``model.highpass_hz=0``: without the output
filter). All variants run interleaved in one process, call by call, so the machine's
drift (20-50 % on this VM) hits them alike.

    .venv/bin/python benchmarks/export_ab.py [--preset base] [--repeats 200] [--against KEY=VALUE ...]
"""

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from flowshot.evaluation.bench import BenchSettings, DecodePath, load_for_bench, render_only_stats
from flowshot.export.onnx import export_onnx, make_session
from flowshot.export.ts import inference_model

ORT_VARIANTS = {"1-D": dict(layout="1d", fold=False), "2-D": dict(layout="2d", fold=False),
                "2-D folded": dict(layout="2d", fold=True), "4-D folded": dict(layout="4d", fold=True)}
TS_VARIANTS = {"unfolded": False, "folded": True}


def interleaved_ms(calls: Dict[str, Callable[[], Any]], repeats: int, batch: int) -> Dict[str, float]:
    """Median ms per one-shot of each call, timed in turn so drift hits all alike."""
    times: Dict[str, List[float]] = {k: [] for k in calls}
    for call in calls.values():
        for _ in range(10):
            call()
    for _ in range(repeats):
        for k, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) / batch for k, v in times.items()}


def table_for(title: str, names: List[str], rows: List[tuple]) -> Table:
    table = Table(title=title)
    for col in ["threads", "batch", *names, *(f"{n} vs {names[0]}" for n in names[1:])]:
        table.add_column(col, justify="right")
    for threads, batch, ms in rows:
        changes = [f"{100 * (ms[n] / ms[names[0]] - 1):+.0f} %" for n in names[1:]]
        table.add_row(str(threads), str(batch), *(f"{ms[n]:.2f}" for n in names), *changes)
    return table


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs per variant at batch 1 (a quarter at batch 16)")
    parser.add_argument("--against", action="append", default=[], metavar="KEY=VALUE",
                        help="also time the deployed form with this preset setting changed (repeatable: one variant)")
    args = parser.parse_args(argv)
    loaded = load_for_bench(BenchSettings(preset=args.preset))
    d = int(loaded.config.model.latent_dim)
    console = Console()
    ort_variants = {k: (loaded, v) for k, v in ORT_VARIANTS.items()}
    ts_variants = {k: (loaded, f) for k, f in TS_VARIANTS.items()}
    if args.against:
        other = load_for_bench(BenchSettings(preset=args.preset, overrides=tuple(args.against)))
        name = ", ".join(args.against)
        ort_variants[name] = (other, ORT_VARIANTS["4-D folded"])
        ts_variants[name] = (other, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit; nn~ needs it
        scripted = {k: torch.jit.script(DecodePath(inference_model(m, fold=f)).eval()) for k, (m, f) in ts_variants.items()}
    ort_rows, ts_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {k: export_onnx(m, Path(tmp) / str(i), stats=render_only_stats(d), **v)["decoder"]
                  for i, (k, (m, v)) in enumerate(ort_variants.items())}
        for threads, batch in ((1, 1), (1, 16), (2, 1), (2, 16)):
            repeats = args.repeats if batch == 1 else max(1, args.repeats // 4)
            z = np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32)
            sessions = {k: make_session(p, threads=threads) for k, p in graphs.items()}
            calls = {k: (lambda s=s: s.run(None, {"z": z})) for k, s in sessions.items()}
            ort_rows.append((threads, batch, interleaved_ms(calls, repeats, batch)))
            torch.set_num_threads(threads)
            zt = torch.from_numpy(z)
            with torch.no_grad():
                calls = {k: (lambda m=m: m(zt)) for k, m in scripted.items()}
                ts_rows.append((threads, batch, interleaved_ms(calls, repeats, batch)))
    console.print(table_for(f"{args.preset} decoder, onnxruntime, ms per one-shot (median)", list(ort_variants), ort_rows))
    console.print(table_for(f"{args.preset} decoder, TorchScript, ms per one-shot (median)", list(ts_variants), ts_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
