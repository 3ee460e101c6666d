"""Built-in drums: deterministic, balanced, onsets at sample 0, and each class has its character."""

import time
from collections import Counter

import numpy as np
import pytest

from flowshot.model.drums import DRUM_CLASSES, generate_drums

SR, L = 22050, 16384


@pytest.fixture(scope="module")
def kit() -> tuple[np.ndarray, np.ndarray]:
    audio, classes = generate_drums(240, SR, L, seed=3)
    return audio, np.array(classes)


def test_deterministic_by_seed() -> None:
    a1, c1 = generate_drums(24, 8000, 2048, seed=5)
    a2, c2 = generate_drums(24, 8000, 2048, seed=5)
    a3, _ = generate_drums(24, 8000, 2048, seed=6)
    assert c1 == c2 and np.array_equal(a1, a2)
    assert np.max(np.abs(a1 - a3)) > 0.1


@pytest.mark.parametrize("n", [8, 83, 240])
def test_all_classes_balanced(n: int) -> None:
    _, classes = generate_drums(n, 8000, 2048, seed=0)
    counts = Counter(classes)
    assert set(counts) == set(DRUM_CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_levels_finite_and_onset_at_start(kit: tuple[np.ndarray, np.ndarray]) -> None:
    audio, _ = kit
    assert audio.dtype == np.float32 and audio.shape == (240, L)
    assert np.all(np.isfinite(audio))
    peak_db = 20 * np.log10(np.max(np.abs(audio), axis=1))
    assert peak_db.min() >= -6.01 and peak_db.max() <= -0.49
    # Each sound reaches a tenth of its peak within 1 ms of sample 0.
    mag = np.abs(audio)
    onset = np.argmax(mag >= 0.1 * mag.max(axis=1, keepdims=True), axis=1)
    assert onset.max() <= 0.001 * SR
    # ...and ends quietly (faded, no click at the cut).
    assert np.max(np.abs(audio[:, -1])) < 1e-3


def test_examples_vary_within_a_class(kit: tuple[np.ndarray, np.ndarray]) -> None:
    audio, classes = kit
    for name in DRUM_CLASSES:
        x = audio[classes == name]
        spec = np.log(np.abs(np.fft.rfft(x, axis=1)) + 1e-6)
        # Pairwise spectral distance: clearly not the same sound repeated.
        assert np.std(spec, axis=0).mean() > 0.3, name


def _centroid_and_t90(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    p = np.abs(np.fft.rfft(x, axis=1)) ** 2
    centroid = (p * f).sum(1) / p.sum(1)
    energy = np.cumsum(x.astype(np.float64) ** 2, axis=1)
    t90_ms = np.argmax(energy >= 0.9 * energy[:, -1:], axis=1) / SR * 1000
    return centroid, t90_ms


def test_classes_have_drum_machine_character(kit: tuple[np.ndarray, np.ndarray]) -> None:
    audio, classes = kit
    centroid, t90 = _centroid_and_t90(audio)
    med = {k: (np.median(centroid[classes == k]), np.median(t90[classes == k])) for k in DRUM_CLASSES}
    # Spectral centroid (Hz): kick < tom < snare < clap < cymbal < hats (measured medians
    # 78, 150, 1.0k, 2.1k, 3.8k, 6.5k; hydrogen's real kits: 101, 150, 0.5k, 2.0k, 3.5k, 4.9k).
    assert med["kick"][0] < 130
    assert med["kick"][0] < med["tom"][0] < 400
    assert 500 < med["snare"][0] < 3000 and 1000 < med["clap"][0] < 4000
    assert med["hat_closed"][0] > 4500 and med["hat_open"][0] > 4500
    assert 2000 < med["cymbal"][0] < med["hat_open"][0]
    # Time to 90 % of the energy (ms): rim and closed hat short, open hat and cymbal long.
    assert med["rim"][1] < 40 and med["hat_closed"][1] < 70
    assert med["hat_open"][1] > 2 * med["hat_closed"][1]
    assert med["cymbal"][1] > 300 and med["kick"][1] > 200
    # A kick's energy sits below 150 Hz; a closed hat's above 3 kHz.
    f = np.fft.rfftfreq(L, 1 / SR)
    p = np.abs(np.fft.rfft(audio, axis=1)) ** 2
    share_low = p[:, f < 150].sum(1) / p.sum(1)
    share_high = p[:, f > 3000].sum(1) / p.sum(1)
    assert np.median(share_low[classes == "kick"]) > 0.7
    assert np.median(share_high[classes == "hat_closed"]) > 0.9


def test_fast_enough() -> None:
    t0 = time.perf_counter()
    generate_drums(400, SR, L, seed=1)
    # 2,000 x 16,384 at 22.05 kHz takes about 2.3 s on one core here; a fifth of that
    # gets a generous bound because the CPU is shared.
    assert time.perf_counter() - t0 < 4.0
