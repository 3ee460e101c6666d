"""The counter-based generator of the nn~ export: the same (key, counter) gives the same
draw anywhere, and its values have the distributions the sampling relies on."""

import numpy as np
import torch
from scipy import stats

from flowshot.export.rng import gaussian, uniform_index


def test_uniform_index_is_deterministic_in_range_and_uniform() -> None:
    keys = torch.full((20000,), 7, dtype=torch.long)
    counters = torch.arange(20000, dtype=torch.long)
    idx = uniform_index(keys, counters, 37)
    assert torch.equal(idx, uniform_index(keys, counters, 37))
    assert int(idx.min()) == 0 and int(idx.max()) == 36
    counts = np.bincount(idx.numpy(), minlength=37)
    assert stats.chisquare(counts).pvalue > 1e-3  # 36 degrees of freedom: uniform
    assert not torch.equal(idx, uniform_index(keys + 1, counters, 37))  # the key matters
    assert int(uniform_index(keys[:5], counters[:5], 1).abs().sum()) == 0


def test_uniform_index_is_independent_of_the_gaussian_of_the_same_pair() -> None:
    """A kernel draw takes both from one (key, counter): the point picked must not predict
    its noise (a shared hash would tie them)."""
    keys = torch.full((20000,), 3, dtype=torch.long)
    counters = torch.arange(20000, dtype=torch.long)
    idx = uniform_index(keys, counters, 2).double()
    eps = gaussian(keys, counters, 4).double()
    for j in range(4):
        r = float(np.corrcoef(idx.numpy(), eps[:, j].numpy())[0, 1])
        assert abs(r) < 4 / np.sqrt(20000), (j, r)
    assert stats.kstest(eps[:, 0].numpy(), "norm").pvalue > 1e-3
