"""Do reconstructed drum bodies keep their pitch? Per class, real against reconstructed.

For each held-out kick and tom of ``builtin:drums`` (bodies of 40-68 and 76-258 Hz), the
loudest frequency under 500 Hz of one FFT of the whole sound, real and reconstructed.
Printed per checkpoint and class: the median pitch error in semitones, the share within a
semitone, how many distinct pitches the reconstructions play (the real sounds: about as
many as there are sounds), and the reconstructions' level within a semitone of the real
pitch against the real sound's there. A decoder that plays every body at one
of a few fixed pitches shows as few distinct pitches and a large error.

    .venv/bin/python benchmarks/body_pitch.py runs/base-s0/last.ckpt runs/body-s0/last.ckpt
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

CLASSES = ("kick", "tom")


def body_pitch(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, L] sounds -> (each one's body pitch, as training's ``losses.body_peak`` finds
    it [N], the FFT's frequencies [F], power spectra [N, F])."""
    from flowshot.model.losses import body_peak

    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    return body_peak(torch.from_numpy(x), sample_rate)[0].numpy(), freqs, power


def pitch_rows(real: np.ndarray, recon: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Real and reconstructed sounds of one class [N, L] -> the table's numbers."""
    f_real, freqs, p_real = body_pitch(real, sample_rate)
    f_recon, _, p_recon = body_pitch(recon, sample_rate)
    semis = 12 * np.abs(np.log2(f_recon / f_real))
    level = []
    for i, f in enumerate(f_real):
        near = (freqs > f / 2 ** (1 / 12)) & (freqs < f * 2 ** (1 / 12))
        level.append(10 * np.log10(max(p_recon[i, near].sum(), 1e-30) / max(p_real[i, near].sum(), 1e-30)))
    # Distinct pitches: reconstructions' peaks merged when within a semitone of each other.
    distinct = len(np.unique(np.round(12 * np.log2(f_recon / 20.0))))
    return {"sounds": len(f_real), "median_semitones": float(np.median(semis)),
            "within_semitone": float(np.mean(semis < 1.0)), "distinct": distinct,
            "distinct_real": len(np.unique(np.round(12 * np.log2(f_real / 20.0)))),
            "level_db": float(np.median(level))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on builtin:drums")
    args = ap.parse_args()

    from held_out import held_out_reconstructions

    torch.set_num_threads(1)
    table = Table(title="drum bodies' pitch, held-out sounds: reconstructions against real")
    for name in ("checkpoint", "class", "sounds", "median error, semitones", "within a semitone",
                 "distinct pitches (real)", "level at the real pitch, dB"):
        table.add_column(name, justify="left" if name in ("checkpoint", "class") else "right")
    for path in args.checkpoints:
        cfg, x, classes, y = held_out_reconstructions(path)
        for name in CLASSES:
            pick = np.array([c == name for c in classes])
            if not pick.any():
                continue
            r = pitch_rows(x[pick, 0].numpy(), y[pick, 0].numpy(), cfg.audio.sample_rate)
            table.add_row(path, name, str(r["sounds"]), f"{r['median_semitones']:.1f}", f"{r['within_semitone']:.0%}",
                          f"{r['distinct']} ({r['distinct_real']})", f"{r['level_db']:+.1f}")
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
