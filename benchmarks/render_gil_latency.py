"""How late the host's other Python threads run while the render thread re-renders pads.

The audio and MIDI callbacks of `flowshot realtime play` need the audio process's GIL
every period; whatever the render thread does in that process between model calls
(receiving pads, copying, freeing) delays them. This measures it without JACK: a
real-time-priority thread sleeps 1 ms in a loop beside the engine's render thread
re-rendering 16 pads through the model worker process, and reports how late it wakes.

    .venv/bin/python benchmarks/render_gil_latency.py --model runs/small-flows/flowshot.ts --renders 30
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help=".ckpt, .ts or ONNX folder")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    ap.add_argument("--renders", type=int, default=30, help="re-renders of all 16 pads")
    ap.add_argument("--rate", type=int, default=48000, help="device rate the pads are resampled to")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from flowshot.realtime.engine import Engine
    from flowshot.realtime.worker import ProcessBackend

    sys.setswitchinterval(0.0005)  # as the host sets it
    backend = ProcessBackend(args.model, args.backend, render_rate=args.rate)
    try:
        engine = Engine(backend, output_rate=args.rate)
        engine.render_pending()
        gc.collect()
        gc.freeze()
        try:  # as the host: its threads real-time, the worker (already started) not
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(2))
        except (AttributeError, PermissionError, OSError):
            pass
        late: list[float] = []
        done = threading.Event()

        def sleeper() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                time.sleep(0.001)
                late.append((time.perf_counter() - t0 - 0.001) * 1e3)

        thread = threading.Thread(target=sleeper)
        thread.start()
        t0 = time.perf_counter()
        for i in range(args.renders):
            engine.set_knob(i % engine.n_knobs, ((i % 7) - 3) / 2)
            engine.render_pending()
        wall = time.perf_counter() - t0
        done.set()
        thread.join()
    finally:
        backend.close()
    a = np.asarray(late)
    t = Table(title=f"1 ms sleeper beside {args.renders} re-renders of 16 pads ({wall:.1f} s)")
    for col in ("wake-ups", "median late ms", "p99 late ms", "max late ms", "> 1 ms", "> 2 ms"):
        t.add_column(col, justify="right")
    t.add_row(str(len(a)), f"{np.median(a):.3f}", f"{np.percentile(a, 99):.3f}", f"{a.max():.3f}",
              str(int((a > 1).sum())), str(int((a > 2).sum())))
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
