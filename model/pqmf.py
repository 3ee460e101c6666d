"""Pseudo-QMF filter bank: split audio into critically sampled sub-bands and back.

The prototype low-pass is a Kaiser-windowed sinc (Lin & Vaidyanathan's Kaiser design):
the window's beta and length follow from the requested stop-band attenuation, and the
cut-off is searched so that the prototype's autocorrelation is close to a 2M-th band
(Nyquist) filter, which is what makes the cosine-modulated bank nearly perfectly
reconstructing. Both directions run in polyphase form (one
M-to-M ``conv1d`` on the interleaved phases: no work is spent on samples that the
decimation throws away), so the module scripts and exports to ONNX as plain ops.

Both directions treat the signal as circular (wrap-around padding) and use zero-phase
(centred) filters: ``synthesis(analysis(x))`` is aligned with ``x`` sample for sample,
including the first samples of a one-shot, where the attack lives.
"""

import math
from typing import Tuple

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor, nn
from torch.nn import functional as F


def kaiser_beta(attenuation: float) -> float:
    """Kaiser's empirical window shape for a stop-band attenuation in dB."""
    a = float(attenuation)
    if a > 50.0:
        return 0.1102 * (a - 8.7)
    if a >= 21.0:
        return 0.5842 * (a - 21.0) ** 0.4 + 0.07886 * (a - 21.0)
    return 0.0


def prototype_filter(bands: int, attenuation: float = 100.0) -> np.ndarray:
    """Design the PQMF prototype low-pass.

    Args:
        bands: number of sub-bands M (>= 2).
        attenuation: stop-band attenuation in dB.

    Returns:
        float64 array [N] with N odd, symmetric, cut-off near pi / (2M).
    """
    beta = kaiser_beta(attenuation)
    # Kaiser's length formula with a transition band of pi/M (cycles: 1/(2M)): the
    # stop band then starts where the neighbour-but-one band begins, so only adjacent
    # bands alias, and the cosine modulation cancels exactly that aliasing.
    width = 1.0 / (2.0 * bands)
    taps = int(math.ceil((attenuation - 7.95) / (14.36 * width))) + 1
    taps += 1 - taps % 2  # odd length: an integer centre makes the filters zero-phase
    n = np.arange(taps) - (taps - 1) / 2.0
    window = np.kaiser(taps, beta)

    def design(cutoff: float) -> np.ndarray:
        return cutoff / math.pi * np.sinc(cutoff * n / math.pi) * window

    def nyquist_error(cutoff: float) -> float:
        h = design(cutoff)
        g = np.convolve(h, h)
        centre = taps - 1
        lags = np.arange(centre % (2 * bands), len(g), 2 * bands)
        lags = lags[lags != centre]
        return float(np.max(np.abs(g[lags])) / g[centre])

    nominal = math.pi / (2.0 * bands)
    grid = np.linspace(0.7 * nominal, 1.3 * nominal, 121)
    best = float(grid[int(np.argmin([nyquist_error(c) for c in grid]))])
    step = grid[1] - grid[0]
    res = minimize_scalar(nyquist_error, bounds=(best - step, best + step), method="bounded",
                          options={"xatol": 1e-12})
    cutoff = float(res.x) if res.fun <= nyquist_error(best) else best
    h = design(cutoff)
    # Unit energy of h*h at lag 0 scaled to 1/(2M) gives unity gain through the bank.
    return h / math.sqrt(2.0 * bands * float(np.sum(h * h)))


