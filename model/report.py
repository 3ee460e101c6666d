"""A training run in pictures and numbers: ``flowshot report RUN_DIR``.

Writes, into ``RUN_DIR/report`` (or ``-o``):

* ``curves.png``: validation and training reconstruction loss, KL and active units
  against the step, from ``validation.jsonl``;
* ``grid.png``: spectrograms of prior samples / real held-out sounds (one per class
  first, so every kind of sound is seen) / their reconstructions, one colour scale;
* ``kl_per_dim.png``: the closed-form KL of the base posterior per latent dimension on
  the held-out sounds, sorted: how much of the latent the model really uses;
* ``report.md`` / ``report.json``: the same numbers, plus output level (RMS and peak, dB)
  and how the sounds start (onset time, level of the attack) for samples and
  reconstructions against the real sounds;
* the WAVs of the grid, to listen to what the picture shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import LoadedModel, load_model
from flowshot.model.generate import decode_batched
from flowshot.model.latents import sampler_base

# Dimensions whose KL exceeds this many nats carry information (the usual threshold).
ACTIVE_NATS = 0.01
GRID_COLUMNS = 8


def read_validation_log(run_dir: Path) -> list[dict[str, float]]:
    """The records of ``RUN_DIR/validation.jsonl`` (one per validation), in step order."""
    path = run_dir / "validation.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a killed run
    return sorted(records, key=lambda r: r.get("step", 0))


def pick_preview(classes: list[str], n: int) -> list[int]:
    """Up to ``n`` positions: one per class in turn (round robin), so rare classes show too."""
    by_class: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        by_class.setdefault(c, []).append(i)
    order: list[int] = []
    queues = [list(v) for _, v in sorted(by_class.items())]
    while len(order) < n and any(queues):
        for q in queues:
            if q and len(order) < n:
                order.append(q.pop(0))
    return order


ATTACK_MS = 12.0  # the window whose level is "the attack"
ONSET_DB = -20.0  # a sound has started where it first comes within this of its peak
RUMBLE_HZ = 20.0  # below this a one-shot has next to nothing: what is there is offset or rumble


def level_db(audio: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Medians over a batch of sounds [N, L]: RMS, peak and attack level (dBFS), onset (ms),
    crest factor (each sound's peak over its RMS, dB), where the peak falls (ms), and the
    share of each sound's energy below ``RUMBLE_HZ`` (dB; median and worst).

    The crest factor tells a quiet sound from one that peaks as high but holds less energy
    under its peak (a sine 3 dB, white noise about 12): reconstructions of `small` peak
    within 1 dB of the data and still miss 3.5 dB of its RMS (docs/evaluation.md).

    The attack is the RMS of the first ``ATTACK_MS``; the onset is the first sample within
    ``ONSET_DB`` of the sound's peak. Examples are trimmed to start at their onset, so a
    model should start where the data does: a late onset is heard as a soft attack and
    costs it most of its level, which the RMS over a whole one-shot hardly shows.
    """
    rms = audio.pow(2).mean(dim=1).sqrt().clamp_min(1e-8)
    magnitude = audio.abs()
    peak = magnitude.amax(dim=1).clamp_min(1e-8)
    n = max(1, int(round(ATTACK_MS * 1e-3 * sample_rate)))
    attack = audio[:, :n].pow(2).mean(dim=1).sqrt().clamp_min(1e-8)
    onset = (magnitude >= peak[:, None] * 10 ** (ONSET_DB / 20)).float().argmax(dim=1)
    # One FFT of the whole sound, no window: a window would hide the attack, where an offset
    # under the envelope is largest. Its edge leaks the attack itself about 40 dB down.
    power = torch.fft.rfft(audio.double(), dim=1).abs().square()
    freqs = torch.fft.rfftfreq(audio.shape[1], 1.0 / sample_rate)
    rumble = (power[:, freqs < RUMBLE_HZ].sum(dim=1) / power.sum(dim=1).clamp_min(1e-30)).clamp_min(1e-12)
    return {
        "rms_db": float(20 * torch.log10(rms).median()),
        "peak_db": float(20 * torch.log10(peak).median()),
        "attack_db": float(20 * torch.log10(attack).median()),
        "onset_ms": float(onset.float().median()) * 1e3 / sample_rate,
        "crest_db": float(20 * torch.log10(peak / rms).median()),
        "peak_ms": float(magnitude.argmax(dim=1).float().median()) * 1e3 / sample_rate,
        "rumble_db": float(10 * torch.log10(rumble).median()),
        "rumble_worst_db": float(10 * torch.log10(rumble).max()),
    }


