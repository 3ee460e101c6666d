"""One sound file's samples -> one training example (torch-free: the live host uses it too).

Mixed to mono, resampled to the model rate, leading silence trimmed so the example
starts at its onset, cropped (with a short fade) or zero-padded to the model length,
then peak- or loudness-normalised. Whatever feeds the encoder a file (training,
``flowshot vary``, a pad loaded in the live host) goes through the same steps, so the
encoder hears files the way it was trained to.
"""

from __future__ import annotations

import numpy as np
import soxr

from flowshot.errors import FlowshotError
from flowshot.model.config import AudioConfig

PREROLL_MS = 2.0  # kept before the detected onset: the attack's first rise stays intact
SILENCE_DB = -80.0  # a file whose peak is below this is treated as silent


class SkipFile(Exception):
    """Internal: this file gives no example; the message is the short reason."""


def preprocess(audio: np.ndarray, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """One file's samples -> one example.

    Args:
        audio: ``[channels, frames]`` (or ``[frames]``) float samples.
        sample_rate: the file's rate in Hz.
        cfg: target rate/length, trim, fade and normalisation settings.

    Returns:
        float32 ``[cfg.length]``.

    Raises:
        SkipFile: empty, NaN/inf, silent or too short after trimming.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[-1] == 0:
        raise SkipFile("empty (0 frames)")
    if not np.all(np.isfinite(x)):
        raise SkipFile("contains NaN/inf samples")
    x = x.mean(axis=0)
    if np.max(np.abs(x)) < 10.0 ** (SILENCE_DB / 20.0):
        raise SkipFile(f"silent (peak below {SILENCE_DB:.0f} dBFS)")
    if sample_rate != cfg.sample_rate:
        x = soxr.resample(x, sample_rate, cfg.sample_rate, quality="HQ")
    x = trim_leading_silence(x, cfg.sample_rate, cfg.trim_db)
    min_len = int(round(cfg.min_length_ms * 1e-3 * cfg.sample_rate))
    if len(x) < min_len:
        raise SkipFile(f"too short ({1e3 * len(x) / cfg.sample_rate:.1f} ms after trimming, need {cfg.min_length_ms:g} ms)")
    x = fit_length(x, cfg.length, cfg.sample_rate, cfg.fade_out_ms)
    return normalize(x, cfg).astype(np.float32)


def trim_leading_silence(x: np.ndarray, sample_rate: int, trim_db: float) -> np.ndarray:
    """Cut everything before the first sample within ``trim_db`` of the peak, minus a 2 ms pre-roll. ``[T] -> [T']``."""
    mag = np.abs(x)
    threshold = mag.max() * 10.0 ** (-trim_db / 20.0)
    onset = int(np.argmax(mag >= threshold))
    start = max(0, onset - int(round(PREROLL_MS * 1e-3 * sample_rate)))
    return x[start:]


def fit_length(x: np.ndarray, length: int, sample_rate: int, fade_out_ms: float) -> np.ndarray:
    """Crop to ``length`` with a half-cosine fade over the last ``fade_out_ms``, or zero-pad. ``[T] -> [length]``."""
    if len(x) > length:
        y = x[:length].copy()
        n = min(length, int(round(fade_out_ms * 1e-3 * sample_rate)))
        if n > 0:
            y[length - n :] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, n)))
        return y
    y = np.zeros(length, dtype=x.dtype)
    y[: len(x)] = x
    return y


def normalize(x: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Scale to ``cfg.target_peak_db`` peak, or ``cfg.target_rms_db`` RMS limited to -0.1 dBFS peak. ``[L] -> [L]``."""
    peak = float(np.max(np.abs(x)))
    if peak <= 0.0:
        return x
    if cfg.normalize == "peak":
        return x * (10.0 ** (cfg.target_peak_db / 20.0) / peak)
    if cfg.normalize == "loudness":
        rms = float(np.sqrt(np.mean(x**2)))
        gain = 10.0 ** (cfg.target_rms_db / 20.0) / rms
        gain = min(gain, 10.0 ** (-0.1 / 20.0) / peak)
        return x * gain
    raise FlowshotError(f"audio.normalize={cfg.normalize!r} is not known; use 'peak' or 'loudness'")
