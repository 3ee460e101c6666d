"""Training speed of finished runs, read from their TensorBoard logs: a table of steps per
second between two steps and the run's wall-clock minutes.

    python benchmarks/run_speed.py runs/base-s0 runs/tmin-s0 --from-step 100

Read off runs that were trained side by side, a pair compares like with like; a run
that shared the machine with other work reads slower than it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_speed(run: Path, from_step: int, tag: str = "train/prior_nll") -> tuple[int, int, float, float]:
    """(first step, last step, steps per second between them, minutes from the first log)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run.glob("logs/**/events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"run_speed: no TensorBoard events under {run}/logs; give a run directory of flowshot train")
    acc = EventAccumulator(str(files[0]))
    acc.Reload()
    events = acc.Scalars(tag)
    later = [e for e in events if e.step >= from_step]
    if len(later) < 2:
        raise SystemExit(f"run_speed: {run} logged {tag} at fewer than 2 steps from {from_step}; lower --from-step")
    a, b = later[0], later[-1]
    return a.step, b.step, (b.step - a.step) / (b.wall_time - a.wall_time), (b.wall_time - events[0].wall_time) / 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of flowshot train")
    parser.add_argument("--from-step", type=int, default=100, help="first step counted (skips start-up)")
    args = parser.parse_args(argv)
    rows = [(run, *run_speed(run, args.from_step)) for run in args.runs]
    print("| run | steps | steps/s | minutes |\n|---|---:|---:|---:|")
    for run, first, last, rate, minutes in rows:
        print(f"| {run.name} | {first}-{last} | {rate:.3f} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
