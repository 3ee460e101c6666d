"""Decoder: one latent vector -> PQMF sub-bands of the whole one-shot.

A linear layer unfolds z into ``length / hop`` frames of ``C0`` channels; each stage
up-samples by its ratio r (linear interpolation and a conv, ``InterpUpsample``; a
band-limited interpolation and a conv, ``SincUpsample``; or a convolution in polyphase
form, ``Upsample``), adds a projection of z (global conditioning) and refines with dilated
residual units. A last convolution makes, per sub-band, three signals at the sub-band rate:

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

  With ``model.noise_splits`` = S > 1 the band's noise is cut into S equal slices of
  its spectrum (``split_noise``), each under its own gain, and the slices are summed:
  a one-gain band is flat over its whole width (689 Hz in `small`), which cannot
  follow a hat's or a cymbal's spectrum where it rises or falls steeply.

When the model plays (eval mode), ``signal_highpass_hz`` high-passes the upper sub-bands'
``wave`` signal before its envelope (``without_slow_part``): a slow offset there, shaped by the
envelope, comes out as a tone on a band edge under every hit (the band-edge ring), and
taken out before the envelope the edge keeps the rest of its content (docs/evaluation.md).
With ``envelope_smooth`` = W > 1 the upper envelopes are averaged over W sub-band samples,
in training too (``smooth``): whatever a signal and its envelope share at one frequency (an
up-sampler's ripple, a voice's harmonics) also multiplies onto the band edge, and an
envelope has no need to be that fast (off in the presets: on words one seed in two lost by it;
docs/evaluation.md).

The lowest sub-band then goes through a fixed high-pass when ``highpass_hz`` is set: in
the presets only outside training (``highpass_in_training`` False). Decoders put a slow
offset under their envelopes, which the STFT loss pays them for; trained behind the filter
they moved it just above the cut-off and scored worse, while the same filter on the
finished model removes it at no measurable cost (docs/evaluation.md).

Cost: a stage costs about ``2 * C^2 * K * T`` FLOPs per conv; the stages near the
output run at the sub-band rate, so the presets keep their channels small there.
"""

import math
from typing import List, Tuple

import numpy as np
import torch
from scipy import signal
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.config import FlowshotConfig
from flowshot.model.layers import (InterpUpsample, ResidualUnit, SincUpsample, Snake, Upsample, scriptable_copy,
                                   wn_conv1d)


def mod_sigmoid(x: Tensor) -> Tensor:
    """RAVE's amplitude non-linearity: 2 sigmoid(x)^2.3 + 1e-7, in (0, 2], steep toward 0.

    Computed as exp(2.3 logsigmoid(x)): the same function, a third faster on CPU than
    ``pow`` with a fractional exponent, and stable where sigmoid underflows.
    """
    return 2.0 * torch.exp(2.3 * F.logsigmoid(x)) + 1e-7


def highpass_response(cutoff_hz: float, rate: float, order: int) -> Tensor:
    """Impulse response of the lowest sub-band's fixed high-pass, as a causal FIR.

    Order 1 is the one-pole DC blocker ``(1 - z^-1) / (1 - R z^-1)``; higher orders are
    Butterworth high-passes. A one-pole filter only takes 7 to 12 dB off 5 to 10 Hz, and a
    decoder trained behind one moved its offset there (docs/evaluation.md); the fourth
    order takes 35 dB off 5 to 10 Hz at a 25 Hz cut-off and 0.2 dB off 40 Hz. The response
    is cut where its tail stays under a small fraction of its peak (1e-4 for the one-pole,
    1e-3 for Butterworth), and the first tap takes up what the cut removed, so the taps
    sum to exactly 0: nothing at 0 Hz.

    Args:
        cutoff_hz: -3 dB frequency. rate: the sub-band sample rate. order: 1 to 8.
    Returns:
        float64 ``[taps]``.
    """
    if order == 1:
        pole = math.exp(-2 * math.pi * cutoff_hz / rate)
        taps = max(2, int(math.ceil(math.log(1e-4) / math.log(pole))) + 1)
        h = torch.tensor([0.0] + [(pole - 1) * pole ** (n - 1) for n in range(1, taps)], dtype=torch.float64)
    else:
        sos = signal.butter(order, cutoff_hz, btype="highpass", fs=rate, output="sos")
        impulse = np.zeros(int(rate * 40 / cutoff_hz) + 1)  # 40 periods of the cut-off: far past 1e-4
        impulse[0] = 1.0
        full = signal.sosfilt(sos, impulse)
        # Cut at 1e-3 of the peak, not 1e-4: 173 taps instead of 287 for `base`, whose
        # render budget is 5 ms (the conv costs ~1.2 us per tap there), and still 35 to
        # 40 dB off 5 to 10 Hz, within 0.2 dB of the full response from 25 Hz up.
        above = np.flatnonzero(np.abs(full) >= 1e-3 * np.abs(full).max())
        h = torch.from_numpy(full[: above[-1] + 1].copy())
    h[0] = h[0] - h.sum()
    return h


