"""Distribution and reconstruction metrics against known answers (runs in about a second)."""

import math

import numpy as np
import pytest
import torch

from flowshot.evaluation.metrics import (
    ClassCentroids,
    active_units,
    base_radius,
    class_kept,
    energy_distance,
    frechet_distance,
    kernel_distance,
    log_spectral_distance,
    mean_pairwise_distance,
    mmd2_unbiased,
    multiscale_stft_distance,
    ndb,
)


def test_frechet_distance_zero_on_itself_and_grows_with_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 32)) @ rng.standard_normal((32, 32))
    assert frechet_distance(a, a) < 1e-6 * np.trace(np.cov(a, rowvar=False))
    noise = rng.standard_normal(a.shape)
    values = [frechet_distance(a, a + s * noise) for s in (0.1, 0.3, 1.0, 3.0)]
    assert all(b > a_ for a_, b in zip(values, values[1:])), values
    # Closed form for two isotropic Gaussians: |mu|^2 + d (s1 - s2)^2.
    x = rng.standard_normal((20000, 4))
    y = 2.0 * rng.standard_normal((20000, 4)) + 1.0
    assert frechet_distance(x, y) == pytest.approx(4 * 1.0 + 4 * (1.0 - 2.0) ** 2, rel=0.05)


def test_frechet_distance_is_stable_with_fewer_points_than_dimensions() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((10, 64)), rng.standard_normal((12, 64))
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_kid_estimator_is_unbiased_for_equal_distributions() -> None:
    rng = np.random.default_rng(2)
    same = np.array([mmd2_unbiased(rng.standard_normal((40, 8)), rng.standard_normal((40, 8))) for _ in range(400)])
    se = same.std(ddof=1) / np.sqrt(len(same))
    assert abs(same.mean()) < 3 * se, (same.mean(), se)
    assert (same < 0).any()  # unbiased, so single estimates straddle zero
    shifted = np.array(
        [mmd2_unbiased(rng.standard_normal((40, 8)), rng.standard_normal((40, 8)) + 0.5) for _ in range(100)]
    )
    assert shifted.mean() > 10 * shifted.std(ddof=1) / np.sqrt(len(shifted))


def test_kernel_distance_subsets() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((200, 16)), rng.standard_normal((150, 16))
    kid = kernel_distance(a, b, subsets=50, subset_size=100, seed=0)
    assert kid.subset_size == 75  # half the smaller set, so that subsets differ
    assert kid.stderr == pytest.approx(kid.std * np.sqrt(75 / 150))
    assert abs(kid.mean) < 4 * kid.std  # same distribution
    far = kernel_distance(a, b + 1.0, subsets=50, subset_size=100, seed=0)
    assert far.mean > 10 * far.stderr and far.mean > 10 * abs(kid.mean)


def test_kernel_distance_stderr_matches_spread_over_independent_sets() -> None:
    # The reported standard error must describe how much KID moves when the SETS are
    # redrawn, not how much it moves between overlapping subsets of one set.
    rng = np.random.default_rng(4)
    means, stderrs = [], []
    for i in range(40):
        a, b = rng.standard_normal((120, 8)), rng.standard_normal((120, 8)) + 0.3
        kid = kernel_distance(a, b, subsets=40, subset_size=1000, seed=i)
        means.append(kid.mean)
        stderrs.append(kid.stderr)
    ratio = np.std(means, ddof=1) / np.median(stderrs)
    assert 0.5 < ratio < 2.0, ratio


def _clusters(rng: np.random.Generator, counts: list[int]) -> np.ndarray:
    centres = np.eye(5, 8) * 10.0
    return np.concatenate([centres[i] + rng.standard_normal((n, 8)) for i, n in enumerate(counts)])


