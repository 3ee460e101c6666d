"""Do reconstructed drum bodies keep their pitch? Per class, real against reconstructed.

For each held-out kick and tom of ``builtin:drums`` (bodies of 40-68 and 76-258 Hz), or of
the folders ``--data`` names (classes from the file names), the loudest frequency under
500 Hz of one FFT of the whole sound, real and reconstructed.
Printed per checkpoint and class: the median pitch error in semitones, the share within a
semitone, how many distinct pitches the reconstructions play (the real sounds: about as
many as there are sounds), and the reconstructions' level within a semitone of the real
pitch against the real sound's there. A decoder that plays every body at one
of a few fixed pitches shows as few distinct pitches and a large error. For a model with
body oscillators (``model.body_oscillators``), also the first oscillator's resting pitch
against the real body's (what it was told to learn), and a second table of its glide,
decay and level per class against the ranges ``builtin:drums`` draws them from. Rims
(a 380-560 Hz tone ringing over a click) get a row of their own, by ``tone_pitch``.

    .venv/bin/python benchmarks/body_pitch.py runs/base-s0/last.ckpt runs/body-s0/last.ckpt --png pitch.png

``--split train`` measures the sounds the checkpoints trained on instead: a class a model
fits there and misses held out is one it does not generalise to.

``--png`` draws each checkpoint's reconstructed pitch against the real one, one dot per
sound: on the diagonal is right, a row of dots is a pitch the decoder plays for everything.
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


def tone_pitch(x: np.ndarray, sample_rate: int, lo: float = 300.0, hi: float = 700.0, ms: float = 50.0) -> np.ndarray:
    """[N, L] sounds -> each one's loudest frequency between ``lo`` and ``hi`` Hz over its
    first ``ms`` [N]: a rim's tone (380-560 Hz in ``builtin:drums``), which rings for tens
    of milliseconds over a click, where ``body_pitch`` looks under 500 Hz over the whole sound."""
    head = x[:, : int(ms * 1e-3 * sample_rate)]
    n_fft = max(8192, head.shape[-1])
    spec = np.abs(np.fft.rfft(head * np.hanning(head.shape[-1]), n_fft, axis=-1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs > lo) & (freqs < hi)
    return freqs[band][spec[:, band].argmax(axis=-1)]


def distinct_pitches(f: np.ndarray) -> int:
    """Pitches [N], Hz -> how many different ones, counted in whole semitones."""
    return len(np.unique(np.round(12 * np.log2(f / 20.0))))


def pitch_error(f: np.ndarray, f_real: np.ndarray) -> tuple[float, float]:
    """Pitches against the real ones [N], Hz -> (median error in semitones, share within one)."""
    semis = 12 * np.abs(np.log2(f / f_real))
    return float(np.median(semis)), float(np.mean(semis < 1.0))


def pitch_rows(real: np.ndarray, recon: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Real and reconstructed sounds of one class [N, L] -> the table's numbers, and
    each sound's pitch, real and reconstructed (``real_hz``, ``recon_hz``)."""
    f_real, freqs, p_real = body_pitch(real, sample_rate)
    f_recon, _, p_recon = body_pitch(recon, sample_rate)
    median, within = pitch_error(f_recon, f_real)
    level = []
    for i, f in enumerate(f_real):
        near = (freqs > f / 2 ** (1 / 12)) & (freqs < f * 2 ** (1 / 12))
        level.append(10 * np.log10(max(p_recon[i, near].sum(), 1e-30) / max(p_real[i, near].sum(), 1e-30)))
    return {"sounds": len(f_real), "median_semitones": median, "within_semitone": within,
            "distinct": distinct_pitches(f_recon), "distinct_real": distinct_pitches(f_real),
            "level_db": float(np.median(level)), "real_hz": f_real, "recon_hz": f_recon}


def oscillator_parameters(bodies: torch.nn.Module, z: torch.Tensor) -> np.ndarray | None:
    """A model's body oscillators and posterior modes z [N, D] -> the first oscillator's
    parameters [N, 6 or 7] (``BodyOscillators.parameters_of``: resting pitch Hz, strike pitch
    Hz, glide s, decay s, amplitude, phase, and drive if the model has it); None for a
    model without oscillators."""
    if bodies.count == 0:
        return None
    with torch.no_grad():
        return bodies.parameters_of(z)[:, 0].numpy()


def oscillator_cell(params: np.ndarray | None, pick: np.ndarray, f_real: np.ndarray) -> str:
    """``oscillator_parameters`` [N, 6 or 7], the sounds of one row [N] (bool) and their real
    pitches, Hz -> the table's "median error / distinct" cell for the oscillator's resting
    pitch; "-" for a model without oscillators."""
    if params is None:
        return "-"
    f_osc = params[pick, 0]
    return f"{pitch_error(f_osc, f_real)[0]:.1f} / {distinct_pitches(f_osc)}"


