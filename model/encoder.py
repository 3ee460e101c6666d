"""Encoder: PQMF sub-bands -> one Gaussian posterior (mean, logvar) and a context vector.

Strided residual stages bring the sub-bands down to ``length / hop`` bottleneck frames,
then global pooling turns the frames into one vector per sound: the time mean plus a
few attention-pooling heads. Each head has a learned bias per frame position, so a
head can learn to listen to the attack or to the tail: one-shots all start at their
onset, and where in time energy sits is part of the sound.
"""

from typing import Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.config import FlowshotConfig
from flowshot.model.layers import ResidualUnit, Snake, scriptable_copy, wn_conv1d

# log-variance is soft-clamped into this range: exp(-12/2) = 0.0025 is as sharp as a
# posterior needs to be for audio, and std > exp(2) would only add noise.
LOGVAR_MIN = -12.0
LOGVAR_MAX = 4.0
INITIAL_LOGVAR = -6.0


def mu_law(x: Tensor, mu: float = 255.0) -> Tensor:
    """Signed log compression ``sign(x) log(1 + mu|x|) / log(1 + mu)``, [-1, 1] -> [-1, 1].

    Sub-band signals of a one-shot sit around 0.01-0.05 RMS, where snake is all but
    linear; the time-mean of a linear map of a waveform is ~0, so without this every
    sound but the loudest kicks pooled to the same vector (measured: posterior means 0.002
    apart at initialisation, and still identical for 7 of 8 sounds after training).
    Compressed, a decay 60 dB down is still a tenth of full scale: the encoder hears tails.
    """
    return torch.sign(x) * torch.log1p(mu * x.abs()) / 5.545177444479562  # log(256)


def soft_clamp(x: Tensor, low: float, high: float) -> Tensor:
    """Smooth clamp into (low, high): ~identity near the middle, gradient never exactly 0."""
    mid = 0.5 * (low + high)
    half = 0.5 * (high - low)
    return mid + half * torch.tanh((x - mid) / half)


class Encoder(nn.Module):
    """Sub-bands -> posterior parameters.

    Args:
        cfg: the model configuration (``cfg.model.channels``, ``ratios``, ``dilations``,
            ``kernel_size``, ``pqmf_bands``, ``latent_dim``, ``context_dim``,
            ``cfg.audio.length``).

    ``forward(x[B, bands, L // bands]) -> (mean[B,D], logvar[B,D], context[B,context_dim])``.
    """

    heads: int

    def __init__(self, cfg: FlowshotConfig, heads: int = 4) -> None:
        super().__init__()
        m = cfg.model
        ch = list(m.channels)
        self.latent_dim = int(m.latent_dim)
        self.context_dim = int(m.context_dim)
        self.frames = cfg.audio.length // m.hop
        self.heads = int(heads)
        self.logvar_min = LOGVAR_MIN
        self.logvar_max = LOGVAR_MAX
        layers = [wn_conv1d(m.pqmf_bands, ch[0], 7, padding=3)]
        for i, r in enumerate(m.ratios):
            layers += [ResidualUnit(ch[i], d, m.kernel_size) for d in m.dilations]
            layers += [Snake(ch[i]), wn_conv1d(ch[i], ch[i + 1], 2 * r, stride=r, padding=(r + 1) // 2)]
        layers.append(Snake(ch[-1]))
        self.net = nn.Sequential(*layers)
        c = ch[-1]
        self.attention = wn_conv1d(c, self.heads, 1)
        self.position_bias = nn.Parameter(torch.zeros(1, self.heads, self.frames))
        pooled = c * (1 + self.heads)
        # Identity when off, so checkpoints from before the option load unchanged.
        self.norm = nn.LayerNorm(pooled) if m.encoder_norm else nn.Identity()
        self.head = nn.Sequential(
            nn.Linear(pooled, c),
            nn.SiLU(),
            nn.Linear(c, 2 * self.latent_dim + self.context_dim),
        )
        with torch.no_grad():
            # Start nearly deterministic (posterior std ~0.05): with unit noise on a
            # near-zero mean the decoder first learns that z carries nothing and then
            # ignores it for thousands of steps; the KL warm-up widens the posterior later.
            self.head[-1].bias[self.latent_dim: 2 * self.latent_dim] = INITIAL_LOGVAR

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """[B, bands, L//bands] -> mean [B,D], logvar [B,D], context [B,context_dim]."""
        h = self.net(mu_law(x))  # [B, C, frames]
        weights = torch.softmax(self.attention(h) + self.position_bias, dim=-1)  # [B, H, frames]
        attended = torch.einsum("bht,bct->bhc", weights, h).flatten(1)  # [B, H*C]
        pooled = torch.cat([h.mean(dim=-1), attended], dim=1)
        out = self.head(self.norm(pooled))
        mean = out[:, : self.latent_dim]
        logvar = soft_clamp(out[:, self.latent_dim: 2 * self.latent_dim], self.logvar_min, self.logvar_max)
        context = out[:, 2 * self.latent_dim:]
        return mean, logvar, context

    def __prepare_scriptable__(self) -> nn.Module:
        return scriptable_copy(self)
