"""Which spectral lines recur: the frequencies that carry a line in many reconstructions.

A partial belongs to its sound and moves with it; a line at the same frequency in sound
after sound is the decoder's own tone. For each checkpoint this counts, over its held-out
reconstructions, how many carry a line (``metrics.spectral_lines``, as the comb table of
``flowshot evaluate`` counts them) at each frequency, and prints the most common with where
each sits in its PQMF sub-band, in the sub-band's own Hz (0 = a band edge, half the
sub-band rate = the other edge; odd bands are mirrored), so a tone from a sub-band's
offset (0 Hz) or from the last up-sampler's ripple (a quarter of the sub-band rate) shows
as such.

    .venv/bin/python benchmarks/line_frequencies.py runs/words/last.ckpt --data data/words
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table


def in_subband(freq_hz: float, sample_rate: int, bands: int) -> tuple[int, float]:
    """A full-band frequency -> (its PQMF sub-band, its frequency inside it; odd bands mirrored)."""
    width = sample_rate / 2 / bands
    band = min(int(freq_hz // width), bands - 1)
    offset = freq_hz - band * width
    return band, (width - offset if band % 2 else offset)


def main() -> int:
    from held_out import add_data_argument, held_out_reconstructions  # benchmarks/ is a script folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on --data")
    ap.add_argument("--top", type=int, default=8, help="frequencies to list per checkpoint (default 8)")
    add_data_argument(ap)
    args = ap.parse_args()

    from flowshot.evaluation.metrics import spectral_lines

    torch.set_num_threads(1)
    console = Console(width=160)
    for path in args.checkpoints:
        cfg, _, _, y, _, model = held_out_reconstructions(path, data=args.data)
        sr, bands = cfg.audio.sample_rate, model.decoder.bands
        lines = spectral_lines(y[:, 0].numpy(), sr)
        # Round to whole Hz (the bins are 1.3 Hz apart in `small`); count each sound once.
        counts: dict[float, int] = {}
        for f in lines:
            for hz in set(np.round(f).tolist()):
                counts[hz] = counts.get(hz, 0) + 1
        table = Table(title=f"{path}: {sum(len(f) for f in lines) / len(lines):.1f} lines per reconstruction, "
                            f"{len(lines)} reconstructions")
        for name in ("Hz", "reconstructions with a line there", "band", "in its sub-band, Hz"):
            table.add_column(name, justify="right")
        for hz, n in sorted(counts.items(), key=lambda kv: -kv[1])[: args.top]:
            band, inside = in_subband(hz, sr, bands)
            table.add_row(f"{hz:.0f}", str(n), str(band), f"{inside:.0f}")
        console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
