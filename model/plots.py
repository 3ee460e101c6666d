"""Spectrogram grids: one PNG that shows several groups of sounds side by side.

Used by training (prior samples / real / reconstructions at each validation), by
``flowshot generate`` / ``vary`` and by evaluation. All panels share one colour scale so
a quieter sound really looks quieter.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

import numpy as np

# Below this the colour map is flat: quieter detail is inaudible in a one-shot anyway.
DYNAMIC_RANGE_DB = 80.0


def log_spectrogram(audio: np.ndarray, n_fft: int = 256) -> np.ndarray:
    """Log-magnitude STFT in dB (0 dB = full-scale sine).

    Args:
        audio: mono signal [T] (a leading channel axis of size 1 is dropped).
        n_fft: FFT size; hop is n_fft // 4 with a Hann window.

    Returns:
        [n_fft // 2 + 1, frames] magnitudes in dB.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n_fft = int(min(n_fft, max(16, 2 ** int(np.floor(np.log2(max(len(x), 16)))))))
    hop = n_fft // 4
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = np.hanning(n_fft)
    spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)).T
    # Full-scale sine peaks at sum(window) / 2 in the magnitude spectrum.
    ref = window.sum() / 2.0
    return 20.0 * np.log10(np.maximum(spec / ref, 1e-10))


def spectrogram_grid(
    rows: dict[str, list[np.ndarray]],
    sample_rate: int,
    path: str | Path,
    title: str = "",
    n_fft: int = 256,
    max_columns: int = 8,
) -> Path:
    """Write a PNG with one row per label and one column per sound.

    Args:
        rows: label -> list of mono signals [T] (or [1, T]); rows may differ in length.
        sample_rate: Hz, for the time and frequency axes.
        path: PNG file to write (parent folders are created; written atomically).
        title: figure title.
        n_fft: STFT size of the spectrograms.
        max_columns: at most this many sounds per row are drawn.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = [k for k, v in rows.items() if len(v) > 0]
    if not labels:
        raise ValueError("spectrogram_grid needs at least one non-empty row")
    ncols = min(max_columns, max(len(rows[k]) for k in labels))
    specs = {k: [log_spectrogram(a, n_fft) for a in rows[k][:ncols]] for k in labels}
    # One colour scale for the whole grid: the loudest bin anywhere sets the top.
    vmax = max(float(s.max()) for ss in specs.values() for s in ss)
    vmin = vmax - DYNAMIC_RANGE_DB

    fig, axes = plt.subplots(
        len(labels), ncols, figsize=(1.8 * ncols + 0.8, 1.6 * len(labels) + 0.6), squeeze=False
    )
    image = None
    for r, label in enumerate(labels):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(specs[label]):
                ax.axis("off")
                continue
            s = specs[label][c]
            n = len(np.asarray(rows[label][c]).reshape(-1))
            image = ax.imshow(
                s,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=vmin,
                vmax=vmax,
                extent=(0.0, n / sample_rate, 0.0, sample_rate / 2000.0),
            )
            if c == 0:
                # Wrapped: long labels (checkpoint paths) would run into the next row's.
                ax.set_ylabel(textwrap.fill(label.replace("/", "/ "), 18).replace("/ ", "/"), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="dB")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=80)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the PNG is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return path