def test_ndb_flags_a_dropped_cluster_and_not_a_fair_sample() -> None:
    rng = np.random.default_rng(4)
    real = _clusters(rng, [200] * 5)
    dropped = _clusters(rng, [250, 250, 250, 250, 0])
    result = ndb(real, dropped, bins=5, seed=0)
    assert result.different >= 1 and result.bins == 5
    assert min(result.fake_proportions) == 0.0
    ratios = [ndb(real, _clusters(rng, [200] * 5), bins=5, seed=s).ratio for s in range(10)]
    assert np.mean(ratios) <= 0.15, ratios  # alpha = 0.05 false-positive rate, with slack


def test_diversity_and_latent_helpers() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 16))
    # E|x - y| for x, y ~ N(0, I_16): sqrt(2) * E|chi_16| ~ sqrt(2) * 3.9
    assert mean_pairwise_distance(x) == pytest.approx(np.sqrt(2) * 3.9, rel=0.03)
    assert mean_pairwise_distance(0.1 * x) == pytest.approx(0.1 * mean_pairwise_distance(x))
    assert base_radius(x) == pytest.approx(1.0, abs=0.03)


def test_energy_distance_sees_shift_and_dependence() -> None:
    """0 for one distribution, 2|a - b| between two point masses, and larger for the same
    marginals with a different correlation than for two draws of one distribution."""
    assert energy_distance(np.zeros((5, 3)), np.ones((4, 3)) / np.sqrt(3)) == pytest.approx(2.0)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((800, 2)), rng.standard_normal((800, 2))
    same = energy_distance(a, b)
    assert abs(same) < 0.02
    assert energy_distance(a, b + 0.5) > 10 * abs(same)
    c = rng.standard_normal(800)
    correlated = np.stack([c, 0.9 * c + np.sqrt(1 - 0.81) * rng.standard_normal(800)], 1)  # N(0, 1) marginals
    assert energy_distance(a, correlated) > 5 * abs(same)
    means = np.concatenate([rng.standard_normal((500, 3)), 1e-3 * rng.standard_normal((500, 5))], axis=1)
    assert active_units(means) == 3


def test_reconstruction_distances() -> None:
    rng = np.random.default_rng(6)
    t = np.arange(4096) / 8000
    x = (np.sin(2 * np.pi * 220 * t) * np.exp(-t * 8))[None].repeat(3, 0)
    y = x + np.array([0.0, 0.01, 0.1])[:, None] * rng.standard_normal(x.shape)
    d = multiscale_stft_distance(x, y, [512, 128])
    lsd = log_spectral_distance(x, y)
    assert d[0] == pytest.approx(0.0, abs=1e-9) and lsd[0] == pytest.approx(0.0, abs=1e-9)
    assert d[0] < d[1] < d[2] and lsd[0] < lsd[1] < lsd[2]
    # a 6.02 dB gain change of broadband noise (no bin under the floor) is a 6.02 dB distance
    noise = rng.standard_normal((1, 4096))
    assert log_spectral_distance(noise, 2 * noise)[0] == pytest.approx(20 * np.log10(2), rel=1e-6)


def test_long_term_spectrum_finds_a_steady_tone_and_a_dc_offset() -> None:
    """What the level table must expose: a weak 86 Hz tone under noise bursts, and DC."""
    from flowshot.evaluation.metrics import OCTAVE_EDGES, long_term_spectrum, octave_levels_db

    sr, n = 22050, 16384
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    decay = np.exp(-t / 0.05)
    clean = rng.standard_normal((20, n)) * decay * 0.3
    hum = clean + 0.01 * np.sin(2 * np.pi * 86.13 * t) + 0.01
    freqs, p_clean = long_term_spectrum(clean, sr)
    _, p_hum = long_term_spectrum(hum, sr)
    assert freqs[1] - freqs[0] == pytest.approx(sr / n)
    low = (freqs > 40) & (freqs < 400)
    assert freqs[low][np.argmax(p_hum[low])] == pytest.approx(86.13, abs=2 * sr / n)
    clean_db, hum_db = octave_levels_db(freqs, p_clean), octave_levels_db(freqs, p_hum)
    assert len(clean_db) == len(OCTAVE_EDGES) - 1
    band_80 = OCTAVE_EDGES.index(80.0)
    assert hum_db[band_80] - clean_db[band_80] > 10  # the tone's octave
    assert hum_db[0] - clean_db[0] > 20  # DC lands below 20 Hz
    assert abs(hum_db[band_80 + 3] - clean_db[band_80 + 3]) < 0.5  # an octave the tone does not touch
    # Parseval: the bands together hold all the power.
    assert 10 * np.log10(sum(10 ** (v / 10) for v in clean_db if v == v)) == pytest.approx(
        10 * np.log10(p_clean.sum()), abs=1e-6)


