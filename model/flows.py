"""Real NVP: a stack of affine coupling layers, optionally conditioned on a context vector.

Layer i views its input through a fixed permutation, keeps the first half ``a`` of
that view and maps the second half ``b -> b * exp(s) + t`` with ``(s, t) =
net_i(a, context)``, then puts the coordinates back in their original order.
Layer 0 keeps the order, odd layers reverse it (the classic alternating mask: with two
layers every dimension is transformed), later even layers use seeded random
permutations so that dimensions mix. ``s`` is soft-clamped to ``(-bound, bound)`` with
a tanh, so one step can never scale by more than ``exp(bound)``; the last layer of
every conditioner starts at zero, so an untrained flow is exactly the identity.

The conditioner weights of all layers are stacked into [depth, ...] tensors and the
layers run in a plain ``for i in range(...)`` loop: TorchScript cannot iterate an
``nn.ModuleList`` backwards, which the inverse needs.
"""

import math
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _permutations(dim: int, depth: int) -> Tensor:
    """[depth, dim] int64: identity, reverse, then seeded random permutations."""
    perms = []
    for i in range(depth):
        if i == 0:
            p = np.arange(dim)
        elif i % 2 == 1:
            p = np.arange(dim)[::-1].copy()
        else:
            # numpy's legacy RandomState stream is frozen across releases.
            p = np.random.RandomState(1000 + i).permutation(dim)
        perms.append(p)
    if not perms:
        return torch.zeros(0, dim, dtype=torch.long)
    return torch.tensor(np.stack(perms), dtype=torch.long)


class RealNVP(nn.Module):
    """Invertible map R^dim -> R^dim with a tractable log-determinant.

    Args:
        dim: size of the vectors (even or odd; the kept half is ``dim // 2``).
        depth: number of coupling layers (0 = identity).
        hidden: width of the two hidden layers of each conditioner MLP.
        context_dim: size of the conditioning vector (0 = unconditional).
        scale_bound: bound of the per-layer log-scale.
    """

    def __init__(self, dim: int, depth: int, hidden: int, context_dim: int = 0,
                 scale_bound: float = 2.0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.depth = int(depth)
        self.context_dim = int(context_dim)
        self.keep = self.dim // 2
        self.change = self.dim - self.keep
        self.scale_bound = float(scale_bound)
        n_in = self.keep + self.context_dim
        self.w1 = nn.Parameter(torch.empty(depth, hidden, n_in))
        self.b1 = nn.Parameter(torch.empty(depth, hidden))
        self.w2 = nn.Parameter(torch.empty(depth, hidden, hidden))
        self.b2 = nn.Parameter(torch.empty(depth, hidden))
        self.w3 = nn.Parameter(torch.zeros(depth, 2 * self.change, hidden))
        self.b3 = nn.Parameter(torch.zeros(depth, 2 * self.change))
        perm = _permutations(self.dim, self.depth)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm, dim=1) if depth else perm.clone())
        with torch.no_grad():
            # nn.Linear's default init, per layer.
            for w, b, fan_in in ((self.w1, self.b1, n_in), (self.w2, self.b2, hidden)):
                bound = 1.0 / math.sqrt(max(fan_in, 1))
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)

    def _scale_shift(self, i: int, a: Tensor, context: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Conditioner of layer i: kept half [B,keep] (+ context) -> log-scale, shift [B,change]."""
        h = a
        if self.context_dim > 0:
            if context is None:
                raise ValueError("this flow is conditional: pass a context [B, context_dim]")
            h = torch.cat([a, context], dim=1)
        h = F.silu(F.linear(h, self.w1[i], self.b1[i]))
        h = F.silu(F.linear(h, self.w2[i], self.b2[i]))
        st = F.linear(h, self.w3[i], self.b3[i])
        s = st[:, : self.change]
        t = st[:, self.change:]
        s = self.scale_bound * torch.tanh(s / self.scale_bound)
        return s, t

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """x [B,dim] (+ context [B,context_dim]) -> y [B,dim], log|det dy/dx| [B]."""
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(self.depth):
            x = torch.index_select(x, 1, self.perm[i])
            a = x[:, : self.keep]
            b = x[:, self.keep:]
            s, t = self._scale_shift(i, a, context)
            x = torch.cat([a, b * torch.exp(s) + t], dim=1)
            x = torch.index_select(x, 1, self.inv_perm[i])
            logdet = logdet + s.sum(dim=1)
        return x, logdet

    @torch.jit.export
    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """y [B,dim] (+ context) -> x [B,dim], log|det dx/dy| [B] (= -forward's logdet)."""
        logdet = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for j in range(self.depth):
            i = self.depth - 1 - j
            y = torch.index_select(y, 1, self.perm[i])
            a = y[:, : self.keep]
            b = y[:, self.keep:]
            s, t = self._scale_shift(i, a, context)
            y = torch.cat([a, (b - t) * torch.exp(-s)], dim=1)
            y = torch.index_select(y, 1, self.inv_perm[i])
            logdet = logdet - s.sum(dim=1)
        return y, logdet
