"""A counter-based Gaussian generator in plain tensor ops (TorchScript- and batch-friendly).

``torch.Generator`` cannot live inside a scripted module, and a hit must be reproducible
from ``(key, counter)`` alone: the same seed gives the same latent on every machine and in
every process. Each value is a 32-bit integer hash of (key, counter, index), turned into
uniforms and then Gaussians by Box-Muller. Integer products are split into 16-bit halves
so nothing overflows int64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor



def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), without int64 overflow."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & 0xFFFFFFFF


def hash32(x: Tensor) -> Tensor:
    """A well-mixing 32-bit integer hash (xorshift-multiply rounds), int64 tensor in and out."""
    x = x & 0xFFFFFFFF
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    x = x ^ (x >> 16)
    return x


def gaussian(keys: Tensor, counters: Tensor, dim: int) -> Tensor:
    """Standard normal draws, one row per (key, counter) pair.

    Args:
        keys: ``[H]`` int64 (e.g. the seed).
        counters: ``[H]`` int64 (e.g. the hit number).
        dim: values per row.
    Returns:
        ``[H, dim]`` float32, deterministic in (key, counter).
    """
    base = hash32(hash32(keys ^ 0x2545F491) ^ (counters & 0xFFFFFFFF))
    idx = torch.arange(2 * dim, dtype=torch.long, device=keys.device)
    bits = hash32(base.unsqueeze(1) ^ hash32(idx + 0x68E31DA4).unsqueeze(0))
    # float64 keeps all 32 bits; the +0.5 keeps u strictly inside (0, 1) so log(u) is finite.
    u = (bits.to(torch.float64) + 0.5) / 4294967296.0
    u1 = u[:, :dim]
    u2 = u[:, dim:]
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.to(torch.float32)


def uniform_index(keys: Tensor, counters: Tensor, n: int) -> Tensor:
    """Uniform integers in ``[0, n)``, one per (key, counter) pair: which training sound a
    kernel draw starts from. Its own salt keeps it independent of ``gaussian``'s values for
    the same pair; the modulo's bias is below ``n / 2**32``.

    Args:
        keys, counters: ``[H]`` int64, as for ``gaussian``.
        n: how many choices (>= 1).
    Returns:
        ``[H]`` int64.
    """
    base = hash32(hash32(keys ^ 0x1B873593) ^ (counters & 0xFFFFFFFF))
    return hash32(base ^ 0x5BD1E995) % n
