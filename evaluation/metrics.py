"""Metrics on embeddings, spectra and latents: plain numpy/scipy/torch functions.

Distribution metrics compare two sets of embeddings (rows are sounds):
Frechet distance (FAD), kernel distance (KID), number of statistically different bins
(NDB) and mean pairwise distance (diversity). Reconstruction metrics compare sounds
pairwise. Latent-health helpers summarise posterior statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from scipy.stats import norm


# --------------------------------------------------------------------------- FAD


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two embedding sets.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``. The cross term uses
    ``tr((S_a S_b)^(1/2)) = tr((A S_b A)^(1/2))`` with ``A = S_a^(1/2)``: both square roots
    are of symmetric PSD matrices, so ``eigh`` with clipped eigenvalues stays real and
    stable even when the covariances are singular (fewer sounds than dimensions);
    ``eps`` on the diagonal keeps near-zero eigenvalues from amplifying round-off.

    Args:
        a: [N, E]; b: [M, E] (N, M >= 2).

    Returns:
        the distance (>= 0, up to round-off).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("frechet_distance needs at least two embeddings per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    eye = np.eye(a.shape[1]) * eps
    cov_a = np.cov(a, rowvar=False) + eye
    cov_b = np.cov(b, rowvar=False) + eye
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0)


# --------------------------------------------------------------------------- KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x . y / d + 1)^3`` for all pairs: [N, d] x [M, d] -> [N, M]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of squared MMD with the cubic polynomial kernel.

    Diagonal terms k(x_i, x_i) are left out of the within-set means, so its expectation
    is exactly MMD^2 (zero for equal distributions; single estimates can be negative).

    Args:
        x: [m, d]; y: [n, d] (m, n >= 2).
    """
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


@dataclass
class KID:
    """Kernel distance over random subsets: mean, spread and standard error of the mean."""

    mean: float
    std: float
    stderr: float
    subsets: int
    subset_size: int


