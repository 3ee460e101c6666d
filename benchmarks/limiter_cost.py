"""What the host's master limiter costs per audio block: each voice mixer (C and Python)
playing 16 voices, with the limiter off, on but idle (the mix under its ceiling), and on
and limiting (the mix far over it). Interleaved block by block so the machine's drift hits
all alike; prints the median microseconds per block and the share of the block's period.

    .venv/bin/python benchmarks/limiter_cost.py --blocks 128 512 --repeats 2000
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from flowshot.realtime import cmix
from flowshot.realtime.voices import PyVoices

RATE = 48000
VOICES = 16
LENGTH = RATE  # one-second pad buffers: every voice sounds through the whole measurement


def playing_mixer(kind: str, ceiling_db: float | None, level: float) -> tuple:
    """A mixer of ``kind`` ("c" or "python") with 16 voices sounding noise at ``level``
    each, and the pad buffers (a C voice holds only a pointer: keep them while it plays)."""
    mixer = (cmix.CVoices if kind == "c" else PyVoices)(VOICES, VOICES, 240, 1024)
    mixer.set_limiter(ceiling_db, 50.0, RATE)
    rng = np.random.default_rng(0)
    bufs = [(level * rng.standard_normal(LENGTH * 40)).astype(np.float32) for _ in range(VOICES)]
    for pad, buf in enumerate(bufs):
        mixer.set_pad(pad, buf)
        mixer.trigger(pad, 1.0, 0)
    return mixer, bufs


def main() -> int:
    from export_ab import interleaved_ms  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[128, 512], help="block sizes, frames")
    ap.add_argument("--repeats", type=int, default=2000)
    args = ap.parse_args()

    kinds = ["c", "python"] if cmix.available() else ["python"]
    # 16 voices of noise: at 0.01 each the mix stays near -30 dBFS (idle); at 0.5, ~+6 dBFS.
    cases = {"off": (None, 0.5), "on, idle": (-0.3, 0.01), "on, limiting": (-0.3, 0.5)}
    table = Table(title=f"master limiter: median us per block, {VOICES} voices, {RATE} Hz (share of the period)")
    for col in ("mixer", "frames", *cases):
        table.add_column(col, justify="right")
    for kind in kinds:
        for frames in args.blocks:
            out = np.zeros(frames, np.float32)
            playing = {name: playing_mixer(kind, *case) for name, case in cases.items()}
            mixers = {name: mixer for name, (mixer, _) in playing.items()}
            calls = {name: (lambda m=m: m.process(out)) for name, m in mixers.items()}
            ms = interleaved_ms(calls, args.repeats, 1)
            limited = mixers["on, limiting"].frames_limited
            assert limited > 0 and mixers["on, idle"].frames_limited == 0, "the cases did not do what they say"
            period_us = 1e6 * frames / RATE
            table.add_row(kind, str(frames), *(f"{1e3 * ms[n]:.1f} ({100e3 * ms[n] / period_us:.2f} %)" for n in cases))
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