def triangle(step: int) -> Tensor:
    """``[2 step - 1]``: 1/step, 2/step, ..., 1, ..., 1/step. Copies ``step`` apart sum to 1."""
    rise = torch.arange(1, step + 1, dtype=torch.float32)
    return torch.cat([rise, rise[:-1].flip(0)]) / step


def slow_part_step(cutoff_hz: float, rate: float) -> int:
    """The decimation step that makes ``without_slow_part`` 3 dB down at ``cutoff_hz``:
    measured at ``f = 0.465 rate / step`` (within 0.3 dB at the sub-band rates of `tiny`,
    `small` and `base`)."""
    return max(2, round(0.465 * rate / cutoff_hz))


def slow_part(x: Tensor, kernel: Tensor, step: int) -> Tensor:
    """What is slower than about ``rate / step`` in each channel: ``x`` decimated by
    ``step`` under a triangle and interpolated back under the same triangle.

    A constant comes back exactly (both triangles' copies sum to 1), so ``x - slow_part``
    holds nothing at 0 Hz, and it costs two short strided convolutions where a
    Butterworth FIR of the same cut-off needs ~170 taps per sample at 2,756 Hz: +26 % on
    `base`'s onnxruntime render. The ends are extended with the first and last values:
    the signal does not start from silence (its envelope does), and zeros there would
    put a step under the attack, where the envelope is loudest.

    Args:
        x: ``[B, C, T]``. kernel: ``[C, 1, 2 step - 1]``, ``triangle(step)`` per channel.
    Returns:
        ``[B, C, T]``.
    """
    padded = F.pad(x, (step, 2 * step), mode="replicate")
    low = F.conv1d(padded, kernel / step, stride=step, groups=x.shape[1])
    # low[j] sits at padded sample j step + step - 1; the transposed conv puts it back at
    # that index, which is x's sample j step - 1: cut the padding's step.
    return F.conv_transpose1d(low, kernel, stride=step, groups=x.shape[1])[..., step: step + x.shape[-1]]


def without_slow_part(x: Tensor, kernel: Tensor, step: int) -> Tensor:
    """``x`` high-passed: its ``slow_part`` taken out, then that of what is left.

    One pass leaves about ``1 - sinc(f step / rate)^4`` (a triangle is a boxcar twice,
    once down and once up): 25 dB down at a fifth of its cut-off. Twice, 37 dB there (the
    decimation's aliases keep it from the closed form's square; a fourth-order Butterworth:
    51), 0 dB from twice the cut-off up; once left a ring over +15 dB in 11 % of a
    built-in model's reconstructions, twice in 2 to 8 %. Shapes as ``slow_part``.
    """
    for _ in range(2):
        x = x - slow_part(x, kernel, step)
    return x


