"""Augmentations: each part does what it says, and each can be switched off."""

import dataclasses

import numpy as np
import pytest

from flowshot.model.augment import Augmenter
from flowshot.model.config import AugmentConfig

SR, L = 8000, 2048
OFF = AugmentConfig(offset_jitter_ms=0.0, allpass_prob=0.0, dequantize=False, pitch_shift_semitones=0.0, pitch_shift_prob=0.0, gain_db=0.0)


def _tone(hz: float, decay_s: float = 0.05, n: int = L) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.8 * np.sin(2 * np.pi * hz * t) * np.exp(-t / decay_s)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * SR / (8 * len(x)))


def test_everything_off_is_identity() -> None:
    x = _tone(440)
    aug = Augmenter(OFF, SR, L)
    y = aug(x, np.random.default_rng(0))
    assert y.shape == (2, L)
    assert np.array_equal(y[0], x) and np.array_equal(y[1], x) and not np.shares_memory(x, y)


def test_allpass_keeps_magnitude_and_changes_waveform() -> None:
    # A burst that is over long before the end, so the filters' ring-out fits in L.
    rng = np.random.default_rng(0)
    x = np.zeros(L, np.float32)
    x[:400] = rng.standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 80.0)
    aug = Augmenter(dataclasses.replace(OFF, allpass_prob=1.0), SR, L)
    for seed in range(5):
        heard, target = aug(x, np.random.default_rng(seed))
        assert np.array_equal(target, x)  # the target keeps its phase
        y = heard
        mx, my = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(y))
        # Magnitude spectrum unchanged within 1 % of its peak, bin by bin...
        assert np.max(np.abs(mx - my)) < 0.01 * mx.max()
        # ...while the waveform differs by at least a quarter of its own peak.
        assert np.max(np.abs(x - y)) > 0.25 * np.max(np.abs(x))


@pytest.mark.parametrize("semitones,factor", [(12.0, 2.0), (-12.0, 0.5), (7.0, 2 ** (7 / 12))])
def test_pitch_shift_moves_a_tone(semitones: float, factor: float) -> None:
    x = _tone(440, decay_s=0.1)
    y = Augmenter(OFF, SR, L).pitch_shift(x, semitones)
    assert y.shape == (L,)
    assert abs(_peak_hz(y) - 440 * factor) < 0.01 * 440 * factor


def test_pitch_shift_from_config_range() -> None:
    cfg = dataclasses.replace(OFF, pitch_shift_semitones=12.0, pitch_shift_prob=1.0)
    aug = Augmenter(cfg, SR, L)
    x = _tone(400, decay_s=0.1)
    pairs = [aug(x, np.random.default_rng(s)) for s in range(8)]
    assert all(np.array_equal(p[0], p[1]) for p in pairs)  # a new sound: both rows shifted
    peaks = [_peak_hz(p[1]) for p in pairs]
    assert all(200 * 0.99 <= p <= 800 * 1.01 for p in peaks)
    assert max(peaks) / min(peaks) > 1.2  # really random, not one fixed shift


def test_offset_jitter_delays_within_bound() -> None:
    aug = Augmenter(dataclasses.replace(OFF, offset_jitter_ms=5.0), SR, L)
    x = np.zeros(L, np.float32)
    x[0] = 1.0
    pairs = [aug(x, np.random.default_rng(s)) for s in range(30)]
    shifts = {int(np.argmax(p[0])) for p in pairs}
    assert min(shifts) >= 0 and max(shifts) <= 40  # 5 ms at 8 kHz
    assert len(shifts) > 10
    # The target keeps its onset at sample 0: a decoder trained on it starts at once.
    assert all(int(np.argmax(p[1])) == 0 for p in pairs)


def test_encoder_only_false_shifts_the_target_too() -> None:
    cfg = dataclasses.replace(OFF, offset_jitter_ms=5.0, allpass_prob=1.0, encoder_only=False)
    x = _tone(300)
    for s in range(5):
        heard, target = Augmenter(cfg, SR, L)(x, np.random.default_rng(s))
        assert np.array_equal(heard, target) and not np.array_equal(target, x)


def test_gain_and_dequantisation() -> None:
    x = _tone(300) * 0.5
    aug = Augmenter(dataclasses.replace(OFF, gain_db=3.0), SR, L)
    pairs = [aug(x, np.random.default_rng(s)) for s in range(20)]
    assert all(np.array_equal(p[0], p[1]) for p in pairs)  # one gain for both rows
    ratios = [np.max(np.abs(p[1])) / np.max(np.abs(x)) for p in pairs]
    assert 10 ** (-3 / 20) - 1e-6 <= min(ratios) and max(ratios) <= 10 ** (3 / 20) + 1e-6
    assert max(ratios) - min(ratios) > 0.3
    loud = _tone(300) / np.max(np.abs(_tone(300)))  # at 0 dBFS: gain must not push it over
    assert max(np.max(np.abs(aug(loud, np.random.default_rng(s)))) for s in range(20)) <= 1.0 + 1e-6

    deq = Augmenter(dataclasses.replace(OFF, dequantize=True), SR, L)
    noise = deq(np.zeros(L, np.float32), np.random.default_rng(0))
    assert np.array_equal(noise[0], noise[1])
    noise = noise[1]
    lsb = 1 / 32768
    assert np.max(np.abs(noise)) <= 0.5 * lsb
    assert abs(np.std(noise) - lsb / np.sqrt(12)) < 0.1 * lsb / np.sqrt(12)


def test_full_default_chain_keeps_shape_and_level() -> None:
    aug = Augmenter(AugmentConfig(pitch_shift_prob=0.5), SR, L)
    x = _tone(200)
    for s in range(10):
        y = aug(x, np.random.default_rng(s))
        assert y.shape == (2, L) and y.dtype == np.float32 and np.all(np.isfinite(y))
        assert np.max(np.abs(y)) <= 1.0 + 1e-4
