"""Decoder: one latent vector -> PQMF sub-bands of the whole one-shot.

A linear layer unfolds z into ``length / hop`` frames of ``C0`` channels; each stage
up-samples by its ratio r (a transposed convolution in polyphase form, ``Upsample``) and refines with dilated
residual units; a last convolution projects to the sub-bands. The output is linear (no
tanh), so the level of a one-shot is learned, not squashed.

Cost: a stage costs about ``2 * C^2 * K * T`` FLOPs per conv; the stages near the
output run at the sub-band rate, so the presets keep their channels small there.
"""

from typing import List

import torch
from torch import Tensor, nn

from flowshot.model.config import FlowshotConfig
from flowshot.model.layers import ResidualUnit, Snake, Upsample, scriptable_copy, wn_conv1d


class Decoder(nn.Module):
    """Latent -> sub-bands.

    Args:
        cfg: the model configuration (``cfg.model.dec_channels()``, ``ratios`` used in
            reverse, ``dilations``, ``kernel_size``, ``pqmf_bands``, ``latent_dim``,
            ``cfg.audio.length``).

    ``forward(z[B,D]) -> [B, bands, L // bands]``.
    """

    def __init__(self, cfg: FlowshotConfig) -> None:
        super().__init__()
        m = cfg.model
        ch: List[int] = m.dec_channels()
        if len(ch) != len(m.ratios) + 1:
            raise ValueError(f"model.decoder_channels needs {len(m.ratios) + 1} entries (bottleneck first), got {ch}")
        self.channels = int(ch[0])
        self.frames = cfg.audio.length // m.hop
        self.project = nn.Linear(m.latent_dim, ch[0] * self.frames)
        layers: List[nn.Module] = []
        for i, r in enumerate(reversed(m.ratios)):
            layers += [
                Snake(ch[i]),
                Upsample(ch[i], ch[i + 1], r),
            ]
            layers += [ResidualUnit(ch[i + 1], d, m.kernel_size) for d in m.dilations]
        layers += [Snake(ch[-1]), wn_conv1d(ch[-1], m.pqmf_bands, 7, padding=3)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """[B,D] -> [B, bands, L//bands]."""
        h = self.project(z).reshape(z.shape[0], self.channels, self.frames)
        return self.net(h)

    def __prepare_scriptable__(self) -> nn.Module:
        return scriptable_copy(self)
