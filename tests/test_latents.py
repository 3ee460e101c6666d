"""Latent statistics: PCA in base space, k-means pads, descriptor labels, knob offsets.

Most tests use ``StubModel`` instead of a trained FlowVAE. That is deliberate and fine
HERE: what is under test is the maths of ``compute_latent_stats`` (PCA, k-means,
descriptors, labelling), which needs data whose principal axes, clusters and sound
parameters are known exactly; a trained network would only blur the reference. The last
test runs a real tiny FlowVAE end to end.
"""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from flowshot.errors import FlowshotError
from flowshot.model.latents import (
    base_mixing,
    base_quantiles,
    compute_latent_stats,
    describe,
    kmeans,
    kernel_base,
    knob_offset,
    marginal_base,
)


pytestmark = pytest.mark.usefixtures("one_thread")

SR, L, D = 8000, 2048, 6
TRUE_STD = [3.0, 1.5, 1.0, 0.5, 0.3, 0.2]


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


class StubModel:
    """Affine latent <-> base map; the 'audio' of an example carries its latent in its
    first D samples; ``decode`` synthesises a sound whose one parameter follows the base
    point's coordinate along ``axis`` (in units of the data's std along it)."""

    def __init__(self, axis: torch.Tensor, axis_std: float, mode: str) -> None:
        self.sample_rate = SR
        self.axis = axis.to(torch.float32)
        self.axis_std = axis_std
        self.mode = mode
        self.mix = (_orthogonal(D, 7) * torch.tensor([2.0, 1.0, 0.5, 1.5, 1.0, 0.8], dtype=torch.float64)).float()
        self.shift = torch.linspace(-1.0, 1.0, D)
        self.noise = torch.randn(L, generator=torch.Generator().manual_seed(11))
        self.training = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :D]

    def base_to_latent(self, u: torch.Tensor) -> torch.Tensor:
        return u @ self.mix + self.shift

    def latent_to_base(self, z: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.mix.T, (z - self.shift).T).T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        a = (self.latent_to_base(z) @ self.axis) / self.axis_std  # [B], about N(0, 1)
        t = torch.arange(L) / SR
        out = []
        for ai in a.tolist():
            if self.mode == "brightness":
                y = _lowpass(self.noise, 800.0 * 2.0 ** (ai / 2)) * torch.exp(-t / 0.1)
            elif self.mode == "decay":
                y = _lowpass(self.noise, 1000.0) * torch.exp(-t / (0.04 * 2.0 ** (ai / 2)))
            elif self.mode == "pitch":
                y = _harmonic(200.0 * 2.0 ** (ai / 2), t) * torch.exp(-t / 0.1)
            elif self.mode == "noisiness":
                w = 1.0 / (1.0 + math.exp(-2.0 * ai))
                y = ((1 - w) * _harmonic(300.0, t) + w * _lowpass(self.noise, 700.0)) * torch.exp(-t / 0.1)
            else:  # "none": the decoder ignores the latent
                y = _lowpass(self.noise, 1000.0) * torch.exp(-t / 0.1)
            out.append(y)
        return torch.stack(out)[:, None]


def _lowpass(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    spec = torch.fft.rfft(x)
    f = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return torch.fft.irfft(spec / torch.sqrt(1 + (f / cutoff) ** 8), n=x.shape[-1])


def _harmonic(f0: float, t: torch.Tensor) -> torch.Tensor:
    return sum(torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 5)) * 0.5


def _examples(z: torch.Tensor, classes: list[str]) -> SimpleNamespace:
    """Latents [N,D] -> an ExampleSet look-alike whose audio carries them."""
    audio = torch.zeros(z.shape[0], L)
    audio[:, :D] = z
    return SimpleNamespace(audio=audio, classes=classes)


