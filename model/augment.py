"""Training-time augmentations of one-shots, each switchable from ``AugmentConfig``.

The augmentations are chosen so that they do not change what a listener would call
"the same sound" much, but break shortcuts a model could take: an onset at exactly
sample 0 (offset jitter), one fixed phase response (all-pass), exact digital silence
(dequantisation), one pitch per recording (pitch shift) and one level (gain).

Offset jitter and all-pass change only what the encoder hears; the reconstruction
target keeps the onset at sample 0 and its own phase (``AugmentConfig.encoder_only``).
Applied to both, they taught the decoder the *average* onset: models trained that way
start every hit 2.9 ms late (median over held-out sounds), silent for the first
1.5 ms, and lose 4.5 dB in the first 12 ms (docs/evaluation.md). A sampler must start at
once, and the STFT loss's long windows hardly notice a few milliseconds.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import soxr

from flowshot.model.config import AugmentConfig

_LSB_16 = 1.0 / 32768.0


class Augmenter:
    """Randomly transform a one-shot, keeping its length.

    Args:
        cfg: which parts run and how strongly (``offset_jitter_ms`` 0, ``allpass_prob`` 0,
            ``dequantize`` False, ``pitch_shift_semitones`` or ``pitch_shift_prob`` 0 and
            ``gain_db`` 0 each switch their part off).
        sample_rate: model sample rate in Hz.
        length: samples per example ``L``.
        allpass_sections: maximum number of 2nd-order all-pass sections in the cascade.

    Call with ``x`` float32 ``[L]`` and a ``np.random.Generator``; returns float32
    ``[2, L]``: row 0 what the encoder hears, row 1 the reconstruction target. Order:
    pitch shift (both), all-pass and offset jitter (row 0 only unless
    ``cfg.encoder_only`` is False), gain (both, the same), dequantisation (both, the same
    noise, last so it is one LSB of the final signal).
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int, length: int, allpass_sections: int = 4) -> None:
        self.cfg = cfg
        self.sample_rate = int(sample_rate)
        self.length = int(length)
        self.allpass_sections = int(allpass_sections)
        self.max_offset = int(round(cfg.offset_jitter_ms * 1e-3 * sample_rate))

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        # Always a copy: the input is often a view of the whole data set's tensor.
        y = np.array(x, dtype=np.float32)
        if y.shape != (self.length,):
            raise ValueError(f"Augmenter expects shape ({self.length},), got {y.shape}")
        if c.pitch_shift_semitones > 0 and c.pitch_shift_prob > 0 and rng.random() < c.pitch_shift_prob:
            y = self.pitch_shift(y, rng.uniform(-c.pitch_shift_semitones, c.pitch_shift_semitones))
        heard = y
        if c.allpass_prob > 0 and rng.random() < c.allpass_prob:
            heard = self.allpass(heard, rng)
        if self.max_offset > 0:
            heard = self.offset(heard, int(rng.integers(0, self.max_offset + 1)))
        pair = np.stack([heard, y if c.encoder_only else heard]).astype(np.float32)
        if c.gain_db > 0:
            pair = self.gain(pair, rng.uniform(-c.gain_db, c.gain_db))
        if c.dequantize:
            pair = pair + rng.uniform(-0.5 * _LSB_16, 0.5 * _LSB_16, size=self.length).astype(np.float32)
        return pair.astype(np.float32, copy=False)

    def offset(self, x: np.ndarray, shift: int) -> np.ndarray:
        """Delay by ``shift`` samples: zeros in front, the tail cut to keep ``[L]``."""
        if shift <= 0:
            return x
        out = np.zeros_like(x)
        out[shift:] = x[: len(x) - shift]
        return out

    def gain(self, x: np.ndarray, db: float) -> np.ndarray:
        """Scale by ``db`` dB, but never lift the peak above 0 dBFS (what a decoder can reach).

        ``x`` may hold several rows (the encoder's and the target's): one gain for all.
        """
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        g = 10.0 ** (db / 20.0)
        if peak > 0 and peak * g > 1.0:
            g = 1.0 / peak
        return (x * g).astype(np.float32)

    def allpass(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Cascade of 1..``allpass_sections`` random 2nd-order all-pass sections.

        Each section ``H(z) = (a2 + a1 z^-1 + z^-2) / (1 + a1 z^-1 + a2 z^-2)`` has
        ``|H| = 1`` at every frequency, so only the phase (and the waveform) changes.
        Pole angle = a random centre frequency (log-uniform 40 Hz .. 0.45 fs), pole
        radius from a random bandwidth (Q 0.5 .. 5).
        """
        n = int(rng.integers(1, self.allpass_sections + 1))
        y = x.astype(np.float64)
        for _ in range(n):
            a1, a2 = self._allpass_coeffs(rng)
            y = scipy.signal.lfilter([a2, a1, 1.0], [1.0, a1, a2], y)
        return y.astype(np.float32)

    def _allpass_coeffs(self, rng: np.random.Generator) -> tuple[float, float]:
        sr = self.sample_rate
        f = float(np.exp(rng.uniform(np.log(40.0), np.log(0.45 * sr))))
        q = float(np.exp(rng.uniform(np.log(0.5), np.log(5.0))))
        r = float(np.exp(-np.pi * (f / q) / sr))
        return -2.0 * r * np.cos(2 * np.pi * f / sr), r * r

    def pitch_shift(self, x: np.ndarray, semitones: float) -> np.ndarray:
        """Shift pitch (and duration, as a tape would) by resampling; re-crop/pad to ``[L]``.

        Playing the samples back ``2 ** (semitones / 12)`` times faster: resample from a
        nominal rate that much higher to the model rate with soxr (high quality).
        """
        ratio = 2.0 ** (semitones / 12.0)
        if abs(ratio - 1.0) < 1e-6:
            return x
        y = soxr.resample(x.astype(np.float32), self.sample_rate * ratio, self.sample_rate, quality="HQ")
        out = np.zeros(self.length, dtype=np.float32)
        n = min(self.length, len(y))
        out[:n] = y[:n]
        if len(y) > self.length:
            # Slowed down past the end: fade the cut (10 ms) so it does not click.
            k = max(1, min(self.length // 4, int(0.01 * self.sample_rate)))
            out[-k:] *= (0.5 * (1 + np.cos(np.linspace(0, np.pi, k)))).astype(np.float32)
        return out