def spread(values: np.ndarray, fmt: str) -> str:
    """'5th-95th percentile' of values, each in fmt."""
    lo, hi = np.percentile(values, [5, 95])
    return f"{lo:{fmt}}-{hi:{fmt}}"


def pitch_picture(path: str, panels: list[tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]]) -> None:
    """One panel per checkpoint: (its name, class -> (real pitches, reconstructed)) -> a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (name, by_class) in zip(axes[0], panels):
        for label, (real, recon) in by_class.items():
            ax.scatter(real, recon, s=12, label=label)
        ax.plot([30, 500], [30, 500], color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", xlim=(30, 500), ylim=(30, 500), title=name,
               xlabel="real body pitch, Hz", ylabel="reconstructed, Hz")
        ticks = [40, 60, 100, 200, 400]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    from held_out import add_data_argument, add_split_argument, held_out_reconstructions  # benchmarks/: scripts, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on the same data")
    ap.add_argument("--png", help="also draw reconstructed against real pitch, per checkpoint, into this PNG")
    add_data_argument(ap)
    add_split_argument(ap)
    args = ap.parse_args()

    torch.set_num_threads(1)
    panels = []
    # What the data's bodies do (model/drums.py): kicks strike 2.5-6 times their resting
    # pitch and glide down over 8-45 ms; toms 1.2-1.9 times over 15-80 ms. Both are then
    # saturated, tanh(d x) / tanh(d), as the oscillator's drive (``model.body_drive``) is.
    builtin = args.data == ["builtin:drums"]
    which = "held-out" if args.split == "val" else "training"
    shape = Table(title=f"the first body oscillator, {which} sounds (5th-95th percentile)" + (
                  "; builtin:drums makes kicks strike 2.5-6x over 8-45 ms, decay 0.08-0.5 s, drive 0.8-3.5; toms "
                  "1.2-1.9x over 15-80 ms, 0.12-0.45 s, drive 1-2.5" if builtin else ""))
    for name in ("checkpoint", "class", "strike / resting pitch", "glide ms", "decay s", "amplitude", "drive"):
        shape.add_column(name, justify="left" if name in ("checkpoint", "class") else "right")
    table = Table(title=f"drum bodies' pitch, {which} sounds: reconstructions against real (rim tone: the loudest "
                  "frequency at 300-700 Hz over the first 50 ms)")
    for name in ("checkpoint", "class", "sounds", "median error, semitones", "within a semitone",
                 "distinct pitches (real)", "level at the real pitch, dB", "oscillator: median error / distinct"):
        table.add_column(name, justify="left" if name in ("checkpoint", "class") else "right")
    for path in args.checkpoints:
        cfg, x, classes, y, z, model = held_out_reconstructions(path, args.data, args.split)
        osc_params = oscillator_parameters(model.bodies, z)
        by_class = {}
        for name in CLASSES:
            pick = np.array([c == name for c in classes])
            if not pick.any():
                continue
            r = pitch_rows(x[pick, 0].numpy(), y[pick, 0].numpy(), cfg.audio.sample_rate)
            by_class[name] = (r["real_hz"], r["recon_hz"])
            osc = oscillator_cell(osc_params, pick, r["real_hz"])
            if osc_params is not None:
                p = osc_params[pick]
                shape.add_row(path, name, spread(p[:, 1] / p[:, 0], ".1f"), spread(1e3 * p[:, 2], ".0f"),
                              spread(p[:, 3], ".2f"), spread(p[:, 4], ".2f"),
                              spread(p[:, 6], ".1f") if p.shape[1] > 6 else "-")
            table.add_row(path, name, str(r["sounds"]), f"{r['median_semitones']:.1f}", f"{r['within_semitone']:.0%}",
                          f"{r['distinct']} ({r['distinct_real']})", f"{r['level_db']:+.1f}", osc)
        pick = np.array([c == "rim" for c in classes])
        if pick.any():
            f_real = tone_pitch(x[pick, 0].numpy(), cfg.audio.sample_rate)
            f_recon = tone_pitch(y[pick, 0].numpy(), cfg.audio.sample_rate)
            median, within = pitch_error(f_recon, f_real)
            osc = oscillator_cell(osc_params, pick, f_real)
            table.add_row(path, "rim tone", str(int(pick.sum())), f"{median:.1f}",
                          f"{within:.0%}", f"{distinct_pitches(f_recon)} ({distinct_pitches(f_real)})", "-", osc)
        panels.append((path, by_class))
    Console(width=200).print(table)
    if shape.rows:
        Console(width=200).print(shape)
    if args.png:
        pitch_picture(args.png, panels)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
