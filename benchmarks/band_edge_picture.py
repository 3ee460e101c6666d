"""Draw the band-edge ring: held-out sounds' spectra, real and reconstructed by each
checkpoint, over the first band edges (the multiples of sample rate / PQMF bands,
dotted), where an offset in a sub-band comes out as a steady tone.

    .venv/bin/python benchmarks/band_edge_picture.py runs/hyd-s1/last.ckpt runs/hyd-s1/hp16.ckpt \\
        --data /usr/share/hydrogen/data/drumkits --classes snare hat_open crash -o ring.png

One panel per class (its first held-out sound), one line per checkpoint. All checkpoints
must share a sample rate and PQMF bands (e.g. one run with and without an inference-only
setting, ``flowshot adjust``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def spectrum_db(x: np.ndarray, sample_rate: int, smooth_hz: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """One sound [L] -> (frequencies, power in dB of one Hann-windowed FFT of the whole
    sound, smoothed over ``smooth_hz`` so a line stands out from the noise, not the bins' scatter)."""
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    width = max(1, int(round(smooth_hz / freqs[1])))
    power = np.convolve(power, np.ones(width) / width, mode="same")
    return freqs, 10 * np.log10(power + 1e-20)


def main() -> int:
    from held_out import add_data_argument, held_out_reconstructions  # benchmarks/ is a script folder, not a package

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints of one run (same rate and bands)")
    ap.add_argument("--classes", nargs="+", default=["snare", "hat_open", "crash"], help="one panel per class")
    ap.add_argument("--edges", type=int, default=4, help="how many band edges to show (default 4)")
    ap.add_argument("-o", "--out", required=True, help="the PNG")
    add_data_argument(ap)
    args = ap.parse_args()

    torch.set_num_threads(1)
    recons = []
    for path in args.checkpoints:
        cfg, x, classes, y, _, _ = held_out_reconstructions(path, args.data)
        recons.append((path, y[:, 0].numpy()))
    sr, bands = cfg.audio.sample_rate, cfg.model.pqmf_bands
    edge = sr / (2 * bands)
    # The evaluation's ring is at the multiples of sample rate / bands (every other edge).
    step = 2 * edge
    top = step * (args.edges + 0.5)
    fig, axes = plt.subplots(len(args.classes), 1, figsize=(9, 2.6 * len(args.classes)), squeeze=False)
    for ax, name in zip(axes[:, 0], args.classes):
        picks = [i for i, c in enumerate(classes) if c == name]
        if not picks:
            ax.set_title(f"{name}: no held-out sound")
            continue
        i = picks[0]
        freqs, real = spectrum_db(x[i, 0].numpy(), sr)
        keep = (freqs > step / 2) & (freqs < top)
        ax.plot(freqs[keep], real[keep], color="black", lw=1.2, label="real")
        for k, (path, y) in enumerate(recons):  # the first on top: the others differ from it at the edges only
            _, db = spectrum_db(y[i], sr)
            ax.plot(freqs[keep], db[keep], lw=0.9, label=path, zorder=len(recons) - k)
        for k in range(1, args.edges + 1):
            ax.axvline(k * step, color="grey", ls=":", lw=0.8)
        ax.set(title=f"held-out {name} (sound {i}): band edges dotted, every {step:.0f} Hz", xlabel="Hz",
               ylabel="dB")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