def test_frame_rate_tones_stand_out_only_where_there_is_one() -> None:
    """The tone check evaluate runs: a steady 344.5 Hz tone under decaying noise bursts
    (the last up-sampler's frame rate of `small`) stands 15 dB and more over its
    surroundings; the same bursts without it stay within a few dB everywhere tested."""
    from flowshot.evaluation.metrics import frame_rate_harmonics, long_term_spectrum, tone_prominence_db

    sr, n = 22050, 16384
    hz = frame_rate_harmonics(sr, 16, [4, 4, 4])
    # Stage input rates of `small`: 21.5 (left out, under 40 Hz), 86.1 and 344.5 Hz;
    # multiples of 86.1 below Nyquist cover both, and every band edge (689 Hz apart).
    assert hz == pytest.approx([86.1328125 * k for k in range(1, 128)])
    assert frame_rate_harmonics(8000, 4, [4, 4]) == pytest.approx([125.0 * k for k in range(1, 32)])
    assert frame_rate_harmonics(8000, 4, [2], lowest_hz=2000) == []
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    clean = rng.standard_normal((40, n)) * np.exp(-t / 0.08) * 0.3
    toned = clean + 0.003 * np.sin(2 * np.pi * 344.53125 * t)
    clean_db = tone_prominence_db(*long_term_spectrum(clean, sr), hz)
    toned_db = tone_prominence_db(*long_term_spectrum(toned, sr), hz)
    assert max(clean_db) < 4, max(clean_db)
    assert toned_db[3] > 15 and int(np.argmax(toned_db)) == 3, toned_db[:8]
    assert all(abs(a - b) < 1 for i, (a, b) in enumerate(zip(clean_db, toned_db)) if i != 3)


def test_an_offset_in_any_sub_band_rings_on_a_multiple_of_rate_over_bands() -> None:
    """The band-edge measure evaluate reports, against the real PQMF: an offset under a
    decaying envelope in one sub-band, even or odd, synthesised with noise bursts in every
    band, stands 15 dB and more over its surroundings on a multiple of sample_rate / bands
    in most sounds; the bursts alone stay a few dB over."""
    from flowshot.evaluation.metrics import band_edge_ring_db
    from flowshot.model.pqmf import PQMF

    sr, bands, n = 22050, 16, 16384
    pqmf = PQMF(bands)
    rng = np.random.default_rng(4)
    frames = n // bands
    env = np.exp(-np.arange(frames) / (0.15 * sr / bands))
    sub = rng.standard_normal((24, bands, frames)) * env * 0.05
    clean = pqmf.synthesis(torch.from_numpy(sub).float())[:, 0].numpy()
    for k in (1, 2):  # odd bands are mirrored: DC at the upper edge, even: at the lower
        offset = sub.copy()
        offset[:, k] += 0.02 * env
        ringing = pqmf.synthesis(torch.from_numpy(offset).float())[:, 0].numpy()
        rings = band_edge_ring_db(ringing, sr, bands)
        assert np.median(rings) > 15 and np.mean(rings > 15) > 0.7, (k, rings)
    clean_db = band_edge_ring_db(clean, sr, bands)
    # A single sound's spectrum is rough: its peak over 5 bins stands ~7 dB over the median.
    assert np.median(clean_db) < 10 and np.mean(clean_db > 15) < 0.1, clean_db
    assert len(band_edge_ring_db(clean, sr, 1)) == 0