def _gaussian_data(n: int = 300) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Base points with principal axes R[:, k] and std TRUE_STD[k] -> (u [N,D], R, mean)."""
    r = _orthogonal(D, 3)
    g = torch.randn(n, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mean = torch.linspace(0.5, -0.5, D, dtype=torch.float64)
    u = mean + (g * torch.tensor(TRUE_STD, dtype=torch.float64)) @ r.T
    return u.float(), r, mean


def _stats_for(mode: str, n_macros: int = 4) -> tuple[dict, StubModel, torch.Tensor, torch.Tensor]:
    u, r, _ = _gaussian_data()
    model = StubModel(r[:, 0], TRUE_STD[0], mode)
    z = model.base_to_latent(u)
    stats = compute_latent_stats(model, _examples(z, ["x"] * len(z)), list(range(len(z))), n_macros=n_macros,
                                 n_pads=4, progress=False)
    return stats, model, u, r


def test_pca_matches_numpy_and_the_true_axes() -> None:
    stats, model, u, r = _stats_for("none", n_macros=4)
    # Reference: numpy eigen-decomposition of the covariance of the same base points.
    un = u.double().numpy()
    evals, evecs = np.linalg.eigh(np.cov(un.T))
    order = np.argsort(evals)[::-1][:4]
    dirs = stats["macro_directions"].double().numpy()
    assert dirs.shape == (4, D)
    np.testing.assert_allclose(np.abs(np.sum(dirs * evecs[:, order].T, axis=1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(stats["macro_std"].numpy(), np.sqrt(evals[order]), rtol=1e-5)
    np.testing.assert_allclose(stats["base_mean"].numpy(), un.mean(0), atol=1e-5)
    # And the sampled axes are near the generating ones (300 draws: within ~15%).
    for k in range(3):
        assert abs(float(stats["macro_directions"][k].double() @ r[:, k])) > 0.97
        assert float(stats["macro_std"][k]) == pytest.approx(TRUE_STD[k], rel=0.15)
    assert stats["macro_labels"] == ["macro 1", "macro 2", "macro 3", "macro 4"]
    assert sum(stats["macro_explained"]) < 1.0 and stats["macro_explained"][0] > 0.6


@pytest.mark.parametrize("mode", ["brightness", "decay", "pitch", "noisiness"])
def test_labels_name_the_descriptor_that_the_first_direction_moves(mode: str) -> None:
    stats, model, _, _ = _stats_for(mode, n_macros=3)
    # Only the first principal direction changes the sound: it gets the name, the rest
    # stay anonymous (the labelling must be able to say "no clear meaning").
    assert stats["macro_labels"] == [mode, "macro 2", "macro 3"], stats["macro_changes"]
    # The sign is flipped so that turning the knob UP increases the named descriptor.
    assert stats["macro_changes"][0][mode] > 0.25
    ends = torch.stack([stats["base_mean"] - 2 * stats["macro_std"][0] * stats["macro_directions"][0],
                        stats["base_mean"] + 2 * stats["macro_std"][0] * stats["macro_directions"][0]])
    desc = describe(model.decode(model.base_to_latent(ends)), SR)
    assert float(desc[mode][1]) > float(desc[mode][0])


def test_descriptors_against_known_signals() -> None:
    t = torch.arange(L) / SR
    noise = torch.randn(L, generator=torch.Generator().manual_seed(0))
    sine = torch.sin(2 * math.pi * 250.0 * t) * torch.exp(-t / 0.05)
    d = describe(torch.stack([sine, noise * torch.exp(-t / 0.05)]), SR)
    assert float(d["pitch"][0]) == pytest.approx(250.0, rel=0.01)
    assert float(d["pitch_confidence"][0]) > 0.95 and float(d["pitch_confidence"][1]) < 0.3
    # -30 dB of an exp(-t/tau) envelope is reached after tau * ln(10^1.5) = 0.173 s.
    assert float(d["decay"][0]) == pytest.approx(0.05 * math.log(10**1.5), abs=0.01)
    assert float(d["noisiness"][0]) < 0.3 and float(d["noisiness"][1]) > 0.9
    # White noise: the centroid sits near half of Nyquist.
    assert float(d["brightness"][1]) == pytest.approx(SR / 4, rel=0.1)


def test_kmeans_finds_three_separated_clusters_deterministically() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 6.0, 2.0]])
    sizes = [40, 25, 15]
    x = torch.cat([c + 0.3 * torch.randn(n, 3, generator=gen) for c, n in zip(centres, sizes)])
    truth = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    found, labels = kmeans(x, 3, seed=0)
    again, labels2 = kmeans(x, 3, seed=0)
    assert torch.equal(found, again) and torch.equal(labels, labels2)
    # Each true cluster maps to exactly one found cluster, whose centre is its mean.
    for i in range(3):
        assigned = labels[truth == i].unique()
        assert len(assigned) == 1
        assert torch.allclose(found[assigned[0]].float(), x[truth == i].mean(0), atol=1e-5)
    assert len(labels.unique()) == 3
    # Duplicate points cannot fill more clusters than there are distinct points.
    dup, _ = kmeans(torch.ones(10, 2), 4)
    assert dup.shape == (1, 2)


def test_pads_carry_the_dominant_class_and_their_base_points() -> None:
    gen = torch.Generator().manual_seed(1)
    means = torch.tensor([[4.0] * D, [-4.0] * D, [4.0, -4.0] * (D // 2)])
    names = ["kick", "snare", "hat"]
    z, classes = [], []
    for m, name in zip(means, names):
        z.append(m + 0.2 * torch.randn(30, D, generator=gen))
        classes += [name] * 30
    classes[0] = "snare"  # one mislabelled kick must not change the vote
    z = torch.cat(z)
    u, r, _ = _gaussian_data()
    model = StubModel(r[:, 0], 1.0, "none")
    stats = compute_latent_stats(model, _examples(z, classes), range(len(z)), n_macros=2, n_pads=3, progress=False)
    assert stats["pad_classes"] == ["hat", "kick", "snare"]  # ordered by class name
    assert stats["pad_counts"] == [30, 30, 30]
    groups = {"kick": slice(0, 30), "snare": slice(30, 60), "hat": slice(60, 90)}
    for k, name in enumerate(stats["pad_classes"]):
        assert torch.allclose(stats["pad_latents"][k], z[groups[name]].mean(0), atol=1e-5)
    assert torch.allclose(stats["pad_base"], model.latent_to_base(stats["pad_latents"]), atol=1e-5)
    # A subset of indices uses only those examples.
    sub = compute_latent_stats(model, _examples(z, classes), list(range(30, 90)), n_macros=2, n_pads=2, progress=False)
    assert sorted(sub["pad_classes"]) == ["hat", "snare"] and sub["n_examples"] == 60


def test_knob_offset_and_weights_only_round_trip() -> None:
    stats, _, _, _ = _stats_for("none", n_macros=3)
    dirs, std = stats["macro_directions"], stats["macro_std"]
    assert torch.allclose(knob_offset(stats, [1.0, 0.0, 0.0]), std[0] * dirs[0])
    assert torch.allclose(knob_offset(stats, [0.0, -2.0]), -2 * std[1] * dirs[1])
    batch = knob_offset(stats, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    assert batch.shape == (2, D) and torch.allclose(batch[0], (std[:, None] * dirs).sum(0)) and not batch[1].any()
    with pytest.raises(FlowshotError, match="3 macro knobs"):
        knob_offset(stats, [0.0] * 4)
    buf = io.BytesIO()
    torch.save(stats, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=True)
    assert back.keys() == stats.keys() and back["macro_labels"] == stats["macro_labels"]
    assert torch.equal(back["macro_directions"], dirs)
    with pytest.raises(FlowshotError, match="at least 2"):
        compute_latent_stats(StubModel(torch.ones(D), 1.0, "none"), _examples(torch.zeros(1, D), ["a"]), [0],
                             progress=False)


def test_real_tiny_flowvae_stats_are_consistent_and_load_with_weights_only() -> None:
    from flowshot.model.config import preset
    from flowshot.model.drums import generate_drums
    from flowshot.model.vae import FlowVAE

    cfg = preset("tiny")
    torch.manual_seed(0)
    model = FlowVAE(cfg)
    model.train()
    audio, classes = generate_drums(48, cfg.audio.sample_rate, cfg.audio.length, seed=0)
    examples = SimpleNamespace(audio=torch.from_numpy(audio), classes=classes)
    stats = compute_latent_stats(model, examples, list(range(40)), n_macros=8, n_pads=16, progress=False)
    assert model.training  # mode restored
    d = cfg.model.latent_dim
    assert stats["macro_directions"].shape == (8, d) and stats["macro_std"].shape == (8,)
    assert stats["pad_latents"].shape[1] == d and stats["pad_base"].shape == stats["pad_latents"].shape
    assert len(stats["pad_classes"]) == stats["pad_latents"].shape[0] <= 16 and len(stats["macro_labels"]) == 8
    assert set(stats["pad_classes"]) <= set(classes)
    with torch.no_grad():
        # pad_base really is the prior flow's inverse of the pad latents (and maps back).
        assert torch.allclose(model.base_to_latent(stats["pad_base"]), stats["pad_latents"], atol=1e-4)
        # The directions are orthonormal and std is sorted, as a PCA must give.
        # The sampling table is the per-dimension quantiles of exactly these base points.
        u = model.latent_to_base(torch.cat([model.embed(examples.audio[i:i + 8, None]) for i in range(0, 40, 8)]))
    q = stats["base_quantiles"]
    assert q.shape == (40, d)  # Q = min(257, N)
    assert torch.allclose(q[0], u.min(0).values, atol=1e-5) and torch.allclose(q[-1], u.max(0).values, atol=1e-5)
    # Kernel draws keep these same points (all 40: fewer than N_KERNEL_POINTS) and their spread.
    assert torch.allclose(stats["base_points"], u, atol=1e-5)
    assert torch.allclose(stats["base_spread"], u.std(0), atol=1e-5)
    gram = stats["macro_directions"] @ stats["macro_directions"].T
    assert torch.allclose(gram, torch.eye(8), atol=1e-5)
    assert bool((stats["macro_std"][:-1] >= stats["macro_std"][1:]).all())
    buf = io.BytesIO()
    torch.save({"latent_stats": stats}, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=True)["latent_stats"]
    for key, value in stats.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(back[key], value), key
        else:
            assert back[key] == value, key


def test_marginal_base_gives_noise_the_training_distribution_of_each_dimension() -> None:
    """Gaussian noise through ``marginal_base`` follows each dimension's own (skewed, shifted,
    bimodal) training distribution: Kolmogorov-Smirnov distance against the training values."""
    gen = torch.Generator().manual_seed(0)
    n = 4000
    u = torch.stack([
        -0.5 * torch.log(torch.rand(n, generator=gen)) - 0.3,             # exponential: skewed, off-centre
        0.4 * torch.randn(n, generator=gen) + 0.8,                      # narrow, shifted
        torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) + 0.1 * torch.randn(n, generator=gen),  # bimodal
    ], 1).double()
    table = base_quantiles(u)
    assert table.shape == (257, 3)
    eps = torch.randn(20000, 3, generator=gen, dtype=torch.float64)
    drawn = marginal_base(eps, table)
    for j in range(3):
        grid = torch.linspace(float(u[:, j].min()), float(u[:, j].max()), 400, dtype=torch.float64)
        cdf_train = (u[:, j, None] <= grid).double().mean(0)
        cdf_drawn = (drawn[:, j, None] <= grid).double().mean(0)
        assert float((cdf_train - cdf_drawn).abs().max()) < 0.03, j
    # Never outside what the training sounds span; eps = 0 is each dimension's median.
    assert bool((drawn >= table[0]).all() and (drawn <= table[-1]).all())
    assert torch.allclose(marginal_base(torch.zeros(1, 3, dtype=torch.float64), table)[0], u.median(0).values, atol=0.02)
    # Monotone in eps, so temperature still narrows a draw towards the median.
    ramp = torch.linspace(-4, 4, 101, dtype=torch.float64)[:, None].repeat(1, 3)
    assert bool((marginal_base(ramp, table).diff(dim=0) >= 0).all())
    # No table (an older checkpoint): the noise is the base point.
    assert torch.equal(marginal_base(eps, torch.zeros(0, 3, dtype=torch.float64)), eps)


def test_base_mixing_gives_draws_the_training_correlations() -> None:
    """Through ``base_mixing`` and ``marginal_base`` the draws correlate (in rank, the
    copula's own measure) as the training points do, while each dimension keeps its
    training distribution; independent training points give (nearly) independent draws."""
    gen = torch.Generator().manual_seed(2)
    n = 3000
    a = torch.randn(n, generator=gen, dtype=torch.float64)
    b = 0.8 * a + 0.6 * torch.randn(n, generator=gen, dtype=torch.float64)  # correlation 0.8
    u = torch.stack([a.exp(), b ** 3, torch.randn(n, generator=gen, dtype=torch.float64)], 1)  # monotone maps: ranks kept

    def rank_corr(x: torch.Tensor) -> torch.Tensor:
        return torch.corrcoef(x.argsort(0).argsort(0).double().t())

    table, mixing = base_quantiles(u), base_mixing(u)
    assert mixing.shape == (3, 3) and torch.equal(mixing, torch.tril(mixing))
    eps = torch.randn(20000, 3, generator=gen, dtype=torch.float64)
    drawn = marginal_base(eps, table, mixing)
    want, got = rank_corr(u), rank_corr(drawn)
    assert float(want[0, 1]) > 0.7
    assert float((got - want).abs().max()) < 0.05, (got, want)
    # Each dimension still follows its own training distribution (KS distance).
    for j in range(3):
        grid = torch.linspace(float(u[:, j].min()), float(u[:, j].max()), 400, dtype=torch.float64)
        ks = ((u[:, j, None] <= grid).double().mean(0) - (drawn[:, j, None] <= grid).double().mean(0)).abs().max()
        assert float(ks) < 0.03, j
    # Without mixing the same noise comes out independent.
    assert float(rank_corr(marginal_base(eps, table))[0, 1].abs()) < 0.05
    # Few points: the correlation shrinks towards the identity and stays factorisable.
    few = base_mixing(torch.randn(5, 16, generator=gen, dtype=torch.float64))
    assert bool(torch.isfinite(few).all()) and float((few @ few.t()).diagonal().sub(1).abs().max()) < 1e-9


def test_kernel_draws_centre_on_training_points_with_scaled_spread() -> None:
    """At temperature 0 every kernel draw is a training point; at T the draws' variance is
    the points' own plus (T * bandwidth * spread)^2 per dimension."""
    gen = torch.Generator().manual_seed(3)
    points = torch.randn(50, 4, generator=gen) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 1.0
    spread = points.std(0)
    exact = kernel_base(500, 0.0, torch.Generator().manual_seed(1), points, spread)
    assert bool(((exact[:, None] - points[None]).abs().amax(-1).min(1).values == 0).all())
    wide = kernel_base(40000, 0.5, torch.Generator().manual_seed(2), points, spread, bandwidth=1.0)
    want = points.var(0, unbiased=False) + (0.5 * spread) ** 2
    assert torch.allclose(wide.var(0), want, rtol=0.05)
    assert torch.allclose(wide.mean(0), points.mean(0), atol=0.05 * float(spread.max()))


def test_numpy_base_draw_of_the_host_equals_marginal_base() -> None:
    from flowshot.realtime.backends import LatentStats

    gen = torch.Generator().manual_seed(1)
    u = torch.randn(300, D, generator=gen).double() ** 3
    u[:, 1] += u[:, 0]  # correlated dimensions, so the mixing matters
    table, mixing = base_quantiles(u), base_mixing(u)
    stats = LatentStats.from_mapping({"base_quantiles": table, "base_mixing": mixing,
                                      "macro_directions": torch.zeros(0, D)}, D)
    for t in (0.0, 0.7, 1.0, 3.0):
        eps = t * torch.randn(D, generator=gen, dtype=torch.float64)
        want = marginal_base(eps[None], table, mixing)[0].numpy()
        assert np.allclose(stats.base_draw(eps.numpy()), want, atol=1e-9)
    assert np.array_equal(LatentStats.from_mapping({"macro_directions": torch.zeros(0, D)}, D).base_draw(np.ones(D)), np.ones(D))


def test_host_kernel_draw_is_kernel_point_with_the_same_default_bandwidth() -> None:
    """The host (which does not import torch) keeps its own copy of the default bandwidth
    for statistics written before it was stored, and the same formula."""
    from flowshot.model.latents import KERNEL_BANDWIDTH, kernel_point
    from flowshot.realtime.backends import _KERNEL_BANDWIDTH, LatentStats

    assert _KERNEL_BANDWIDTH == KERNEL_BANDWIDTH
    gen = torch.Generator().manual_seed(5)
    points = torch.randn(12, D, generator=gen, dtype=torch.float64)
    spread = points.std(0)
    stats = LatentStats.from_mapping({"base_points": points, "base_spread": spread,
                                      "macro_directions": torch.zeros(0, D)}, D)
    assert stats.kernel_bandwidth == KERNEL_BANDWIDTH
    rng = np.random.default_rng(9)
    got = stats.random_base(rng, 0.7)
    rng = np.random.default_rng(9)
    index = int(rng.integers(0, 12))
    eps = torch.from_numpy(rng.standard_normal(D))
    want = kernel_point(points, spread, torch.tensor([index]), eps[None], 0.7 * KERNEL_BANDWIDTH)[0]
    assert np.allclose(got, want.numpy(), atol=1e-12)
    # A spread that does not fit the points is no kernel: draws go through the table path.
    odd = LatentStats.from_mapping({"base_points": points, "base_spread": spread[:2],
                                    "macro_directions": torch.zeros(0, D)}, D)
    assert odd.base_points is None