def smooth(x: Tensor, box: Tensor) -> Tensor:
    """Each channel of ``x`` [B, C, T] averaged over a centred window (``box`` [C, 1, W]:
    1/W each, or any taps that sum to 1); the ends extended with the first and last
    values. [B, C, T]."""
    width = box.shape[-1]
    padded = F.pad(x, (width // 2, width - 1 - width // 2), mode="replicate")
    return F.conv1d(padded, box, groups=x.shape[1])


def split_noise(noise: Tensor, splits: int) -> Tensor:
    """Cut white noise into ``splits`` equal slices of its spectrum (brick-wall, by FFT).

    The slices sum exactly to ``noise`` (up to rounding), so equal gains on all of them
    give the one-gain band back.

    Args:
        noise: ``[bands, T]``. splits: slices per band.
    Returns:
        ``[bands * splits, T]``, band-major: band b's slice s is row ``b * splits + s``,
        slice 0 the lowest frequencies of the sub-band signal (of the output's band
        too in even bands; PQMF mirrors the odd ones).
    """
    spectrum = torch.fft.rfft(noise.double(), dim=-1)
    bins = spectrum.shape[-1]
    edges = [round(i * bins / splits) for i in range(splits + 1)]
    slices = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = torch.zeros_like(spectrum)
        part[:, lo:hi] = spectrum[:, lo:hi]
        slices.append(torch.fft.irfft(part, n=noise.shape[-1], dim=-1))
    return torch.stack(slices, dim=1).reshape(-1, noise.shape[-1]).to(noise.dtype)


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
        self.noise_splits = int(m.noise_splits)
        self.project = nn.Linear(m.latent_dim, ch[0] * self.frames)
        ups: List[nn.Module] = []
        conds: List[nn.Module] = []
        stages: List[nn.Module] = []
        for i, (r, kind) in enumerate(zip(reversed(m.ratios), m.upsample_kinds())):
            if kind == "linear":
                upsample: nn.Module = InterpUpsample(ch[i], ch[i + 1], r)
            elif kind == "sinc":
                upsample = SincUpsample(ch[i], ch[i + 1], r)
            else:
                upsample = Upsample(ch[i], ch[i + 1], r, balanced=kind == "balanced")
            ups.append(nn.Sequential(Snake(ch[i]), upsample))
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
        outputs = (2 + (self.noise_splits if self.use_noise else 0)) * self.bands
        self.out = wn_conv1d(ch[-1], outputs, m.out_kernel, padding=m.out_kernel // 2)
        with torch.no_grad():
            # Noise starts far down (mod_sigmoid(-4): -74 dB): the model is meant to turn it
            # up where the data is noisy rather than learn silence out of a hiss. Some runs
            # never do; started at -30 dB it drowned every partial (docs/evaluation.md).
            self.out.bias[2 * self.bands:] = float(m.noise_init_bias)
        self.highpass_taps = 0
        self.highpass_bands = int(m.highpass_bands)
        self.highpass_in_training = bool(m.highpass_in_training)
        # First sub-band whose deterministic part loses its offset (bands = none): its time
        # mean, or with mean_by_envelope its part along its own envelope, which leaves
        # silent stretches silent where a flat mean would come back as a steady floor.
        self.zero_mean_from = {"none": self.bands, "upper": 1, "all": 0}[m.wave_zero_mean]
        self.mean_by_envelope = m.wave_mean_shape == "envelope"
        if m.highpass_hz > 0:
            h = highpass_response(m.highpass_hz, cfg.audio.sample_rate / m.pqmf_bands, m.highpass_order)
            self.highpass_taps = len(h)
            # conv1d correlates: the kernel is the impulse response reversed. Not saved:
            # the config rebuilds it.
            kernel = h.flip(0).reshape(1, 1, -1).float().repeat(self.highpass_bands, 1, 1)
            self.register_buffer("highpass", kernel, persistent=False)
        else:
            self.register_buffer("highpass", torch.zeros(self.highpass_bands, 1, 0), persistent=False)
        # The upper sub-bands' signal high-pass (``without_slow_part``), its step set by
        # its cut-off.
        self.signal_step = 0
        kernel = torch.zeros(max(self.bands - 1, 1), 1, 0)
        if m.signal_highpass_hz > 0 and self.bands > 1:
            self.signal_step = slow_part_step(m.signal_highpass_hz, cfg.audio.sample_rate / m.pqmf_bands)
            kernel = triangle(self.signal_step).reshape(1, 1, -1).repeat(self.bands - 1, 1, 1)
        self.register_buffer("signal_triangle", kernel, persistent=False)
        # The upper sub-bands' envelope boxcar (``model.envelope_smooth``); positive taps
        # keep an envelope non-negative, so a tail still reaches silence.
        self.envelope_width = m.envelope_smooth if self.bands > 1 else 1
        box = torch.full((max(self.bands - 1, 1), 1, self.envelope_width), 1.0 / self.envelope_width)
        self.register_buffer("envelope_box", box if self.envelope_width > 1 else box[..., :0], persistent=False)
        # Scale of the upper sub-bands' deterministic part while training
        # (``train.wave_fade_in_steps``); not saved, so every loaded model plays it in full.
        self.upper_wave_gain = 1.0
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(1, self.bands, self.frames * m.hop // self.bands, generator=generator)
        if self.noise_splits > 1:
            noise = split_noise(noise[0], self.noise_splits).unsqueeze(0)
        # Part of the state dict, so an exported file carries the very same noise.
        self.register_buffer("noise_buffer", noise if self.use_noise else noise[:, :, :0])

    def heads(self, z: Tensor) -> Tensor:
        """[B,D] -> [B, (2 + S) x bands, (L + P)//bands]: the last convolution's outputs,
        per sub-band the deterministic signal, its amplitude and (with noise) the S =
        ``noise_splits`` noise gains (band-major), all before their non-linearities."""
        h = self.project(z).reshape(z.shape[0], self.channels, self.frames)
        for up, cond, stage in zip(self.ups, self.conds, self.stages):
            h = stage(up(h) + cond(z).unsqueeze(-1))
        return self.out(self.final_act(h))

    def signal_and_envelope(self, h: Tensor) -> Tuple[Tensor, Tensor]:
        """The heads [B, (2 + S) x bands, T] -> the deterministic part's signal and its
        envelope, each [B, bands, T], as they multiply: the upper signals high-passed
        when playing (``signal_highpass_hz``), the upper envelopes smoothed
        (``envelope_smooth``)."""
        envelope = mod_sigmoid(h[:, self.bands: 2 * self.bands])
        if self.envelope_width > 1:
            envelope = torch.cat([envelope[:, :1], smooth(envelope[:, 1:], self.envelope_box)], dim=1)
        signal = h[:, : self.bands]
        if self.signal_step > 0 and not self.training:
            upper = without_slow_part(signal[:, 1:], self.signal_triangle, self.signal_step)
            signal = torch.cat([signal[:, :1], upper], dim=1)
        return signal, envelope

    def parts(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """[B,D] -> (deterministic part, noise part), each [B, bands, (L + P)//bands],
        before the high-pass; the noise part is zeros without ``model.noise``."""
        h = self.heads(z)
        signal, envelope = self.signal_and_envelope(h)
        wave = signal * envelope
        if self.training and self.upper_wave_gain < 1.0:
            wave = torch.cat([wave[:, :1], wave[:, 1:] * self.upper_wave_gain], dim=1)
        if self.zero_mean_from < self.bands:
            k = self.zero_mean_from
            upper = wave[:, k:]
            if self.mean_by_envelope:
                shape = envelope[:, k:]
                offset = (upper * shape).sum(-1, keepdim=True) / shape.square().sum(-1, keepdim=True).clamp_min(1e-20)
                upper = upper - offset * shape
            else:
                upper = upper - upper.mean(dim=-1, keepdim=True)
            wave = torch.cat([wave[:, :k], upper], dim=1)
        if self.use_noise:
            noise = self.noise_buffer * mod_sigmoid(h[:, 2 * self.bands:])
            if self.noise_splits > 1:
                noise = noise.reshape(h.shape[0], self.bands, self.noise_splits, -1).sum(2)
            return wave, noise
        return wave, torch.zeros_like(wave)

    def noise_part_db(self, z: Tensor) -> Tensor:
        """[B,D] -> [B, bands + 1]: per sound, the noise part's energy against the
        deterministic part's, dB, in each sub-band and (last column) over all of them.

        Below about -40 dB the noise branch is unused: its gains start at -74 dB and rise
        only where the deterministic part leaves the loss something to gain, so whether
        the branch lives is decided in training, and this is how a run shows it.
        """
        wave, noise = self.parts(z)
        return self.part_ratio_db(wave, noise)

    @staticmethod
    def part_ratio_db(wave: Tensor, noise: Tensor) -> Tensor:
        """``noise_part_db`` from parts already made (``parts(z)``)."""
        we, ne = wave.square().sum(-1), noise.square().sum(-1)
        we = torch.cat([we, we.sum(-1, keepdim=True)], dim=-1).clamp_min(1e-20)
        ne = torch.cat([ne, ne.sum(-1, keepdim=True)], dim=-1).clamp_min(1e-20)
        return 10 * torch.log10(ne / we)

    def forward(self, z: Tensor) -> Tensor:
        """[B,D] -> [B, bands, (L + P)//bands]."""
        wave, noise = self.parts(z)
        return self.mix(wave, noise)

    def mix(self, wave: Tensor, noise: Tensor) -> Tensor:
        """The two parts of ``parts`` -> sub-bands: their sum, then the high-pass.
        Training calls it itself, to keep the deterministic part for its own loss."""
        y = wave + noise if self.use_noise else wave
        if self.highpass_taps > 0 and (self.highpass_in_training or not self.training):
            # Sub-band 0 is the output's own 0 to sample_rate / (2 bands) Hz, not mirrored;
            # in the others the filter takes a notch out around a band edge.
            k = self.highpass_bands
            low = F.conv1d(F.pad(y[:, :k], (self.highpass_taps - 1, 0)), self.highpass, groups=k)
            y = torch.cat([low, y[:, k:]], dim=1)
        return y

    def __prepare_scriptable__(self) -> nn.Module:
        return scriptable_copy(self)
