"""New sounds from a trained checkpoint: prior samples (``generate``) and variations of a
given sound (``vary``).

Both write WAVs at the model's rate and length plus one ``grid.png`` of spectrograms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import LoadedModel, load_model
from flowshot.model.latents import sampler_base

# Decoding in chunks keeps memory flat for large -n.
DECODE_BATCH = 16
# The grid shows at most this many rows of this many sounds.
GRID_COLUMNS = 8
GRID_ROWS = 4
# How random draws are made: see ``generate``'s ``sampler``.
SAMPLERS = ("data", "flow", "kernel")


def _subtype(float_wav: bool) -> str:
    return "FLOAT" if float_wav else "PCM_16"


@torch.no_grad()
def decode_batched(model: torch.nn.Module, z: Tensor) -> Tensor:
    """z [N, D] -> audio [N, L] as played (``FlowVAE.render``, DECODE_BATCH at a time)."""
    return torch.cat([model.render(z[i : i + DECODE_BATCH])[:, 0] for i in range(0, len(z), DECODE_BATCH)])


def _write_set(
    out_dir: Path, names: list[str], audio: Tensor, sample_rate: int, subtype: str
) -> list[Path]:
    from flowshot.model.audio_io import write_wav

    paths = []
    for name, a in zip(names, audio):
        paths.append(write_wav(out_dir / name, a.float().cpu().numpy(), sample_rate, subtype=subtype))
    return paths


def generate(
    checkpoint: str | Path,
    n: int,
    out_dir: str | Path,
    temperature: float = 1.0,
    seed: int = 0,
    float_wav: bool = False,
    loaded: LoadedModel | None = None,
    sampler: str = "kernel",
) -> list[Path]:
    """Sample ``n`` sounds from the prior: ``out_dir/sample-000.wav`` ... and ``grid.png``.

    Args:
        checkpoint: ``.ckpt`` from ``flowshot train``.
        n: number of sounds (>= 1).
        temperature: scale of the base-space Gaussian (0 = the prior's centre, 1 = as trained).
        seed: seed of the sampling noise (same seed -> same sounds).
        float_wav: write 32-bit float WAVs instead of 16-bit PCM.
        loaded: an already loaded model (skips reading ``checkpoint``).
        sampler: "kernel" draws around random training sounds' base points
            (``latents.kernel_base``; T scales the noise, 0 = their own modes); "data" draws
            base points like the training sounds' (each dimension's distribution, correlated
            as theirs are: ``latents.marginal_base``); "flow" draws N(0, T^2) base points,
            the flow prior as trained. Both statistics are the checkpoint's, written when
            training ends (``latents.sampler_base`` falls back when they are missing).

    Returns:
        The WAV paths, in order.
    """
    if sampler not in SAMPLERS:
        raise FlowshotError(f"--sampler {sampler!r} is not known; use one of {', '.join(SAMPLERS)}")
    if n < 1:
        raise FlowshotError(f"-n must be at least 1, got {n}")
    if not np.isfinite(temperature) or temperature < 0:
        raise FlowshotError(f"--temperature must be >= 0 (1.0 = as trained), got {temperature}")
    loaded = loaded or load_model(checkpoint)
    cfg, model = loaded.config, loaded.model
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    u, used = sampler_base(loaded.meta, n, model.latent_dim, float(temperature), gen, sampler)
    if used != sampler:
        print(f"note: {Path(checkpoint).name} lacks the latent statistics --sampler {sampler} needs "
              f"(`flowshot stats {checkpoint}` adds them): drawing with --sampler {used} instead")
    with torch.no_grad():
        z = model.base_to_latent(u)
    audio = decode_batched(model, z)
    out_dir = Path(out_dir)
    names = [f"sample-{i:03d}.wav" for i in range(n)]
    paths = _write_set(out_dir, names, audio, cfg.audio.sample_rate, _subtype(float_wav))
    rows = {}
    for r in range(min(GRID_ROWS, (n + GRID_COLUMNS - 1) // GRID_COLUMNS)):
        chunk = audio[r * GRID_COLUMNS : (r + 1) * GRID_COLUMNS]
        rows[f"{r * GRID_COLUMNS}-{r * GRID_COLUMNS + len(chunk) - 1}"] = [a.numpy() for a in chunk]
    _grid(rows, cfg.audio.sample_rate, out_dir, f"{Path(checkpoint).name}: prior samples ({used}), T={temperature}, seed {seed}")
    return paths


def preprocess_file(path: str | Path, loaded: LoadedModel) -> Tensor:
    """One audio file -> [1, 1, L] exactly as training prepared its examples.

    Uses ``flowshot.model.preprocess.preprocess`` (mono mix, resampling, onset trim,
    crop/pad with fade, normalisation) with the checkpoint's audio settings.
    """
    from flowshot.model.audio_io import read_audio
    from flowshot.model.preprocess import SkipFile, preprocess

    path = Path(path)
    if not path.is_file():
        raise FlowshotError(f"sound file {path} does not exist; pass an audio file (wav, flac, ogg, ...)")
    audio, sr = read_audio(path)  # raises a one-line AudioReadError naming the file
    try:
        x = preprocess(audio, sr, loaded.config.audio)
    except SkipFile as err:
        raise FlowshotError(f"{path}: no usable sound ({err}); pass a louder or longer one-shot") from None
    return torch.as_tensor(x, dtype=torch.float32).reshape(1, 1, -1)


def vary(
    checkpoint: str | Path,
    sound: str | Path,
    n: int,
    out_dir: str | Path,
    spread: float = 0.5,
    seed: int = 0,
    float_wav: bool = False,
    loaded: LoadedModel | None = None,
) -> list[Path]:
    """Variations of one sound around its latent.

    The sound is encoded (posterior mode), mapped to the prior flow's base space (where
    the prior is a unit Gaussian, so ``spread`` is in prior standard deviations), moved by
    ``spread * N(0, I)`` offsets, mapped back and decoded.

    Writes ``original.wav`` (the preprocessed input), ``reconstruction.wav``,
    ``variation-000.wav`` ... and ``grid.png``.

    Returns:
        The variation WAV paths, in order.
    """
    if n < 1:
        raise FlowshotError(f"-n must be at least 1, got {n}")
    if not np.isfinite(spread) or spread < 0:
        raise FlowshotError(f"--spread must be >= 0 (in prior standard deviations), got {spread}")
    loaded = loaded or load_model(checkpoint)
    cfg, model = loaded.config, loaded.model
    x = preprocess_file(sound, loaded)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        z = model.embed(x)
        u = model.latent_to_base(z)
        offsets = torch.randn(n, u.shape[1], generator=gen) * float(spread)
        z_var = model.base_to_latent(u + offsets)
        recon = model.render(z)[:, 0]
    variations = decode_batched(model, z_var)
    out_dir = Path(out_dir)
    sr, subtype = cfg.audio.sample_rate, _subtype(float_wav)
    _write_set(out_dir, ["original.wav", "reconstruction.wav"], torch.cat([x[:, 0], recon]), sr, subtype)
    paths = _write_set(out_dir, [f"variation-{i:03d}.wav" for i in range(n)], variations, sr, subtype)
    rows = {
        "original": [x[0, 0].numpy()],
        "reconstruction": [recon[0].numpy()],
        "variations": [a.numpy() for a in variations[:GRID_COLUMNS]],
    }
    _grid(rows, sr, out_dir, f"{Path(sound).name}: {n} variations, spread {spread}, seed {seed}")
    return paths


def _grid(rows: dict[str, list[np.ndarray]], sample_rate: int, out_dir: Path, title: str) -> None:
    from flowshot.model.plots import spectrogram_grid

    spectrogram_grid(rows, sample_rate, out_dir / "grid.png", title=title, max_columns=GRID_COLUMNS)
