"""Latent statistics of a trained model: macro knobs, their names, and pad latents.

``compute_latent_stats`` encodes the training sounds and derives:

* macro knobs: principal directions of the training latents in the prior flow's BASE
  space (where the prior is N(0, I), so straight lines stay on the data manifold better
  than in latent space); knob value ``k`` moves a base point by ``k * std * direction``.
* macro labels: each direction is decoded at ``base_mean +/- 2 std`` and four audio
  descriptors are compared (brightness, decay, noisiness, pitch); a knob is named after
  the descriptor that clearly changes most, and its sign is flipped so that turning the
  knob up increases that descriptor ("brightness" up = brighter).
* pads: k-means centres of the training latents (latent space), each tagged with the
  class that dominates its cluster, plus the same centres mapped to the base space.
* base quantiles: each base dimension's quantiles over the training sounds, which
  random draws go through (``marginal_base``) instead of being used as N(0, I) directly.
  The prior flow is fitted one batch at a time to posterior samples while the posteriors
  move under it. At the end of a `small` run the training sounds' posterior modes sit
  off-centre in its base space (mean 0.27) and narrower than N(0, I) (0.57 per
  dimension; the posterior noise, which the decoder learned to ignore, fills the rest),
  so N(0, I) draws land partly where no sound is. Drawing each dimension from the modes' own distribution
  brought prior samples 7 to 17 FAD points nearer the held-out sounds
  (docs/evaluation.md).
* base mixing: the dimensions are not independent either (the modes' normal scores
  correlate by 0.18 on average in a `small` run, where independent ones would show
  0.03), so the noise is first correlated like them (a Gaussian copula: the Cholesky
  factor of the normal scores' correlation, ``base_mixing``), then goes through the
  quantiles. That gave the samples back 1 to 7 dB of the low and middle octaves they
  lacked (docs/evaluation.md).

Everything returned is plain tensors / lists / str / float / int, so the dict survives
``torch.save`` + ``torch.load(weights_only=True)`` inside checkpoints and exports.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Optional, Protocol, Sequence

import torch
from torch import Tensor

from flowshot.errors import FlowshotError

DESCRIPTORS = ("brightness", "decay", "noisiness", "pitch")

# Quantiles kept per base dimension: a smooth quantile function whatever the data size,
# 128 KiB for a 128-d latent.
N_BASE_QUANTILES = 257

# Training sounds' base points kept for kernel draws (``kernel_base``): a seeded subset
# beyond this many, 1 MiB for a 128-d latent.
N_KERNEL_POINTS = 2048
# Kernel draws add this many of each dimension's spreads of noise (times the temperature)
# to a training sound's base point. At 1 the draws are as far from every training sound as
# the copula's and score best on FAD, but decode to noise 15 to 20 dB too bright above
# 2.5 kHz; at 0.3 their spectrum errs no more than the copula's, with twice the sustained
# sounds and more diversity (benchmarks/sampler_study.py, docs/evaluation.md). Stored with
# the statistics (``kernel_bandwidth``), so exports and the host draw the same way.
KERNEL_BANDWIDTH = 0.3

# Labelling rule: the winning descriptor must change by more than this (relative) ...
LABEL_MIN_CHANGE = 0.25
# ... and by this factor more than the runner-up, else the knob is just "macro N".
LABEL_MARGIN = 1.5
# Descriptor values below these floors are perceptually "nothing": a click's decay going
# from 1 ms to 3 ms is a 100% change that no one hears. Added to the denominator.
_REL_FLOOR = {"brightness": 50.0, "decay": 0.01, "noisiness": 0.05, "pitch": 1.0}
# Pitch is compared only when both ends are clearly periodic (normalised autocorrelation).
PITCH_MIN_CONFIDENCE = 0.5


class LatentModel(Protocol):
    """What ``compute_latent_stats`` needs from a model (``FlowVAE`` has all of it)."""

    def embed(self, x: Tensor) -> Tensor: ...  # [B,1,L] -> [B,D]

    def latent_to_base(self, z: Tensor) -> Tensor: ...  # [B,D] -> [B,D]

    def base_to_latent(self, u: Tensor) -> Tensor: ...  # [B,D] -> [B,D]

    def decode(self, z: Tensor) -> Tensor: ...  # [B,D] -> [B,1,L]


# --- k-means ------------------------------------------------------------------------------


def kmeans(x: Tensor, k: int, seed: int = 0, max_iter: int = 100) -> tuple[Tensor, Tensor]:
    """Deterministic Lloyd k-means with k-means++ initialisation.

    Args:
        x: points [N, D].
        k: number of clusters (clipped to N).
        seed: seed of the k-means++ draws (same seed, same answer).
        max_iter: Lloyd iterations at most (stops when assignments no longer change).
    Returns:
        (centres [k', D], labels [N]) with k' <= k: clusters that end up empty (duplicate
        points) are dropped and the labels renumbered.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans needs points [N, D] with N >= 1, got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    n = x.shape[0]
    k = max(1, min(int(k), n))
    gen = torch.Generator().manual_seed(int(seed))

    # k-means++: each new centre drawn with probability proportional to squared distance.
    idx = [int(torch.randint(n, (1,), generator=gen))]
    d2 = (x - x[idx[0]]).square().sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0.0:  # every remaining point coincides with a centre
            break
        nxt = int(torch.multinomial(d2 / total, 1, generator=gen))
        idx.append(nxt)
        d2 = torch.minimum(d2, (x - x[nxt]).square().sum(1))
    centres = x[idx].clone()

    labels = torch.full((n,), -1, dtype=torch.long)
    for _ in range(max_iter):
        new_labels = torch.cdist(x, centres).argmin(1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(centres.shape[0]):
            members = labels == j
            if members.any():
                centres[j] = x[members].mean(0)

    used = torch.unique(labels)  # sorted
    remap = torch.full((centres.shape[0],), -1, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    return centres[used], remap[labels]


# --- audio descriptors --------------------------------------------------------------------


def _moving_average(x: Tensor, width: int) -> Tensor:
    """Centered moving average along the last axis of x [B, F] (edge-corrected)."""
    kernel = torch.ones(1, 1, width, dtype=x.dtype)
    pad = width // 2
    num = torch.nn.functional.conv1d(x[:, None], kernel, padding=pad)[:, 0]
    den = torch.nn.functional.conv1d(torch.ones_like(x[:1, None]), kernel, padding=pad)[:, 0]
    return num / den


def describe(audio: Tensor, sample_rate: int) -> dict[str, Tensor]:
    """Descriptors of one-shots.

    Args:
        audio: [B, L] or [B, 1, L].
        sample_rate: Hz.
    Returns:
        dict of [B] float64 tensors:
        ``brightness``: magnitude-weighted spectral centroid, Hz.
        ``decay``: seconds from the envelope peak (5 ms RMS frames) until the envelope
        stays below -30 dB of it (the full remaining length if it never does).
        ``noisiness``: a spectral flatness measured against the local spectral envelope:
        ``2 / E_power[P / smooth(P)]`` (smooth = ~200 Hz moving average), clipped to 1.
        Dividing out the envelope makes it about tone versus noise, not about bandwidth
        (a plain geometric/arithmetic flatness mostly measures how wide the sound is):
        any coloured noise gives ~1, a sustained tone gives ~0.05.
        ``pitch``: Hz, from the highest peak of the normalised autocorrelation between
        30 Hz and min(2 kHz, sr/4) (the shortest lag within 90% of it, against octave
        errors); ``pitch_confidence`` is that peak's height (1 = perfectly periodic).
    """
    if audio.dim() == 3:
        audio = audio[:, 0]
    x = audio.detach().to("cpu", torch.float64)
    b, length = x.shape
    sr = float(sample_rate)
    tiny = 1e-20

    mag = torch.fft.rfft(x).abs()
    freqs = torch.arange(mag.shape[1], dtype=torch.float64) * sr / length
    brightness = (mag * freqs).sum(1) / (mag.sum(1) + tiny)

    power = mag.square()
    width = max(9, int(round(200.0 / (sr / length))) | 1)
    ratio = power / (_moving_average(power, width) + tiny)
    # Energy-weighted mean of power / local mean: for noise of any colour the periodogram
    # is exponentially distributed around its envelope, so the mean is E[r^2]/E[r] = 2;
    # a tone puts its energy in a peak far above the local mean (r ~ 200 Hz / peak width).
    weighted = (ratio * power).sum(1) / (power.sum(1) + tiny)
    noisiness = (2.0 / weighted.clamp(min=1e-9)).clamp(max=1.0)
    noisiness = torch.where(power.sum(1) > 0, noisiness, torch.zeros_like(noisiness))

    frame = max(1, int(round(0.005 * sr)))
    n_frames = length // frame
    rms = x[:, : n_frames * frame].reshape(b, n_frames, frame).square().mean(2).sqrt()
    peak_val, peak_idx = rms.max(1)
    above = rms >= peak_val[:, None] * 10 ** (-30 / 20)
    frame_ids = torch.arange(n_frames)
    last_above = torch.where(above, frame_ids, torch.full_like(frame_ids, -1)).amax(1)
    decay = (last_above - peak_idx + 1).clamp(min=0).to(torch.float64) * frame / sr
    decay = torch.where(peak_val > 0, decay, torch.zeros_like(decay))

    pitch, confidence = _autocorrelation_pitch(x, sr)
    return {
        "brightness": brightness,
        "decay": decay,
        "noisiness": noisiness,
        "pitch": pitch,
        "pitch_confidence": confidence,
    }


def _autocorrelation_pitch(x: Tensor, sr: float) -> tuple[Tensor, Tensor]:
    """x [B, L] float64 -> (pitch Hz [B], confidence [B]); 0 / 0 where nothing periodic."""
    b, length = x.shape
    spec = torch.fft.rfft(x, n=2 * length)
    r = torch.fft.irfft(spec.abs().square(), n=2 * length)[:, :length]
    # Normalise by the energy of the two overlapping parts: a decaying sound is still
    # perfectly periodic, its raw autocorrelation just shrinks with the lag.
    csum = torch.cat([torch.zeros(b, 1, dtype=x.dtype), x.square().cumsum(1)], 1)
    lags = torch.arange(length)
    head = csum[:, length - lags]  # energy of x[:L-lag]
    tail = csum[:, -1:] - csum[:, lags]  # energy of x[lag:]
    rn = r / torch.sqrt(head * tail + 1e-20)

    lag_min = max(2, int(math.ceil(sr / min(2000.0, sr / 4))))
    lag_max = min(int(sr / 30.0), length // 2)
    pitch = torch.zeros(b, dtype=torch.float64)
    conf = torch.zeros(b, dtype=torch.float64)
    if lag_max <= lag_min + 1:
        return pitch, conf
    seg = rn[:, lag_min - 1 : lag_max + 2]
    mid = seg[:, 1:-1]
    is_peak = (mid > seg[:, :-2]) & (mid >= seg[:, 2:])
    for i in range(b):
        cand = torch.nonzero(is_peak[i]).flatten()
        if len(cand) == 0:
            continue
        heights = mid[i, cand]
        best = float(heights.max())
        if best <= 0:
            continue
        j = int(cand[heights >= 0.9 * best][0])
        lag = float(j + lag_min)
        # Parabolic interpolation of the peak for sub-sample lag resolution.
        y0, y1, y2 = float(seg[i, j]), float(seg[i, j + 1]), float(seg[i, j + 2])
        den = y0 - 2 * y1 + y2
        if den < 0:
            lag += 0.5 * (y0 - y2) / den
        pitch[i] = sr / lag
        conf[i] = best
    return pitch, conf


def descriptor_changes(minus: dict[str, Tensor], plus: dict[str, Tensor]) -> dict[str, Tensor]:
    """Signed relative change of each descriptor from ``minus`` to ``plus`` (each [B]).

    ``(plus - minus) / (mean(|plus|, |minus|) + floor)``. Pitch counts only where both
    ends are periodic (confidence >= ``PITCH_MIN_CONFIDENCE``); there brightness is
    measured relative to the pitch (centroid / f0), so a transposed sound whose timbre
    follows the pitch reads as "pitch", not also as "brightness".
    """
    out: dict[str, Tensor] = {}
    pitched = (minus["pitch_confidence"] >= PITCH_MIN_CONFIDENCE) & (plus["pitch_confidence"] >= PITCH_MIN_CONFIDENCE)
    for name in DESCRIPTORS:
        a, b = minus[name], plus[name]
        rel = (b - a) / ((a.abs() + b.abs()) / 2 + _REL_FLOOR[name])
        if name == "pitch":
            rel = torch.where(pitched, rel, torch.zeros_like(rel))
        out[name] = rel
    ratio_m = minus["brightness"] / minus["pitch"].clamp(min=1e-9)
    ratio_p = plus["brightness"] / plus["pitch"].clamp(min=1e-9)
    rel_ratio = (ratio_p - ratio_m) / ((ratio_m + ratio_p) / 2 + 1e-9)
    out["brightness"] = torch.where(pitched, rel_ratio, out["brightness"])
    return out


def choose_label(changes: dict[str, float], index: int) -> tuple[str, float]:
    """(label, sign) for knob ``index`` (0-based) from its descriptor changes.

    The label is the descriptor with the largest |change| if it exceeds
    ``LABEL_MIN_CHANGE`` and ``LABEL_MARGIN`` times the runner-up; else ``"macro N"``
    (1-based). ``sign`` is the sign of that change (+1 for unnamed knobs).
    """
    ranked = sorted(DESCRIPTORS, key=lambda n: abs(changes[n]), reverse=True)
    top, second = abs(changes[ranked[0]]), abs(changes[ranked[1]])
    if top > LABEL_MIN_CHANGE and top >= LABEL_MARGIN * second:
        return ranked[0], (1.0 if changes[ranked[0]] >= 0 else -1.0)
    return f"macro {index + 1}", 1.0


# --- the statistics -----------------------------------------------------------------------


def _model_place(model: Any) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's weights (CPU float32 for weightless models)."""
    params = model.parameters() if hasattr(model, "parameters") else iter(())
    first = next(iter(params), None)
    return (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)


def _batched(fn: Any, x: Tensor, batch_size: int, progress: Any = None, task: Any = None, model: Any = None) -> Tensor:
    """fn over x [N, ...] in batches on the model's device; the result comes back as CPU float32."""
    device, dtype = _model_place(model)
    outs = []
    for start in range(0, x.shape[0], batch_size):
        outs.append(fn(x[start : start + batch_size].to(device, dtype)).to("cpu", torch.float32))
        if progress is not None:
            progress.advance(task, min(batch_size, x.shape[0] - start))
    return torch.cat(outs, 0)


def _model_sample_rate(model: Any, sample_rate: int | None) -> int:
    if sample_rate is not None:
        return int(sample_rate)
    if hasattr(model, "sample_rate"):
        return int(model.sample_rate)
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        return int(cfg.audio.sample_rate)
    raise ValueError("compute_latent_stats: the model has no sample_rate; pass sample_rate=")


def compute_latent_stats(
    model: Any,
    examples: Any,
    indices: Sequence[int] | Tensor | None = None,
    n_macros: int = 8,
    n_pads: int = 16,
    batch_size: int = 32,
    sample_rate: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Macro directions, their labels and pad latents of ``model`` on ``examples``.

    Args:
        model: a ``FlowVAE`` (or anything with ``embed``, ``latent_to_base``,
            ``base_to_latent``, ``decode`` and ``sample_rate``). Used in eval mode without
            gradients; its training mode is restored afterwards.
        examples: an ``ExampleSet`` (``audio`` float tensor [N, L], ``classes`` list[str]).
        indices: which examples to use (e.g. ``examples.train_index()``); None = all.
        n_macros: knobs K (clipped to min(D, N - 1)).
        n_pads: pads P (clipped to N; duplicate latents may give fewer).
        batch_size: encode / decode batch size.
        sample_rate: Hz of the decoded audio (default: ``model.sample_rate``).
        seed: k-means seed.
        progress: show a rich progress bar while encoding.
    Returns:
        dict with ``macro_directions`` [K, D], ``macro_std`` [K], ``base_mean`` [D],
        ``macro_labels`` list[str] (K), ``macro_explained`` list[float] (share of the
        base-space variance per knob), ``macro_changes`` list[dict[str, float]] (relative
        descriptor change from -2 std to +2 std per knob), ``pad_latents`` [P, D],
        ``pad_base`` [P, D], ``pad_classes`` list[str] (P), ``pad_counts`` list[int]
        (examples per pad), ``n_examples`` int, ``base_quantiles`` [Q, D] and
        ``base_mixing`` [D, D] (the sampling table), ``base_points`` [M, D] (at most
        ``N_KERNEL_POINTS`` training sounds' base points), ``base_spread`` [D] (their
        std per dimension) and ``kernel_bandwidth`` (float) for kernel draws. Float32 CPU tensors.
    Raises:
        FlowshotError: fewer than two examples, or a model that returns non-finite latents.
    """
    audio: Tensor = torch.as_tensor(examples.audio)
    classes = list(getattr(examples, "classes", None) or [""] * audio.shape[0])
    if indices is None:
        idx = torch.arange(audio.shape[0])
    else:
        idx = torch.as_tensor(list(indices) if not isinstance(indices, Tensor) else indices, dtype=torch.long)
    if idx.numel() < 2:
        raise FlowshotError(
            f"latent statistics need at least 2 training examples, got {idx.numel()}: add sounds to the data"
        )
    sr = _model_sample_rate(model, sample_rate)
    x = audio[idx].to(torch.float32)
    if x.dim() == 2:
        x = x[:, None]
    used_classes = [classes[int(i)] for i in idx]

    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            z, u = _encode_all(model, x, batch_size, progress)
            if not (torch.isfinite(z).all() and torch.isfinite(u).all()):
                raise FlowshotError(
                    "the model produced non-finite latents for the training data: the checkpoint is broken; "
                    "use an earlier checkpoint"
                )
            stats = _pca(u.to(torch.float64), n_macros)
            labels, changes = _label_macros(model, stats, sr, batch_size)
            pads = _pads(model, z, used_classes, n_pads, seed)
            quantiles = base_quantiles(u)
            mixing = base_mixing(u)
            keep = torch.randperm(u.shape[0], generator=torch.Generator().manual_seed(seed))[:N_KERNEL_POINTS]
            points, spread = u[keep.sort().values], u.std(0)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()

    return {
        "macro_directions": stats["directions"].to(torch.float32).contiguous(),
        "macro_std": stats["std"].to(torch.float32),
        "base_mean": stats["mean"].to(torch.float32),
        "macro_labels": labels,
        "macro_explained": [float(v) for v in stats["explained"]],
        "macro_changes": changes,
        "pad_latents": pads["latents"].to(torch.float32).contiguous(),
        "pad_base": pads["base"].to(torch.float32).contiguous(),
        "pad_classes": pads["classes"],
        "pad_counts": pads["counts"],
        "n_examples": int(idx.numel()),
        "base_quantiles": quantiles.to(torch.float32).contiguous(),
        "base_mixing": mixing.to(torch.float32).contiguous(),
        "base_points": points.to(torch.float32).contiguous(),
        "base_spread": spread.to(torch.float32).contiguous(),
        "kernel_bandwidth": float(KERNEL_BANDWIDTH),
    }


def base_quantiles(u: Tensor, n: int = N_BASE_QUANTILES) -> Tensor:
    """Per-dimension quantiles of base points u [N, D]: [Q, D] at probabilities
    ``0, 1/(Q-1), ..., 1`` (so row 0 is each dimension's minimum, row Q-1 its maximum),
    with Q = min(n, N)."""
    q = max(2, min(int(n), u.shape[0]))
    levels = torch.linspace(0.0, 1.0, q, dtype=torch.float64)
    return torch.quantile(u.to(torch.float64), levels, dim=0)


def base_mixing(u: Tensor) -> Tensor:
    """Lower-triangular ``M [D, D]`` with ``M M^T`` the correlation of base points u [N, D]
    after each dimension is mapped to normal scores (ranks through the inverse normal CDF):
    ``eps @ M.T`` turns independent N(0, 1) noise into noise correlated like the training
    sounds, which ``marginal_base`` then gives their marginals (a Gaussian copula). The
    correlation is shrunk towards the identity by D / (N + D): with few sounds (N near or
    under D) sample correlations are mostly noise, and the matrix singular."""
    n, d = u.shape
    u = u.to(torch.float64)
    ranks = u.argsort(0).argsort(0).to(torch.float64)
    scores = torch.special.ndtri((ranks + 0.5) / n)
    eye = torch.eye(d, dtype=torch.float64)
    corr = torch.corrcoef(scores.t()) if n > 1 else eye
    corr = torch.nan_to_num(corr.reshape(d, d), nan=0.0)  # a constant dimension correlates with nothing
    corr = corr - torch.diag(torch.diag(corr)) + eye
    shrink = d / (n + d)
    return torch.linalg.cholesky((1.0 - shrink) * corr + shrink * eye)


def marginal_base(eps: Tensor, quantiles: Tensor, mixing: Optional[Tensor] = None) -> Tensor:
    """Standard-normal noise -> base points distributed like the training sounds.

    With ``mixing`` the noise is first correlated like the training sounds' normal scores
    (``eps @ mixing.T``). Each value then goes through the normal CDF and the dimension's
    quantile function (linear between the stored quantiles), so N(0, 1) noise comes out
    with the training modes' marginal distribution; scaling ``eps`` (temperature) still
    narrows or widens the draw around each dimension's median. An empty ``quantiles``
    returns ``eps`` unchanged (checkpoints written before these statistics existed); an
    empty or missing ``mixing`` leaves the dimensions independent.

    Args:
        eps: [B, D] noise (already multiplied by the temperature).
        quantiles: [Q, D] from ``base_quantiles``, or an empty tensor.
        mixing: [D, D] from ``base_mixing``, or None / an empty tensor.
    Returns:
        [B, D] base points.
    """
    if quantiles.numel() == 0:
        return eps
    if mixing is not None and mixing.numel() > 0:
        eps = torch.matmul(eps, mixing.t().to(eps.dtype))
    q = quantiles.size(0)
    p = 0.5 * (1.0 + torch.erf(eps * 0.7071067811865476))
    pos = (p * (q - 1)).clamp(0.0, q - 1.0)
    lo = pos.floor().clamp(max=q - 2.0)
    w = (pos - lo).to(quantiles.dtype)
    i0 = lo.long()
    table = quantiles.t()  # [D, Q]: one gather row per dimension
    idx = i0.t()
    a = torch.gather(table, 1, idx)
    b = torch.gather(table, 1, idx + 1)
    return (a + (b - a) * w.t()).t()


def _encode_all(model: Any, x: Tensor, batch_size: int, progress: bool) -> tuple[Tensor, Tensor]:
    """audio [N,1,L] -> (latents z [N,D], base points u [N,D])."""
    if not progress:
        z = _batched(model.embed, x, batch_size, model=model)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("latent statistics: encoding", total=x.shape[0])
            z = _batched(model.embed, x, batch_size, bar, task, model=model)
    u = _batched(model.latent_to_base, z, batch_size, model=model)
    return z, u


def _pca(u: Tensor, n_macros: int) -> dict[str, Tensor]:
    """Principal axes of base points u [N, D] (float64)."""
    n, d = u.shape
    k = max(1, min(int(n_macros), d, n - 1))
    mean = u.mean(0)
    _, s, vh = torch.linalg.svd(u - mean, full_matrices=False)
    directions = vh[:k].clone()
    # SVD signs are arbitrary: fix them (largest |component| positive) so the same data
    # always gives the same knobs; labelling may flip them again on purpose.
    pivot = directions.abs().argmax(1)
    signs = torch.sign(directions[torch.arange(k), pivot])
    directions = directions * signs[:, None]
    var = s.square() / (n - 1)
    explained = var[:k] / var.sum().clamp(min=1e-30)
    return {"directions": directions, "std": var[:k].sqrt(), "mean": mean, "explained": explained}


def _label_macros(
    model: Any, stats: dict[str, Tensor], sr: int, batch_size: int
) -> tuple[list[str], list[dict[str, float]]]:
    """Decode each direction at -2 / +2 std, name it; flips ``stats["directions"]`` in place."""
    dirs, std, mean = stats["directions"], stats["std"], stats["mean"]
    k = dirs.shape[0]
    offsets = 2.0 * std[:, None] * dirs  # [K, D]
    u = torch.cat([mean - offsets, mean + offsets], 0)  # [2K, D]: all minus ends, then all plus ends
    audio = _batched(lambda b: model.decode(model.base_to_latent(b)), u, batch_size, model=model)
    desc = describe(audio, sr)
    minus = {n: v[:k] for n, v in desc.items()}
    plus = {n: v[k:] for n, v in desc.items()}
    rel = descriptor_changes(minus, plus)

    labels: list[str] = []
    changes: list[dict[str, float]] = []
    seen: Counter[str] = Counter()
    for i in range(k):
        ch = {n: float(rel[n][i]) for n in DESCRIPTORS}
        label, sign = choose_label(ch, i)
        if sign < 0:
            dirs[i] = -dirs[i]
            ch = {n: -v for n, v in ch.items()}
        if not label.startswith("macro "):
            seen[label] += 1
            if seen[label] > 1:  # two knobs both mostly "brightness": keep names distinct
                label = f"{label} {seen[label]}"
        labels.append(label)
        changes.append(ch)
    return labels, changes


def _pads(model: Any, z: Tensor, classes: list[str], n_pads: int, seed: int) -> dict[str, Any]:
    """k-means of latents z [N, D] -> pad centres, their base points, dominant classes."""
    centres, labels = kmeans(z, n_pads, seed=seed)
    info = []
    for j in range(centres.shape[0]):
        members = torch.nonzero(labels == j).flatten().tolist()
        counts = Counter(classes[m] for m in members)
        # Most common class; ties broken alphabetically so the answer is deterministic.
        top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        info.append((top, -len(members), j))
    # Pads ordered by class name, then by cluster size: neighbouring pads sound alike.
    info.sort()
    order = [j for _, _, j in info]
    centres = centres[order]
    centres = centres.to(torch.float32)
    base = _batched(model.latent_to_base, centres, max(1, centres.shape[0]), model=model)
    return {
        "latents": centres,
        "base": base,
        "classes": [c for c, _, _ in info],
        "counts": [-n for _, n, _ in info],
    }


def knob_offset(stats: dict[str, Any], knobs: Sequence[float] | Tensor) -> Tensor:
    """Base-space offset of macro knob values.

    Args:
        stats: the dict of ``compute_latent_stats``.
        knobs: [K'] or [B, K'] knob values with K' <= K (missing knobs are 0); 1.0 = one
            standard deviation of the training data along that direction.
    Returns:
        [D] (or [B, D]) offset to add to a base point: ``sum_k knobs_k * std_k * dir_k``.
    """
    directions = torch.as_tensor(stats["macro_directions"])
    std = torch.as_tensor(stats["macro_std"]).to(directions.dtype)
    k = torch.as_tensor(knobs, dtype=directions.dtype)
    if k.dim() not in (1, 2) or k.shape[-1] > directions.shape[0]:
        raise FlowshotError(
            f"knob values of shape {tuple(k.shape)} do not fit {directions.shape[0]} macro knobs: "
            f"pass at most {directions.shape[0]} values per row"
        )
    if not torch.isfinite(k).all():
        raise FlowshotError(f"knob values must be finite numbers, got {k.tolist()}")
    used = k.shape[-1]
    return (k * std[:used]) @ directions[:used]


def _stored_stat(meta: dict[str, Any] | None, key: str) -> Tensor | None:
    """``latent_stats[key]`` of a checkpoint's meta as a float32 matrix (None when absent)."""
    stats = (meta or {}).get("latent_stats") or {}
    value = stats.get(key) if isinstance(stats, dict) else None
    if value is None:
        return None
    value = torch.as_tensor(value, dtype=torch.float32)
    return value if value.dim() == 2 else None


def stored_base_quantiles(meta: dict[str, Any] | None) -> Tensor | None:
    """The ``base_quantiles`` [Q, D] in a checkpoint's meta (None when it has none)."""
    table = _stored_stat(meta, "base_quantiles")
    return table if table is not None and table.shape[0] >= 2 else None


def stored_base_mixing(meta: dict[str, Any] | None) -> Tensor | None:
    """The ``base_mixing`` [D, D] in a checkpoint's meta (None when it has none)."""
    mixing = _stored_stat(meta, "base_mixing")
    return mixing if mixing is not None and mixing.shape[0] == mixing.shape[1] > 0 else None


def stored_kernel(meta: dict[str, Any] | None) -> tuple[Tensor, Tensor, float] | None:
    """(``base_points`` [M, D], ``base_spread`` [D], ``kernel_bandwidth``) of a checkpoint's
    meta, or None. Statistics written before the bandwidth was stored used ``KERNEL_BANDWIDTH``."""
    points = _stored_stat(meta, "base_points")
    stats = (meta or {}).get("latent_stats") or {}
    spread = stats.get("base_spread") if isinstance(stats, dict) else None
    if points is None or spread is None or points.shape[0] < 1:
        return None
    spread = torch.as_tensor(spread, dtype=torch.float32).reshape(-1)
    bandwidth = float(stats.get("kernel_bandwidth", KERNEL_BANDWIDTH))
    return (points, spread, bandwidth) if spread.numel() == points.shape[1] else None


def kernel_point(points: Tensor, spread: Tensor, index: Tensor, eps: Tensor, scale: float) -> Tensor:
    """Kernel draws ``points[index] + scale * spread * eps`` [H, D] from ``index`` [H] and
    noise ``eps`` [H, D] (``scale`` = temperature times bandwidth). The one formula
    ``generate``, the nn~ ``sample`` method and the live host's randomise share."""
    return points[index] + scale * spread * eps


def kernel_base(n: int, temperature: float, generator: torch.Generator, points: Tensor, spread: Tensor,
                bandwidth: float = KERNEL_BANDWIDTH) -> Tensor:
    """n kernel draws [n, D]: a random training sound's base point plus
    ``temperature * bandwidth * spread * eps``, ``eps ~ N(0, I)`` (0 = the training
    sounds' own modes).

    Each draw takes its own ``randn(D + 1)`` call on ``generator``: the first value,
    through the normal CDF, picks the point, the rest is the noise. One call per draw keeps
    draw i the same whatever n is (one ``randn(n, D + 1)`` would not: torch fills large
    tensors in vectorised blocks of 16), so the same seed gives the same first sounds."""
    m, d = points.shape
    raw = torch.zeros(n, d + 1, dtype=torch.float64)
    for i in range(n):
        raw[i] = torch.randn(d + 1, generator=generator, dtype=torch.float64)
    idx = (torch.special.ndtr(raw[:, 0]) * m).long().clamp(0, m - 1)
    eps = raw[:, 1:].to(points.dtype)
    return kernel_point(points, spread, idx, eps, float(temperature) * float(bandwidth))


def draw_base(n: int, dim: int, temperature: float, generator: torch.Generator,
              quantiles: Tensor | None, mixing: Tensor | None = None) -> Tensor:
    """n random base points [n, D]: ``eps ~ N(0, T^2)``, through ``marginal_base`` when
    ``quantiles`` are given (else used as they are, as ``FlowVAE.sample`` does). The same
    generator state gives the same ``eps`` either way."""
    eps = torch.randn(n, dim, generator=generator) * float(temperature)
    return eps if quantiles is None else marginal_base(eps, quantiles, mixing)


def sampler_base(meta: dict[str, Any] | None, n: int, dim: int, temperature: float, generator: torch.Generator,
                 sampler: str = "kernel") -> tuple[Tensor, str]:
    """n random base points [n, D] the way ``sampler`` draws them, and the sampler used.

    "kernel": ``kernel_base`` around the stored training sounds' base points; "data":
    ``draw_base`` through the stored quantiles and mixing (the copula); "flow": plain
    N(0, T^2). A checkpoint without the statistics a sampler needs falls back, kernel to
    data to flow (the second value says which ran, so callers can say so)."""
    if sampler == "kernel":
        kernel = stored_kernel(meta)
        if kernel is not None:
            return kernel_base(n, temperature, generator, *kernel), "kernel"
        sampler = "data"
    table = stored_base_quantiles(meta) if sampler == "data" else None
    u = draw_base(n, dim, temperature, generator, table, stored_base_mixing(meta))
    return u, ("data" if table is not None else "flow")