@torch.no_grad()
def kl_per_dimension(model: torch.nn.Module, audio: torch.Tensor, batch: int = 16) -> np.ndarray:
    """Closed-form KL(q(z0|x) || N(0, I)) of the base posterior per dimension, averaged over ``audio`` [N, L]."""
    total = None
    for i in range(0, len(audio), batch):
        post = model.encode(audio[i : i + batch, None])
        kl = 0.5 * (post.mean.pow(2) + post.logvar.exp() - 1.0 - post.logvar)
        total = kl.sum(dim=0) if total is None else total + kl.sum(dim=0)
    return (total / len(audio)).numpy()


def _plot_curves(records: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    panels = [
        (axes[0], [("val/recon", "validation"), ("train/recon", "training")], "reconstruction (MSTFT)"),
        (axes[1], [("train/kl", "KL (nats)")], "KL per sound"),
        (axes[2], [("train/active_units", "active units")], "active latent units"),
    ]
    # The untrained step-0 loss is ~8x the rest: a log axis keeps the later progress visible.
    axes[0].set_yscale("log")
    adversarial = [r["step"] for r in records if r.get("train/stage") == 2.0]
    for ax, keys, label in panels:
        if adversarial:
            ax.axvline(min(adversarial), color="grey", linestyle="--", linewidth=1, label="adversarial stage")
        for key, name in keys:
            pts = [(r["step"], r[key]) for r in records if key in r]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if len(keys) > 1 or adversarial:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_kl(kl: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ordered = np.sort(kl)[::-1]
    ax.bar(np.arange(len(ordered)), ordered, width=1.0)
    ax.axhline(ACTIVE_NATS, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension (sorted)")
    ax.set_ylabel("KL (nats)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                 data: list[str] | None = None, temperature: float = 1.0, seed: int = 0,
                 loaded: LoadedModel | None = None) -> dict[str, Any]:
    """Write the report files of a run; returns the numbers of ``report.json``.

    Args:
        run_dir: a folder written by ``flowshot train``.
        out_dir: where to write (default ``RUN_DIR/report``).
        checkpoint: the checkpoint to describe (default ``RUN_DIR/last.ckpt``).
        data: held-out sounds (default: the sources recorded in the checkpoint, their
            validation split).
        temperature, seed: of the prior samples.
    """
    from flowshot.model.audio_io import write_wav
    from flowshot.model.data import load_examples
    from flowshot.model.plots import spectrogram_grid

    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else run_dir / "last.ckpt"
    if not ckpt.exists():
        raise FlowshotError(f"{ckpt} does not exist; pass a run folder written by `flowshot train` (or --checkpoint)")
    loaded = loaded or load_model(ckpt)
    cfg, model = loaded.config, loaded.model
    sources = list(data) if data else list(loaded.meta.get("data", {}).get("sources", []))
    if not sources:
        raise FlowshotError(f"{ckpt} records no training data; pass --data with held-out sounds")
    examples = load_examples(sources, cfg, progress=False)
    held_out = examples.val_index() or list(range(len(examples)))
    audio = examples.audio[held_out]
    classes = [examples.classes[i] for i in held_out]
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    step = int(loaded.meta.get("step", 0))
    # Prior samples as `flowshot generate` draws them (the training sounds' base
    # points when the checkpoint keeps them), plus the flow prior's level for comparison.
    n_many = max(64, len(audio))

    def draw(n: int, draw_seed: int, sampler: str) -> tuple[Tensor, str]:
        u, used = sampler_base(loaded.meta, n, model.latent_dim, temperature, torch.Generator().manual_seed(draw_seed), sampler)
        return decode_batched(model, model.base_to_latent(u)), used

    with torch.no_grad():
        prior, sampler = draw(GRID_COLUMNS, seed, "kernel")
        z_post = torch.cat([model.embed(audio[i : i + 16, None]) for i in range(0, len(audio), 16)])
        recon = decode_batched(model, z_post)
        many, _ = draw(n_many, seed + 1, "kernel")
        many_flow = many if sampler == "flow" else draw(n_many, seed + 1, "flow")[0]
    pick = pick_preview(classes, GRID_COLUMNS)
    rows = {"prior": list(prior.numpy()), "real": [audio[i].numpy() for i in pick], "recon": [recon[i].numpy() for i in pick]}
    spectrogram_grid(rows, cfg.audio.sample_rate, out / "grid.png",
                     title=f"{run_dir.name}, step {step}: prior samples ({sampler}, T={temperature:g}) / held-out / reconstructions")
    for label, sounds in rows.items():
        for k, a in enumerate(sounds):
            write_wav(out / f"{label}-{k:02d}.wav", np.asarray(a, dtype=np.float32), cfg.audio.sample_rate)

    kl = kl_per_dimension(model, audio)
    records = read_validation_log(run_dir)
    if records:
        _plot_curves(records, out / "curves.png", f"{run_dir.name}: losses")
    _plot_kl(kl, out / "kl_per_dim.png", f"{run_dir.name}, step {step}: KL per latent dimension (held-out mean)")

    result = {
        "run": str(run_dir),
        "checkpoint": str(ckpt),
        "step": step,
        "held_out": len(audio),
        "classes_in_grid": [classes[i] for i in pick],
        "val_recon_last": records[-1].get("val/recon") if records else None,
        "kl_total_nats": float(kl.sum()),
        "active_units": int((kl > ACTIVE_NATS).sum()),
        "latent_dim": int(kl.shape[0]),
        "level_real": level_db(audio, cfg.audio.sample_rate),
        "sampler": sampler,
        "level_prior_samples": level_db(many, cfg.audio.sample_rate),
        "level_prior_samples_flow": level_db(many_flow, cfg.audio.sample_rate),
        "level_reconstructions": level_db(recon, cfg.audio.sample_rate),
    }
    (out / "report.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_markdown(result))
    return result


def _level_row(name: str, level: dict[str, float]) -> str:
    return (f"| level {name} (median RMS / peak / first {ATTACK_MS:g} ms; crest; onset; energy < {RUMBLE_HZ:g} Hz) | "
            f"{level['rms_db']:.1f} / {level['peak_db']:.1f} / {level['attack_db']:.1f} dBFS; "
            f"{level['crest_db']:.1f} dB; {level['onset_ms']:.1f} ms; {level['rumble_db']:.1f} dB |")


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# {r['run']} at step {r['step']}",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| validation reconstruction loss (last) | {r['val_recon_last']} |",
        f"| KL of the encoder Gaussian vs N(0, I), before the flows (held-out mean) | {r['kl_total_nats']:.1f} nats |",
        f"| active units (KL > {ACTIVE_NATS} nats) | {r['active_units']} / {r['latent_dim']} |",
        _level_row("real", r["level_real"]),
        _level_row(f"prior samples ({r.get('sampler', 'flow')} sampler)", r["level_prior_samples"]),
        *([_level_row("prior samples (flow sampler)", r["level_prior_samples_flow"])] if r.get("sampler") not in (None, "flow") else []),
        _level_row("reconstructions", r["level_reconstructions"]),
        "",
        "Pictures: `grid.png`, `curves.png`, `kl_per_dim.png`; the grid's sounds as WAVs.",
        "",
    ]
    return "\n".join(lines)
