"""What one pad's re-render costs the host on each runtime it can play a model file on.

For a .ts or .ckpt: ``--backend torch`` (TorchScript or eager) against the default, its ONNX
twin (flowshot.realtime.twin); for an ONNX folder, that alone. Each round renders one pad
(prior flow, then decoder, batch 1, one thread) on every runtime in turn after 20 ms idle,
as a knob move finds the model worker: interleaved, so a noisy stretch of the VM hits all
alike. Prints median, 99th percentile and worst, and how many renders took over 8 ms.

    .venv/bin/python benchmarks/host_backends.py runs/small-s0/flowshot.ts --rounds 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help=".ts, .ckpt or ONNX folder")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--idle-ms", type=float, default=20.0, help="sleep before each render (default 20)")
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from flowshot.realtime.backends import load_backend

    torch.set_num_threads(1)
    kinds = ["auto"] if args.model.is_dir() else ["torch", "auto"]
    backends = {kind: load_backend(args.model, kind) for kind in kinds}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds + 10):
        for kind, b in backends.items():
            u = rng.standard_normal((1, b.latent_dim)) * 0.5
            time.sleep(args.idle_ms / 1e3)
            t0 = time.perf_counter()
            b.render(b.base_to_latent(u))
            times[kind].append((time.perf_counter() - t0) * 1e3)
    t = Table(title=f"one pad's re-render, {args.model.name}: batch 1, one thread, {args.rounds} rounds after "
                    f"{args.idle_ms:g} ms idle")
    for col in ("--backend", "runs on", "median ms", "p99 ms", "worst ms", "over 8 ms"):
        t.add_column(col, justify="left" if col in ("--backend", "runs on") else "right")
    for kind, b in backends.items():
        v = np.array(times[kind][10:])  # the first rounds warm the runtimes up
        t.add_row(kind, b.name, f"{np.median(v):.2f}", f"{np.percentile(v, 99):.2f}",
                  f"{v.max():.2f}", str(int((v > 8).sum())))
    Console().print(t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
