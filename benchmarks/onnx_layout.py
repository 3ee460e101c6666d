"""onnxruntime render time of a preset's decoder with 1-D convolutions against the same
graph with them written as 2-D ones (what ``flowshot export onnx`` does, see
``flowshot.export.onnx_layout``), interleaved in one process so the machine's drift cancels.

    .venv/bin/python benchmarks/onnx_layout.py [--preset base] [--repeats 200]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from flowshot.evaluation.bench import BenchSettings, load_for_bench
from flowshot.export.onnx import export_onnx, make_session


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs per graph at batch 1 (a quarter at batch 16)")
    args = parser.parse_args(argv)
    loaded = load_for_bench(BenchSettings(preset=args.preset))
    d = int(loaded.config.model.latent_dim)
    # A render never reads the knob/pad tables of flowshot.json: empty ones spare loading data.
    no_stats = {"macro_directions": torch.zeros(0, d), "macro_std": torch.zeros(0), "base_mean": torch.zeros(d),
                "macro_labels": [], "pad_latents": torch.zeros(0, d), "pad_classes": [], "pad_base": torch.zeros(0, d)}
    table = Table(title=f"{args.preset} decoder, onnxruntime, ms per one-shot (median)")
    for col in ("threads", "batch", "1-D convs", "2-D convs", "change"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {}
        for name, conv2d in (("1d", False), ("2d", True)):
            graphs[name] = export_onnx(loaded, Path(tmp) / name, stats=no_stats, conv2d=conv2d)["decoder"]
        for threads, batch in ((1, 1), (1, 16), (2, 1), (2, 16)):
            sessions = {k: make_session(p, threads=threads) for k, p in graphs.items()}
            z = np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32)
            times = {k: [] for k in sessions}
            for s in sessions.values():
                for _ in range(10):
                    s.run(None, {"z": z})
            for _ in range(args.repeats if batch == 1 else max(1, args.repeats // 4)):
                for k, s in sessions.items():
                    t0 = time.perf_counter()
                    s.run(None, {"z": z})
                    times[k].append(time.perf_counter() - t0)
            ms = {k: 1e3 * statistics.median(v) / batch for k, v in times.items()}
            table.add_row(str(threads), str(batch), f"{ms['1d']:.2f}", f"{ms['2d']:.2f}", f"{100 * (ms['2d'] / ms['1d'] - 1):+.0f} %")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
