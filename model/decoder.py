"""Decoder: one latent vector -> PQMF sub-bands of the whole one-shot.

A linear layer unfolds z into ``length / hop`` frames of ``C0`` channels; each stage
up-samples by its ratio r (linear interpolation and a conv, ``InterpUpsample``, or in
older checkpoints a transposed convolution in polyphase form, ``Upsample``),
adds a projection of z (global conditioning) and refines with dilated residual units. A last convolution makes, per sub-band, three
signals at the sub-band rate:

* ``wave``: the deterministic part, linear (no tanh) so the level is learned;
* ``amp``: its amplitude, through ``mod_sigmoid`` (RAVE): one-shots are mostly attack
  and decay, and a multiplicative envelope reaches true silence in the tail, which an
  additive conv stack only approximates (it leaves a static floor);
* ``noise``: the gain of a fixed white-noise signal in that band. Hats, snares and
  cymbals are mostly noise, which a deterministic conv stack trained on spectral
  magnitudes renders as buzzy, tonal static. The noise is a stored buffer (seed 0),
  not drawn per call, so decoding stays a pure function of z: a hit rendered by nn~,
  by the real-time host and by ``flowshot generate`` is the same sound.

    sub-band = wave * mod_sigmoid(amp) + noise_buffer * mod_sigmoid(noise)

The lowest sub-band then goes through a fixed DC blocker when ``highpass_hz`` is set. The
STFT loss's small FFT sizes cannot tell 0 Hz from a kick's 50 Hz (both fall in bin 0), and
decoders trained without it put a slow offset under their envelopes, 60 dB above the
data's below 20 Hz (docs/evaluation.md).

Cost: a stage costs about ``2 * C^2 * K * T`` FLOPs per conv; the stages near the
output run at the sub-band rate, so the presets keep their channels small there.
"""

import math
from typing import List

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.config import FlowshotConfig
from flowshot.model.layers import InterpUpsample, ResidualUnit, Snake, Upsample, scriptable_copy, wn_conv1d


def mod_sigmoid(x: Tensor) -> Tensor:
    """RAVE's amplitude non-linearity: 2 sigmoid(x)^2.3 + 1e-7, in (0, 2], steep toward 0.

    Computed as exp(2.3 logsigmoid(x)): the same function, a third faster on CPU than
    ``pow`` with a fractional exponent, and stable where sigmoid underflows.
    """
    return 2.0 * torch.exp(2.3 * F.logsigmoid(x)) + 1e-7


class Decoder(nn.Module):
    """Latent -> sub-bands.

    Args:
        cfg: the model configuration (``cfg.model.dec_channels()``, ``ratios`` used in
            reverse, ``upsample``, ``dec_dilations()``, ``kernel_size``, ``out_kernel``, ``pqmf_bands``, ``latent_dim``,
            ``noise``, ``cfg.audio.length``).

    ``forward(z[B,D]) -> [B, bands, (L + P) // bands]`` where ``P = decoder_preroll * hop``
    samples come before the sound (``FlowVAE.decode`` cuts them after synthesis).
    """

    def __init__(self, cfg: FlowshotConfig) -> None:
        super().__init__()
        m = cfg.model
        ch: List[int] = m.dec_channels()
        if len(ch) != len(m.ratios) + 1:
            raise ValueError(f"model.decoder_channels needs {len(m.ratios) + 1} entries (bottleneck first), got {ch}")
        self.channels = int(ch[0])
        self.bands = int(m.pqmf_bands)
        self.frames = cfg.audio.length // m.hop + int(m.decoder_preroll)
        self.use_noise = bool(m.noise)
        self.project = nn.Linear(m.latent_dim, ch[0] * self.frames)
        ups: List[nn.Module] = []
        conds: List[nn.Module] = []
        stages: List[nn.Module] = []
        upsample = InterpUpsample if m.upsample == "linear" else Upsample
        for i, r in enumerate(reversed(m.ratios)):
            ups.append(nn.Sequential(Snake(ch[i]), upsample(ch[i], ch[i + 1], r)))
            # WaveNet-style global conditioning: z is added to every stage, not only
            # unfolded at the input. With one latent per sound the deep, fast stages
            # otherwise hear z only through the slow ones, the reconstruction barely
            # depends on it, and the posterior drifts towards the prior (all hits alike).
            conds.append(nn.Linear(m.latent_dim, ch[i + 1]))
            stages.append(nn.Sequential(*[ResidualUnit(ch[i + 1], d, m.kernel_size) for d in m.dec_dilations()]))
        self.ups = nn.ModuleList(ups)
        self.conds = nn.ModuleList(conds)
        self.stages = nn.ModuleList(stages)
        self.final_act = Snake(ch[-1])
        outputs = (3 if self.use_noise else 2) * self.bands
        self.out = wn_conv1d(ch[-1], outputs, m.out_kernel, padding=m.out_kernel // 2)
        with torch.no_grad():
            # Noise starts ~55 dB down: the model turns it up where the data is noisy,
            # rather than having to learn silence out of a hiss.
            self.out.bias[2 * self.bands:] = -4.0
        self.highpass_taps = 0
        if m.highpass_hz > 0:
            # One-pole DC blocker (1 - z^-1) / (1 - R z^-1) at the sub-band rate, as a causal
            # FIR of its impulse response cut where R^n < 1e-4; h[0] takes up the cut tail
            # so the taps sum to 0 (no DC at all).
            rate = cfg.audio.sample_rate / m.pqmf_bands
            pole = math.exp(-2 * math.pi * m.highpass_hz / rate)
            taps = max(2, int(math.ceil(math.log(1e-4) / math.log(pole))) + 1)
            h = torch.tensor([(pole - 1) * pole ** (n - 1) for n in range(1, taps)], dtype=torch.float64)
            h = torch.cat([-h.sum().reshape(1), h])
            self.highpass_taps = taps
            # conv1d correlates: the kernel is the impulse response reversed. Not saved:
            # the config rebuilds it.
            self.register_buffer("highpass", h.flip(0).reshape(1, 1, taps).float(), persistent=False)
        else:
            self.register_buffer("highpass", torch.zeros(1, 1, 0), persistent=False)
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(1, self.bands, self.frames * m.hop // self.bands, generator=generator)
        # Part of the state dict, so an exported file carries the very same noise.
        self.register_buffer("noise_buffer", noise if self.use_noise else noise[:, :, :0])

    def forward(self, z: Tensor) -> Tensor:
        """[B,D] -> [B, bands, (L + P)//bands]."""
        h = self.project(z).reshape(z.shape[0], self.channels, self.frames)
        for up, cond, stage in zip(self.ups, self.conds, self.stages):
            h = stage(up(h) + cond(z).unsqueeze(-1))
        h = self.out(self.final_act(h))
        wave = h[:, : self.bands]
        amp = h[:, self.bands: 2 * self.bands]
        y = wave * mod_sigmoid(amp)
        if self.use_noise:
            y = y + self.noise_buffer * mod_sigmoid(h[:, 2 * self.bands:])
        if self.highpass_taps > 0:
            # Sub-band 0 is the output's own 0 to sample_rate / (2 bands) Hz, not mirrored.
            low = F.conv1d(F.pad(y[:, :1], (self.highpass_taps - 1, 0)), self.highpass)
            y = torch.cat([low, y[:, 1:]], dim=1)
        return y

    def __prepare_scriptable__(self) -> nn.Module:
        return scriptable_copy(self)
