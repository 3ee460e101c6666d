"""Does the pitch move as the real sound's does? Pitch contours of held-out sounds, their
reconstructions and prior samples, tracked alike (YIN, ``flowshot.model.pitch``).

For spoken words (or anything voiced): a decoder that cannot make a moving pitch comes
back with reconstructions a tracker finds no period in (a buzz shaped like the word) or
at one pitch, whose contours neither follow the real ones nor span their range. Per
checkpoint:

* voiced: the share of frames voiced (10 ms frames, 50-500 Hz), real / reconstructed / sampled;
* error: on the frames voiced in both the real sound and its reconstruction, how far the
  reconstruction's pitch is from the real one (median cents, and the share within a semitone);
* follows: per sound with 8 or more such frames, the correlation of the two log-pitch
  contours, median over sounds;
* range: per sound with 8 or more voiced frames, its pitch range in semitones (90th minus
  10th percentile), median over sounds, real / reconstructed / sampled.

``--png`` draws the first voiced sounds' contours, real against each checkpoint's
reconstruction; ``--grid`` their spectrograms (FFT fine enough to show the harmonics).

    .venv/bin/python benchmarks/pitch_contours.py runs/words/last.ckpt --data data/words --png pitch.png --grid voice.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

HOP_S = 0.01
MIN_HZ, MAX_HZ = 50.0, 500.0
MIN_FRAMES = 8


def contours(x: torch.Tensor, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Sounds [N,1,L] -> (log2 pitch [N,F], voiced [N,F] bool) on 10 ms frames."""
    from flowshot.model.pitch import track_pitch

    hop = round(sample_rate * HOP_S)
    pitch, voiced = track_pitch(x, sample_rate, hop, x.shape[-1] // hop + 1, MIN_HZ, MAX_HZ)
    return np.log2(pitch.numpy()), voiced.numpy() > 0


def semitone_range(logp: np.ndarray, voiced: np.ndarray) -> float:
    """Median over sounds (with MIN_FRAMES voiced frames) of their 10-90 % pitch range, semitones."""
    ranges = [12 * np.subtract(*np.percentile(p[v], [90, 10])) for p, v in zip(logp, voiced) if v.sum() >= MIN_FRAMES]
    return float(np.median(ranges)) if ranges else float("nan")


def compare(real: tuple[np.ndarray, np.ndarray], recon: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Error and correlation of reconstructed contours against the real ones."""
    (pr, vr), (py, vy) = real, recon
    both = vr & vy
    cents = 1200 * np.abs(py[both] - pr[both])
    corrs = []
    for a, b, m in zip(pr, py, both):
        if m.sum() >= MIN_FRAMES and a[m].std() > 0 and b[m].std() > 0:
            corrs.append(np.corrcoef(a[m], b[m])[0, 1])
    return {
        "cents": float(np.median(cents)) if cents.size else float("nan"),
        "semitone": float((cents < 100).mean()) if cents.size else float("nan"),
        "follows": float(np.median(corrs)) if corrs else float("nan"),
    }


def main() -> int:
    from held_out import add_data_argument, held_out_reconstructions  # benchmarks/ is a script folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on --data")
    ap.add_argument("--samples", type=int, default=80, help="prior samples per checkpoint (default 80)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prior samples (default 0)")
    ap.add_argument("--png", help="draw the first voiced sounds' contours here")
    ap.add_argument("--grid", help="draw the first voiced sounds' spectrograms here, real and each reconstruction")
    add_data_argument(ap)
    args = ap.parse_args()

    torch.set_num_threads(1)
    console = Console(width=200)
    table = Table(title="pitch contours of held-out sounds: real, reconstructed (posterior mode), prior samples")
    for name in ("checkpoint", "voiced real / recon / samples", "recon error, median cents",
                 "within a semitone", "recon follows real (corr.)", "range, semitones real / recon / samples"):
        table.add_column(name, justify="right")
    drawn = []
    real = None
    grid: dict[str, list[np.ndarray]] = {}
    for path in args.checkpoints:
        cfg, x, _, y, _, model = held_out_reconstructions(path, data=args.data)
        sr = cfg.audio.sample_rate
        with torch.no_grad():
            z = model.sample(args.samples, generator=torch.Generator().manual_seed(args.seed))
            s = model.decode(z)
        real = contours(x, sr)
        rec, smp = contours(y, sr), contours(s, sr)
        c = compare(real, rec)
        voiced = " / ".join(f"{v.mean():.0%}" for v in (real[1], rec[1], smp[1]))
        ranges = " / ".join(shown(semitone_range(*t), "{:.1f}") for t in (real, rec, smp))
        table.add_row(path, voiced, shown(c["cents"], "{:.0f}"), shown(c["semitone"], "{:.0%}"),
                      shown(c["follows"], "{:.2f}"), ranges)
        drawn.append((path, rec))
        picked = voiced_sounds(real)[:6]
        grid.setdefault("real", [x[i, 0].numpy() for i in picked])
        grid[path] = [y[i, 0].numpy() for i in picked]
    console.print(table)
    if (args.png or args.grid) and not voiced_sounds(real):
        console.print(f"pitch_contours: no held-out sound has {MIN_FRAMES} voiced frames: nothing to draw")
        return 0
    if args.png and real is not None:
        draw(args.png, real, drawn, HOP_S)
    if args.grid and real is not None:
        from flowshot.model.plots import spectrogram_grid

        spectrogram_grid(grid, sr, args.grid, title="held-out sounds (top) and each checkpoint's reconstructions",
                         n_fft=1024)
    return 0


def shown(value: float, form: str) -> str:
    """A table cell: the value, or "n/a" where nothing was voiced to measure it."""
    return "n/a" if np.isnan(value) else form.format(value)


def voiced_sounds(real: tuple[np.ndarray, np.ndarray]) -> list[int]:
    """Indices of the sounds with MIN_FRAMES voiced frames or more."""
    return [i for i in range(real[1].shape[0]) if real[1][i].sum() >= MIN_FRAMES]


def draw(png: str, real: tuple[np.ndarray, np.ndarray], recons: list, hop_s: float, sounds: int = 8) -> None:
    """One panel per sound: the real contour and each checkpoint's reconstruction, Hz on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = voiced_sounds(real)[:sounds]
    fig, axes = plt.subplots(2, (len(picked) + 1) // 2, figsize=(3.2 * ((len(picked) + 1) // 2), 5.5), squeeze=False)
    for ax, i in zip(axes.flat, picked):
        t = np.arange(real[0].shape[1]) * hop_s
        ax.plot(t, np.where(real[1][i], 2 ** real[0][i], np.nan), "k", lw=2.5, label="real")
        for path, (p, v) in recons:
            ax.plot(t, np.where(v[i], 2 ** p[i], np.nan), lw=1.2, label=path.split("/")[-2] if "/" in path else path)
        ax.set_yscale("log")
        ax.set_title(f"held-out sound {i}", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
    axes.flat[0].set_ylabel("pitch, Hz")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
