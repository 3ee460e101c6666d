"""The PNGs of ``flowshot evaluate``: spectrogram grid, latent map, per-class bars, long-term spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of [N, D] onto their first two principal components: [N, 2]."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    return np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))  # D == 1 still gives 2 columns


def _save(fig: "object", path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    tmp.replace(path)


def latent_map(maps: dict[str, tuple[np.ndarray, list[str]]], path: Path) -> Path:
    """One scatter per model: PCA of the test sounds' posterior modes, coloured by class.

    Args:
        maps: model label -> (modes [N, D], class of each sound).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps) + 1.5, 4), squeeze=False)
    for ax, (label, (modes, classes)) in zip(axes[0], maps.items()):
        xy = pca_2d(modes)
        names = sorted(set(classes))
        colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        labels = np.asarray(classes)
        for i, name in enumerate(names):
            sel = labels == name
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colours(i % colours.N), label=name)
        ax.set_title(f"{label}: posterior modes (PCA)", fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _save(fig, path)
    return path


def per_class_bars(per_class: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """Grouped bars: one panel per metric, one group per class, one bar per model.

    Args:
        per_class: model label -> class -> metric -> mean value.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    models = list(per_class)
    classes = sorted({c for m in per_class.values() for c in m})
    metric_names = sorted({k for m in per_class.values() for c in m.values() for k in c})
    fig, axes = plt.subplots(len(metric_names), 1, figsize=(max(6, 0.9 * len(classes) + 2), 2.4 * len(metric_names)), squeeze=False)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(classes))
    for ax, metric in zip(axes[:, 0], metric_names):
        for j, model in enumerate(models):
            values = [per_class[model].get(c, {}).get(metric, np.nan) for c in classes]
            ax.bar(x + (j - (len(models) - 1) / 2) * width, values, width, label=model)
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        ax.set_xticks(x, classes, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_title("reconstruction error per class (lower is better)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def spectra_plot(spectra: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Long-term spectra on a log-frequency axis, smoothed to 1/12 octave.

    Args:
        spectra: label -> (freqs, power) from ``metrics.long_term_spectrum``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for label, (freqs, power) in spectra.items():
        top = freqs[-1]
        # From 5 Hz (or two bins): an offset or rumble under the sounds lies below 20 Hz.
        # Down there a 1/12 octave is narrower than a bin, so the nearest bin stands in.
        low = max(5.0, 2 * float(freqs[1] - freqs[0]))
        centres = low * 2.0 ** (np.arange(0, np.log2(top / low), 1 / 12))
        smooth = []
        for c in centres:
            band = (freqs >= c * 2 ** (-1 / 24)) & (freqs < c * 2 ** (1 / 24))
            smooth.append(power[band].mean() if band.any() else power[np.abs(freqs - c).argmin()])
        ax.semilogx(centres, 10 * np.log10(np.asarray(smooth) + 1e-30), label=label,
                    linewidth=2.0 if label.startswith("real") else 1.0)
    ax.set_xlabel("Hz")
    ax.set_ylabel("mean power, dB")
    ax.set_title("long-term spectrum (1/12 octave): steady tones and missing bands show here", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def write_plots(
    out_dir: Path,
    grid_rows: dict[str, list[np.ndarray]],
    sample_rate: int,
    maps: dict[str, tuple[np.ndarray, list[str]]],
    per_class: dict[str, dict[str, dict[str, float]]],
    spectra: dict[str, tuple[np.ndarray, np.ndarray]],
) -> list[Path]:
    """spectrograms.png (samples vs real), latent_map.png, per_class.png, spectra.png in ``out_dir``."""
    from flowshot.model.plots import spectrogram_grid

    out_dir = Path(out_dir)
    return [
        spectrogram_grid(grid_rows, sample_rate, out_dir / "spectrograms.png", title="real vs generated"),
        latent_map(maps, out_dir / "latent_map.png"),
        per_class_bars(per_class, out_dir / "per_class.png"),
        spectra_plot(spectra, out_dir / "spectra.png"),
    ]