def test_comb_lines_tell_an_imaging_comb_from_real_partials() -> None:
    """Decaying partials at inharmonic frequencies (a cymbal) fall on the 86.1 Hz comb only
    by chance; lines at its multiples (an up-sampler's images) all do. Noise has no lines."""
    from flowshot.evaluation.metrics import comb_lines

    sr, n, step = 22050, 16384, 86.1328125
    rng = np.random.default_rng(1)
    t = np.arange(n) / sr
    env = np.exp(-t / 0.15)
    noise = rng.standard_normal((30, n)) * env * 0.05

    def with_lines(freqs_per_sound: list[np.ndarray]) -> np.ndarray:
        return noise + np.stack([env * sum(0.05 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in fs)
                                 for fs in freqs_per_sound])

    partials = [rng.uniform(300, 9000, 12) for _ in range(30)]
    comb = [step * rng.choice(np.arange(4, 100), 12, replace=False) for _ in range(30)]
    real, imaged, bare = (comb_lines(x, sr, step) for x in (with_lines(partials), with_lines(comb), noise))
    assert real["chance"] == pytest.approx(6 / step)
    assert 10 < real["lines_per_sound"] <= 13 and 10 < imaged["lines_per_sound"] <= 13
    assert real["on_comb"] < 3 * real["chance"] and imaged["on_comb"] > 0.9
    assert bare["lines_per_sound"] < 1
    # Lines on the band edges (multiples of 1,378 Hz, 16 of the comb's steps) counted apart.
    edge = sr / 16
    ringing = [np.concatenate([edge * np.arange(1, 7), step * rng.choice(np.arange(4, 100), 6, replace=False)])
               for _ in range(30)]
    split = comb_lines(with_lines(ringing), sr, step, edge_hz=edge)
    assert split["on_comb"] > 0.9 and 0.45 < split["on_edges"] < 0.65
    assert "on_edges" not in imaged and comb_lines(with_lines(partials), sr, step, edge_hz=edge)["on_edges"] < 0.05
    # Silence has no lines: no share to give, and the report's table says so rather than "nan %".
    from flowshot.evaluation.evaluate import _percent

    silent = comb_lines(np.zeros((3, n)), sr, step, edge_hz=edge)
    assert silent["lines_per_sound"] == 0 and math.isnan(silent["on_comb"]) and math.isnan(silent["on_edges"])
    assert _percent(silent["on_comb"]) == "–" and _percent(split["on_comb"]) == f"{100 * split['on_comb']:.0f} %"


def test_class_kept_counts_own_classes_and_compares_class_shares() -> None:
    """Three well separated classes: the real sounds are all classified as their own; a
    reconstruction pushed to another class's centre counts as lost; samples all of one
    class are 2/3 off the real shares (three classes equally shared) and miss two."""
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    names = ["clap", "kick", "snare"]
    train_classes = [names[i % 3] for i in range(60)]
    train = centres[np.arange(60) % 3] + rng.normal(0, 0.5, (60, 2))
    centroids = ClassCentroids(train, train_classes)
    assert centroids.names == names
    test_classes = [names[i % 3] for i in range(30)]
    real = centres[np.arange(30) % 3] + rng.normal(0, 0.5, (30, 2))
    recon = real.copy()
    recon[:6] = centres[2]  # 6 reconstructions land on the snare: the two of them snares still are
    samples = centres[[0] * 20] + rng.normal(0, 0.5, (20, 2))
    kept = class_kept(centroids, real, recon, samples, test_classes)
    assert kept["classes"] == 3 and kept["real"] == 1.0
    assert kept["recon"] == pytest.approx(26 / 30)
    assert kept["samples_tv"] == pytest.approx(2 / 3) and kept["samples_missing"] == 2
    same = class_kept(centroids, real, real, real, test_classes)
    assert same["recon"] == 1.0 and same["samples_tv"] == 0.0 and same["samples_missing"] == 0
