"""Per class, the reconstructions' level in each octave against the real sounds'.

A model's level per octave (``flowshot evaluate``) mixes every class; a hole there can be
one class's body rendered an octave off. This splits it: for each class of the held-out
``builtin:drums`` sounds, the energy of the reconstructions in each octave over the real
sounds' energy there, dB, summed over the class's sounds (so loud hits count most).

    .venv/bin/python benchmarks/class_octaves.py runs/base-s0/last.ckpt --classes kick tom snare
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

OCTAVE_EDGES_HZ = (20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240)


def octave_ratio_db(real: np.ndarray, recon: np.ndarray, sample_rate: int,
                    edges: tuple[float, ...] = OCTAVE_EDGES_HZ) -> np.ndarray:
    """[N, L] real and reconstructed sounds -> [len(edges) - 1]: per octave, the
    reconstructions' summed energy over the real sounds', dB (one FFT of each whole sound)."""
    freqs = np.fft.rfftfreq(real.shape[-1], 1.0 / sample_rate)
    power_real = np.abs(np.fft.rfft(real, axis=-1)) ** 2
    power_recon = np.abs(np.fft.rfft(recon, axis=-1)) ** 2
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (freqs >= lo) & (freqs < hi)
        out.append(10 * np.log10(max(power_recon[:, band].sum(), 1e-30) / max(power_real[:, band].sum(), 1e-30)))
    return np.array(out)


def main() -> int:
    from held_out import add_data_argument, held_out_reconstructions  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on the same data")
    ap.add_argument("--classes", nargs="*", default=None, help="only these classes (default: all)")
    add_data_argument(ap)
    args = ap.parse_args()

    torch.set_num_threads(1)
    console = Console(width=200)
    for path in args.checkpoints:
        cfg, x, classes, y, _, _ = held_out_reconstructions(path, args.data)
        edges = [e for e in OCTAVE_EDGES_HZ if e <= cfg.audio.sample_rate / 2]
        table = Table(title=f"{path}: reconstructions against real, dB per octave, {len(classes)} held-out sounds")
        table.add_column("class")
        table.add_column("sounds", justify="right")
        for lo, hi in zip(edges[:-1], edges[1:]):
            table.add_column(f"{lo}-{hi}", justify="right")
        for name in sorted(set(classes)):
            if args.classes and name not in args.classes:
                continue
            pick = np.array([c == name for c in classes])
            ratio = octave_ratio_db(x[pick, 0].numpy(), y[pick, 0].numpy(), cfg.audio.sample_rate, tuple(edges))
            table.add_row(name, str(int(pick.sum())), *[f"{v:+.1f}" for v in ratio])
        console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