def kernel_distance(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> KID:
    """KID: unbiased MMD^2 averaged over random subsets (without replacement in each).

    Args:
        a: [N, E]; b: [M, E].
        subset_size: capped at half the smaller set, so that subsets differ.

    Returns:
        KID(mean, std over subsets, stderr, ...). Subsets of one finite set overlap, so
        std / sqrt(subsets) would shrink towards 0 however noisy the sets are; instead
        the spread of a subset-sized estimate is scaled to the whole set's size (the
        unbiased MMD^2's variance falls like 1 / n): stderr = std * sqrt(size / min(N, M)).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = min(a.shape[0], b.shape[0])
    size = int(min(subset_size, max(n // 2, 2)))
    if n < 2:
        raise ValueError("kernel_distance needs at least two embeddings per set")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(a[rng.choice(a.shape[0], size, replace=False)], b[rng.choice(b.shape[0], size, replace=False)])
            for _ in range(subsets)
        ]
    )
    std = float(values.std(ddof=1)) if subsets > 1 else 0.0
    return KID(float(values.mean()), std, std * np.sqrt(size / n), subsets, size)


# --------------------------------------------------------------------------- NDB


@dataclass
class NDB:
    """Number of statistically different bins (Richardson & Weiss, 2018)."""

    different: int
    bins: int
    ratio: float
    flagged: list[int]
    real_proportions: list[float]
    fake_proportions: list[float]


def kmeans_bins(real: np.ndarray, bins: int, seed: int = 0) -> np.ndarray:
    """k-means (k-means++ start) centres of ``real`` [N, E] -> [bins, E]."""
    real = np.asarray(real, dtype=np.float64)
    centres, _ = kmeans2(real, bins, minit="++", seed=seed)
    return centres


def nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each row of x: [N] int."""
    d = (x**2).sum(1)[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None, :]
    return d.argmin(1)


def ndb(real: np.ndarray, fake: np.ndarray, bins: int = 10, alpha: float = 0.05, seed: int = 0) -> NDB:
    """Bin ``real`` by k-means, count how many bins hold a significantly different share of ``fake``.

    Each bin gets a two-sided two-proportion z-test (pooled variance) at level ``alpha``.
    Report ``ratio = different / bins``: about ``alpha`` for two samples of one
    distribution, higher when modes are dropped or invented.

    Args:
        real: [N, E]; fake: [M, E]; bins: K (capped at N).
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    bins = int(min(bins, real.shape[0]))
    centres = kmeans_bins(real, bins, seed)
    n_r, n_f = real.shape[0], fake.shape[0]
    p_r = np.bincount(nearest(real, centres), minlength=bins) / n_r
    p_f = np.bincount(nearest(fake, centres), minlength=bins) / n_f
    pooled = (p_r * n_r + p_f * n_f) / (n_r + n_f)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_f))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p_r - p_f) / se, 0.0)
    p_values = 2 * norm.sf(np.abs(z))
    flagged = [int(i) for i in np.flatnonzero(p_values < alpha)]
    return NDB(len(flagged), bins, len(flagged) / bins, flagged, p_r.tolist(), p_f.tolist())


class ClassCentroids:
    """A nearest-centroid classifier in the embedding: one centre per class of a labelled set.

    Whether a reconstruction is still heard as what it was (a kick as a kick, "seven" as
    "seven") is not in FAD, which looks at the set as a whole. The classifier's own
    accuracy on the real held-out sounds is the reference a model is read against.

    Args:
        embeddings: [N, E] labelled sounds (the training sounds); classes: N names.
    """

    def __init__(self, embeddings: np.ndarray, classes: Sequence[str]) -> None:
        labels = np.asarray(classes)
        self.names = sorted(set(classes))
        e = np.asarray(embeddings, dtype=np.float64)
        self.centres = np.stack([e[labels == c].mean(0) for c in self.names])

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """[M, E] -> [M] class names."""
        return np.asarray(self.names)[nearest(np.asarray(embeddings, np.float64), self.centres)]

    def shares(self, predicted: np.ndarray) -> np.ndarray:
        """``predict``'s [M] names -> [classes]: the share of them given each class."""
        return np.array([np.mean(predicted == c) if len(predicted) else 0.0 for c in self.names])


def class_kept(centroids: ClassCentroids, real: np.ndarray, recon: np.ndarray, samples: np.ndarray,
               classes: Sequence[str]) -> dict[str, float]:
    """How well a model keeps the classes of its data, by ``centroids``.

    Args:
        real, recon: [N, E] the held-out sounds and their reconstructions, of ``classes``.
        samples: [M, E] prior samples.
    Returns:
        ``real`` and ``recon``: the share classified as their own class; ``samples_tv``:
        total variation distance between the classes the samples are given and those the
        real held-out sounds are given (0 same shares, 1 disjoint; the classifier's own
        errors fall on both sides); ``samples_missing``: classes given to some real sounds
        and to no sample.
    """
    labels = np.asarray(classes)
    as_real, as_samples = centroids.predict(real), centroids.predict(samples)
    p_real, p_samples = centroids.shares(as_real), centroids.shares(as_samples)
    return {
        "classes": len(centroids.names),
        "real": float(np.mean(as_real == labels)),
        "recon": float(np.mean(centroids.predict(recon) == labels)),
        "samples_tv": float(0.5 * np.abs(p_real - p_samples).sum()),
        "samples_missing": int(np.sum((p_real > 0) & (p_samples == 0))),
    }


# --------------------------------------------------------------------------- distances between sounds


def pairwise_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between matching rows: [N, E], [N, E] -> [N]."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)


def all_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between every row of ``a`` [N, E] and every row of ``b`` [M, E]: [N, M]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def mean_pairwise_distance(e: np.ndarray) -> float:
    """Diversity: mean Euclidean distance over all distinct pairs of rows of [N, E]."""
    n = len(e)
    if n < 2:
        return 0.0
    return float(all_distances(e, e)[np.triu_indices(n, 1)].mean())


def _magnitudes(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    """[N, T] -> |STFT| [N, F, frames], hop n_fft // 4, periodic Hann."""
    if x.shape[-1] < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    window = torch.hann_window(n_fft, dtype=x.dtype)
    return torch.stft(x, n_fft, n_fft // 4, window=window, center=True, return_complex=True).abs()


def multiscale_stft_distance(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, scales: list[int], eps: float = 1e-5
) -> np.ndarray:
    """Per-sound multi-scale STFT distance: mean over scales of L1(linear) + L1(log) magnitudes.

    The same two terms as the training loss (linear and log magnitude, no mel), but one
    value per sound so it can be broken down by class.

    Args:
        x, y: [N, T] (or [N, 1, T]) reference and reconstruction.

    Returns:
        [N] float64.
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(len(y), -1)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for n_fft in scales:
        sx, sy = _magnitudes(x, n_fft), _magnitudes(y, n_fft)
        lin = (sx - sy).abs().mean(dim=(1, 2))
        log = (torch.log(sx + eps) - torch.log(sy + eps)).abs().mean(dim=(1, 2))
        total += lin + log
    return (total / len(scales)).numpy()


def log_spectral_distance(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, n_fft: int = 512, floor_db: float = -80.0
) -> np.ndarray:
    """Per-sound log-spectral distance in dB: RMS over frequency of the power difference in
    dB, averaged over frames. Powers are floored ``floor_db`` below each reference's peak
    so silent bins do not dominate.

    Args:
        x, y: [N, T] reference and estimate.

    Returns:
        [N] float64 (dB).
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(len(y), -1)
    px, py = _magnitudes(x, n_fft) ** 2, _magnitudes(y, n_fft) ** 2
    floor = px.amax(dim=(1, 2), keepdim=True).clamp_min(1e-20) * 10 ** (floor_db / 10)
    dx = 10 * torch.log10(torch.maximum(px, floor))
    dy = 10 * torch.log10(torch.maximum(py, floor))
    return ((dx - dy) ** 2).mean(dim=1).sqrt().mean(dim=1).numpy()


def long_term_spectrum(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of a set of sounds: each whole sound through one Hann-windowed
    FFT (fine low-frequency resolution: 1.3 Hz for 0.74 s at 22 kHz), powers averaged.

    Steady artefacts show up here that per-sound distances average away, e.g. a tone at a
    decoder stage's frame rate or a DC offset.

    Args:
        audio: [N, T].
    Returns:
        (freqs [T//2+1] Hz, power [T//2+1]).
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(len(audio), -1)
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[-1]), axis=-1)) ** 2
    return np.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate), spec.mean(0)


# Octave bands of the level table; below 20 Hz is DC and rumble, which one-shots should lack.
OCTAVE_EDGES = (0.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, 10240.0, 20480.0)


def octave_levels_db(freqs: np.ndarray, power: np.ndarray, edges: tuple[float, ...] = OCTAVE_EDGES) -> list[float]:
    """Summed power per band [edges[i], edges[i+1]) in dB (NaN for a band above Nyquist)."""
    levels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (freqs >= lo) & (freqs < hi)
        levels.append(float(10 * np.log10(power[band].sum() + 1e-30)) if band.any() else float("nan"))
    return levels


def frame_rate_harmonics(sample_rate: int, bands: int, ratios: Sequence[int], lowest_hz: float = 40.0) -> list[float]:
    """Where a decoder can leave steady tones: the multiples of its frame rates.

    A learned up-sampler whose phases treat a steady input differently writes a pattern
    that repeats at its input frame rate: tones at the multiples of that rate in a
    sub-band. The stages' input rates are ``sub-band rate / r_last``,
    ``/ (r_last r_prev)``..., each a multiple of the next, so the multiples of the
    slowest one at or above ``lowest_hz`` cover them all. Each sub-band spans a multiple
    of that rate, so PQMF synthesis puts the tones, in whichever band, on multiples of it
    in the output; a steady offset in a sub-band lands on a band edge, also a multiple.

    Args:
        sample_rate, bands: the model's rate and PQMF band count.
        ratios: the up-sampling ratios, bottleneck first.
        lowest_hz: slower frame rates are left out (below it lie the offset and rumble).
    Returns:
        the frequencies in Hz below Nyquist, ascending (empty when no stage rate reaches
        ``lowest_hz``).
    """
    rate = sample_rate / bands
    stage_rates = []
    for r in reversed(list(ratios)):
        rate /= r
        stage_rates.append(rate)
    usable = [f for f in stage_rates if f >= lowest_hz]
    if not usable:
        return []
    step = min(usable)
    return [k * step for k in range(1, int(math.ceil(sample_rate / 2 / step)))]


def tone_prominence_db(freqs: np.ndarray, power: np.ndarray, at_hz: Sequence[float]) -> list[float]:
    """How far a long-term spectrum stands above its surroundings at each frequency, in dB.

    The peak is the largest power within 2 bins (a Hann window's main lobe); the
    surroundings are the median power over a third of an octave around the frequency,
    the peak's 5 bins left out. A smooth spectrum gives about 0 to 4 dB (the median
    sits under the local maxima); a steady tone, 15 dB and more.

    Args:
        freqs, power: a ``long_term_spectrum``.
        at_hz: frequencies to test.
    """
    step = freqs[1] - freqs[0]
    out = []
    for f in at_hz:
        centre = int(round(f / step))
        if centre + 2 >= len(freqs):
            out.append(float("nan"))
            continue
        peak = power[max(centre - 2, 0): centre + 3].max()
        around = (freqs >= f * 2 ** (-1 / 6)) & (freqs <= f * 2 ** (1 / 6)) & (np.abs(freqs - f) > 2.5 * step)
        out.append(float(10 * np.log10((peak + 1e-30) / (np.median(power[around]) + 1e-30))))
    return out


def band_edge_ring_db(audio: np.ndarray, sample_rate: int, bands: int, count: int = 4) -> np.ndarray:
    """Per sound, how far its own spectrum stands above its surroundings at the worst of
    the first ``count`` multiples of ``sample_rate / bands``, in dB (``tone_prominence_db``).

    A slow offset in PQMF sub-band k comes out at the band's lower edge when k is even and
    at its upper edge when k is odd (odd bands are mirrored), which is a multiple of
    ``sample_rate / bands`` either way: an offset in any band rings there, under that
    band's envelope, in every sound. A long-term spectrum over many sounds shows only the
    worst such tone; this counts how many sounds carry it.

    Args:
        audio: [N, T].
        bands: the model's PQMF band count (1: no edges, an empty result).
    Returns:
        [N] dB (empty when no multiple lies below Nyquist).
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(len(audio), -1)
    step = sample_rate / bands
    at_hz = [k * step for k in range(1, count + 1) if k * step < sample_rate / 2]
    if bands < 2 or not at_hz:
        return np.zeros(0)
    return np.array([max(tone_prominence_db(*long_term_spectrum(a[None], sample_rate), at_hz)) for a in audio])


def spectral_lines(audio: np.ndarray, sample_rate: int, min_hz: float = 200.0, prominence_db: float = 15.0,
                   tolerance_hz: float = 3.0) -> list[np.ndarray]:
    """Per sound, the frequencies (Hz) of its spectral lines: local maxima of its whole-clip
    spectrum (Hann window) standing ``prominence_db`` over the median of the 100 Hz around
    them, above ``min_hz``, at least ``2 * tolerance_hz`` apart.

    Args:
        audio: [N, T] sounds.
    Returns:
        N arrays of frequencies.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    audio = np.asarray(audio, dtype=np.float64).reshape(len(audio), -1)
    n = audio.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    width = max(3, int(round(100.0 / freqs[1])) | 1)
    distance = max(1, int(round(2 * tolerance_hz / freqs[1])))
    power_db = 10 * np.log10(np.abs(np.fft.rfft(audio * np.hanning(n), axis=-1)) ** 2 + 1e-20)
    lines = []
    for row in power_db:
        peaks, _ = find_peaks(row - median_filter(row, size=width), height=prominence_db, distance=distance)
        lines.append(freqs[peaks[freqs[peaks] >= min_hz]])
    return lines


def comb_lines(audio: np.ndarray, sample_rate: int, step_hz: float, min_hz: float = 200.0,
               prominence_db: float = 15.0, tolerance_hz: float = 3.0, edge_hz: float = 0.0) -> dict[str, float]:
    """Spectral lines of a set of sounds, and how many fall on the multiples of ``step_hz``.

    A learned up-sampler images slow content of its input around the multiples of its input
    frame rate, so a decoder that leans on that writes a comb of lines spaced by the frame
    rate: heard as a buzz or a pitch that no drum has. Real partials (cymbals, toms, bells)
    fall on the comb only by chance, ``2 * tolerance_hz / step_hz`` of them. The steady-tone
    table (``tone_prominence_db``) misses such a comb when its lines follow each hit's decay.

    Lines as ``spectral_lines`` finds them.

    The PQMF band edges (multiples of ``sample_rate / bands``) are multiples of the frame
    rate too, and an offset in a sub-band rings there (``band_edge_ring_db``): a different
    fault with a different cure. With ``edge_hz`` the lines on its multiples are counted
    apart (``on_edges``); on spoken words they were most of the comb's lines.

    Args:
        audio: [N, T] sounds.
        step_hz: the comb's spacing (the decoder's slowest frame rate, see ``frame_rate_harmonics``).
        edge_hz: the band edges' spacing (0: not counted apart).
    Returns:
        ``lines_per_sound`` (mean), ``on_comb`` (share of all lines within ``tolerance_hz``
        of a multiple of ``step_hz``, band edges included; NaN without lines), ``chance``
        (the share by chance) and, with ``edge_hz``, ``on_edges`` (share of all lines on
        its multiples).
    """

    def on_multiples(f: np.ndarray, step: float) -> int:
        return int(np.sum(np.abs(f - step * np.round(f / step)) <= tolerance_hz))

    lines = spectral_lines(audio, sample_rate, min_hz, prominence_db, tolerance_hz)
    total = on = edges = 0
    for f in lines:
        total += len(f)
        on += on_multiples(f, step_hz)
        edges += on_multiples(f, edge_hz) if edge_hz > 0 else 0
    result = {"lines_per_sound": total / max(len(lines), 1), "on_comb": on / total if total else float("nan"),
              "chance": min(1.0, 2 * tolerance_hz / step_hz)}
    if edge_hz > 0:
        result["on_edges"] = edges / total if total else float("nan")
    return result


# --------------------------------------------------------------------------- latents


def active_units(means: np.ndarray, threshold: float = 0.01) -> int:
    """Dimensions whose posterior mean varies across sounds (Burda et al. 2016): Var_x E[z_d] > threshold.

    Args:
        means: [N, D] posterior means.
    """
    return int((np.asarray(means, np.float64).var(axis=0) > threshold).sum())


def base_radius(u: np.ndarray) -> float:
    """Mean ``|u| / sqrt(D)`` of base-space points [N, D]; about 1 for prior samples N(0, I)."""
    u = np.asarray(u, np.float64)
    return float((np.linalg.norm(u, axis=1) / np.sqrt(u.shape[1])).mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` of two point sets [N, D], [M, D]
    (Szekely and Rizzo; V-statistic): 0 for equal distributions, positive otherwise, and it
    sees dependence between dimensions that per-dimension measures miss. Here: prior draws
    against the held-out sounds' posterior modes in base space, where what the sampler does
    is judged before any decoder blurs it."""
    return float(2.0 * all_distances(x, y).mean() - all_distances(x, x).mean() - all_distances(y, y).mean())