def cosine_modulated_bank(bands: int, attenuation: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis filters [M, N] (float64) of the cosine-modulated bank."""
    h = prototype_filter(bands, attenuation)
    taps = len(h)
    n = np.arange(taps) - (taps - 1) / 2.0
    k = np.arange(bands)[:, None]
    phase = (-1.0) ** k * math.pi / 4.0
    arg = (2 * k + 1) * math.pi / (2 * bands) * n[None, :]
    analysis = 2.0 * h[None, :] * np.cos(arg + phase)
    synthesis = 2.0 * h[None, :] * np.cos(arg - phase)
    return analysis, synthesis


def _wrap_pad(x: Tensor, left: int, right: int) -> Tensor:
    """Circular padding on the last axis, from slices (exports to any ONNX opset)."""
    t = x.shape[-1]
    return torch.cat([x[..., t - left:], x, x[..., :right]], dim=-1)


def polyphase_filters(analysis: np.ndarray, synthesis: np.ndarray) -> Tuple[np.ndarray, int, np.ndarray, int]:
    """Rewrite the centred M-band filters [M, N] as M-to-M convolutions on polyphase signals.

    With x's polyphase components X_r[q] = x[qM + r] and the circular, zero-delay
    definitions

        y_k[m]      = sum_n h_k[n] x[mM + P - n]                (P = (N - 1) / 2)
        x^[nM + p]  = sum_k sum_m y_k[m] g_k[(n - m)M + p + P]

    both become ordinary stride-1 convolutions with about N / M taps.

    Returns:
        analysis weight [M(out k), M(in r), Ka], its left padding,
        synthesis weight [M(out p), M(in k), Ks], its left padding
        (right padding is K - 1 - left for both; conv1d correlates).
    """
    bands, taps = analysis.shape
    half = (taps - 1) // 2
    # Analysis: y_k[m] = sum_r sum_j X_r[m + j] h_k[P - r - jM].
    j_lo = -((taps - 1 - half) // bands) - 1
    j_hi = half // bands + 1
    ana = np.zeros((bands, bands, j_hi - j_lo + 1))
    for r in range(bands):
        for j in range(j_lo, j_hi + 1):
            n = half - r - j * bands
            if 0 <= n < taps:
                ana[:, r, j - j_lo] = analysis[:, n]
    # Synthesis: x^_p[n] = sum_k sum_j y_k[n - j] g_k[jM + p + P].
    s_lo = -((half + bands - 1) // bands) - 1
    s_hi = (taps - 1 - half) // bands + 1
    syn = np.zeros((bands, bands, s_hi - s_lo + 1))
    for p in range(bands):
        for j in range(s_lo, s_hi + 1):
            n = j * bands + p + half
            if 0 <= n < taps:
                syn[p, :, s_hi - j] = synthesis[:, n]
    return ana, -j_lo, syn, s_hi


class PQMF(nn.Module):
    """Pseudo-QMF analysis / synthesis with circular, delay-free filtering.

    Args:
        bands: number of sub-bands (1 = identity, no filtering).
        attenuation: prototype stop-band attenuation in dB.

    ``analysis(x[B,1,T]) -> [B,bands,T//bands]``; ``synthesis(y[B,bands,T']) ->
    [B,1,T'*bands]``. T must be a multiple of ``bands``, and T // bands at least the
    polyphase filter length (``self.kernel``, about 13 frames at 100 dB).

    Both run as one M-to-M stride-1 ``conv1d`` on the polyphase components (a reshape
    and a transpose away from the signal); that is several times faster on a CPU than
    the textbook strided conv / 1-output-channel transposed conv with N-tap filters.
    """

    def __init__(self, bands: int, attenuation: float = 100.0) -> None:
        super().__init__()
        if bands < 1:
            raise ValueError(f"PQMF bands must be >= 1, got {bands}")
        self.bands = int(bands)
        if bands == 1:
            ana_w, ana_pad, syn_w, syn_pad = np.ones((1, 1, 1)), 0, np.ones((1, 1, 1)), 0
            self.taps = 1
        else:
            ana, syn = cosine_modulated_bank(bands, attenuation)
            self.taps = int(ana.shape[-1])
            # The factor M on synthesis undoes the energy lost to decimation.
            ana_w, ana_pad, syn_w, syn_pad = polyphase_filters(ana, syn * bands)
        self.kernel = int(max(ana_w.shape[-1], syn_w.shape[-1]))
        self.analysis_pad = (int(ana_pad), int(ana_w.shape[-1] - 1 - ana_pad))
        self.synthesis_pad = (int(syn_pad), int(syn_w.shape[-1] - 1 - syn_pad))
        # Derived from (bands, attenuation), so not stored in checkpoints.
        self.register_buffer("analysis_filter", torch.tensor(ana_w, dtype=torch.float32), persistent=False)
        self.register_buffer("synthesis_filter", torch.tensor(syn_w, dtype=torch.float32), persistent=False)

    def analysis(self, x: Tensor) -> Tensor:
        """[B,1,T] audio -> [B,bands,T//bands] sub-bands."""
        if self.bands == 1:
            return x
        batch = x.shape[0]
        frames = x.shape[-1] // self.bands
        poly = x.reshape(batch, frames, self.bands).transpose(1, 2)  # [B, M, T/M]: X_r[q]
        poly = _wrap_pad(poly, self.analysis_pad[0], self.analysis_pad[1])
        return F.conv1d(poly, self.analysis_filter)

    def synthesis(self, y: Tensor) -> Tensor:
        """[B,bands,T'] sub-bands -> [B,1,T'*bands] audio, aligned with the analysis input."""
        if self.bands == 1:
            return y
        batch = y.shape[0]
        frames = y.shape[-1]
        y = _wrap_pad(y, self.synthesis_pad[0], self.synthesis_pad[1])
        poly = F.conv1d(y, self.synthesis_filter)  # [B, M, T']: phase p of the output
        return poly.transpose(1, 2).reshape(batch, 1, frames * self.bands)

    def forward(self, x: Tensor) -> Tensor:
        """Round trip [B,1,T] -> [B,1,T] (analysis then synthesis)."""
        return self.synthesis(self.analysis(x))
