"""Discriminators for the adversarial stage.

Every discriminator family returns ``list[DiscOutput]``, one entry per sub-discriminator,
where ``DiscOutput = (logits, features)``: ``logits`` is the last layer's map (any shape
``[B, ...]``; the losses average over it) and ``features`` the intermediate activations
used for feature matching (the logits are not repeated there).

* ``MultiPeriodDiscriminator``: HiFi-GAN's idea: fold the waveform into ``[T/p, p]`` so
  2-D convs with ``(k, 1)`` kernels compare samples exactly ``p`` apart (periodic
  structure, e.g. the cycles of a tuned drum).
* ``MultiBandSpectralDiscriminator``: DAC's idea: complex STFT (real/imag as two input
  channels) at several resolutions, the frequency axis split into bands with separate conv
  stacks (low bands do not share weights with hat-range bands).
* ``MultiScaleDiscriminator``: MelGAN's 1-D convs on the waveform average-pooled 1x, 2x, 4x
  (optional; ``cfg.loss.use_msd``).

Widths are deliberately small: flowshot trains on CPUs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from flowshot.errors import FlowshotError
from flowshot.model.config import FlowshotConfig

DiscOutput = tuple[Tensor, list[Tensor]]

_SLOPE = 0.1  # LeakyReLU slope used throughout (HiFi-GAN / DAC value)

# DAC's band edges as fractions of the Nyquist bin: narrow low bands, wide high ones.
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


def _as_audio(x: Tensor) -> Tensor:
    """[B,T] or [B,1,T] -> [B,1,T]."""
    if x.dim() == 2:
        return x[:, None]
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"discriminators take mono audio [B,1,T], got shape {tuple(x.shape)}")
    return x


def _wn2d(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> nn.Module:
    pad = (kernel[0] // 2, kernel[1] // 2)  # "same" along each axis before striding
    return weight_norm(nn.Conv2d(cin, cout, kernel, stride, pad))


def _wn1d(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Module:
    return weight_norm(nn.Conv1d(cin, cout, kernel, stride, kernel // 2, groups=groups))


# --- multi-period -------------------------------------------------------------------------


class PeriodDiscriminator(nn.Module):
    """One period ``p`` of the multi-period discriminator.

    Args:
        period: fold length.
        channels: widths of the strided conv stack.
        kernel_size: kernel length along the folded time axis.
        stride: stride along the folded time axis for all but the last layer.
    """

    def __init__(self, period: int, channels: Sequence[int] = (16, 32, 64, 128), kernel_size: int = 5, stride: int = 3):
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = int(period)
        layers = []
        cin = 1
        for i, cout in enumerate(channels):
            s = stride if i < len(channels) - 1 else 1
            layers.append(_wn2d(cin, cout, (kernel_size, 1), (s, 1)))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.post = _wn2d(cin, 1, (3, 1))

    def fold(self, x: Tensor) -> Tensor:
        """[B,1,T] -> [B,1,ceil(T/p),p]; the tail is zero padded up to a multiple of p.

        Zero (not reflect) padding: one-shots end in a fade, and reflect padding would
        invent a fake piece of audio that the generator could never match.
        """
        t = x.shape[-1]
        rem = (-t) % self.period
        if rem:
            x = F.pad(x, (0, rem))
        return x.reshape(x.shape[0], 1, -1, self.period)

    def forward(self, x: Tensor) -> DiscOutput:
        """x [B,1,T] -> (logits [B,1,T',p], features)."""
        h = self.fold(_as_audio(x))
        feats: list[Tensor] = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), _SLOPE)
            feats.append(h)
        return self.post(h), feats


class MultiPeriodDiscriminator(nn.Module):
    """One ``PeriodDiscriminator`` per period (HiFi-GAN uses primes: 2, 3, 5, 7, 11).

    Args:
        periods: fold lengths.
        channels, kernel_size, stride: see ``PeriodDiscriminator``.
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: Sequence[int] = (16, 32, 64, 128),
        kernel_size: int = 5,
        stride: int = 3,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels, kernel_size, stride) for p in periods)

    def forward(self, x: Tensor) -> list[DiscOutput]:
        """x [B,1,T] -> one (logits, features) per period."""
        return [d(x) for d in self.discriminators]


# --- multi-band spectral ------------------------------------------------------------------


class BandSpectralDiscriminator(nn.Module):
    """One STFT resolution: per-band 2-D conv stacks over ``[B, 2, frames, bins]``.

    The band stacks stride along frequency only; their outputs are concatenated along the
    frequency axis and a final conv scores the whole spectrum.

    Args:
        fft_size: STFT size (hop ``fft_size // 4``, Hann window).
        channels: width of every conv in the band stacks.
        bands: band edges as fractions of the ``fft_size // 2 + 1`` bins.
        n_strided: number of frequency-strided (stride 2) layers per band.
    """

    def __init__(
        self,
        fft_size: int,
        channels: int = 16,
        bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
        n_strided: int = 3,
    ) -> None:
        super().__init__()
        self.fft_size = int(fft_size)
        n_bins = self.fft_size // 2 + 1
        edges = [(int(round(lo * n_bins)), int(round(hi * n_bins))) for lo, hi in bands]
        self.band_edges = [(lo, hi) for lo, hi in edges if hi > lo]  # tiny FFTs can empty a band
        if not self.band_edges:
            raise ValueError(f"fft_size {fft_size} leaves no frequency band")
        self.register_buffer("window", torch.hann_window(self.fft_size), persistent=False)

        def stack() -> nn.ModuleList:
            layers = [_wn2d(2, channels, (3, 9))]
            layers += [_wn2d(channels, channels, (3, 9), (1, 2)) for _ in range(n_strided)]
            layers.append(_wn2d(channels, channels, (3, 3)))
            return nn.ModuleList(layers)

        self.band_convs = nn.ModuleList(stack() for _ in self.band_edges)
        self.post = _wn2d(channels, 1, (3, 3))

    def spectrogram(self, x: Tensor) -> Tensor:
        """x [B,1,T] -> [B, 2, frames, bins] (real, imag), energy-normalised."""
        spec = torch.stft(
            x[:, 0],
            n_fft=self.fft_size,
            hop_length=self.fft_size // 4,
            window=self.window.to(x.dtype),
            center=True,
            pad_mode="constant",
            normalized=True,  # divides by sqrt(n): inputs of the same order at every size
            return_complex=True,
        )
        return torch.view_as_real(spec).permute(0, 3, 2, 1)

    def forward(self, x: Tensor) -> DiscOutput:
        """x [B,1,T] -> (logits [B,1,frames,F'], features)."""
        spec = self.spectrogram(_as_audio(x))
        feats: list[Tensor] = []
        outs: list[Tensor] = []
        for (lo, hi), convs in zip(self.band_edges, self.band_convs):
            h = spec[..., lo:hi]
            for conv in convs:
                h = F.leaky_relu(conv(h), _SLOPE)
                feats.append(h)
            outs.append(h)
        h = torch.cat(outs, dim=-1)
        return self.post(h), feats


class MultiBandSpectralDiscriminator(nn.Module):
    """One ``BandSpectralDiscriminator`` per FFT size.

    Args:
        fft_sizes: STFT sizes, e.g. ``[2048, 1024, 512]``.
        sample_rate: the audio rate; kept for the record (band edges are relative, so the
            same fractions of the spectrum are used at every rate).
        channels, bands: see ``BandSpectralDiscriminator``.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        sample_rate: int = 44100,
        channels: int = 16,
        bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
    ) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.discriminators = nn.ModuleList(BandSpectralDiscriminator(n, channels, bands) for n in fft_sizes)

    def forward(self, x: Tensor) -> list[DiscOutput]:
        """x [B,1,T] -> one (logits, features) per FFT size."""
        return [d(x) for d in self.discriminators]


# --- multi-scale (waveform) ---------------------------------------------------------------


class ScaleDiscriminator(nn.Module):
    """MelGAN-style 1-D conv stack with grouped, strided convs.

    Args:
        channels: widths; the strided layers use groups = width // 16 (at least 1).
    """

    def __init__(self, channels: Sequence[int] = (16, 64, 128, 128)) -> None:
        super().__init__()
        layers = [_wn1d(1, channels[0], 15)]
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers.append(_wn1d(cin, cout, 41, stride=4, groups=max(1, min(cin, cout) // 16)))
        layers.append(_wn1d(channels[-1], channels[-1], 5))
        self.convs = nn.ModuleList(layers)
        self.post = _wn1d(channels[-1], 1, 3)

    def forward(self, x: Tensor) -> DiscOutput:
        """x [B,1,T] -> (logits [B,1,T'], features)."""
        h = _as_audio(x)
        feats: list[Tensor] = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), _SLOPE)
            feats.append(h)
        return self.post(h), feats


class MultiScaleDiscriminator(nn.Module):
    """``ScaleDiscriminator``s on the waveform average-pooled by 1, 2, 4, ...

    Args:
        n_scales: number of scales (each halves the rate of the previous one).
        channels: see ``ScaleDiscriminator``.
    """

    def __init__(self, n_scales: int = 3, channels: Sequence[int] = (16, 64, 128, 128)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels) for _ in range(n_scales))

    def forward(self, x: Tensor) -> list[DiscOutput]:
        """x [B,1,T] -> one (logits, features) per scale."""
        h = _as_audio(x)
        outs: list[DiscOutput] = []
        for i, d in enumerate(self.discriminators):
            if i:
                h = F.avg_pool1d(h, 4, 2, padding=1, count_include_pad=False)
            outs.append(d(h))
        return outs


# --- all of them --------------------------------------------------------------------------


class Discriminators(nn.Module):
    """The discriminators enabled in ``cfg.loss``, as one flat list of outputs.

    ``use_mpd`` -> ``MultiPeriodDiscriminator(cfg.loss.mpd_periods)``, ``use_mrd`` ->
    ``MultiBandSpectralDiscriminator(cfg.loss.mrd_fft_sizes, cfg.audio.sample_rate)``,
    ``use_msd`` -> ``MultiScaleDiscriminator()``. With none enabled the output list is
    empty (and the adversarial losses refuse it).
    """

    def __init__(self, cfg: FlowshotConfig) -> None:
        super().__init__()
        loss = cfg.loss
        self.families = nn.ModuleDict()
        if loss.use_mpd:
            self.families["mpd"] = MultiPeriodDiscriminator(loss.mpd_periods)
        if loss.use_mrd:
            too_long = [n for n in loss.mrd_fft_sizes if n > cfg.audio.length]
            if too_long:
                raise FlowshotError(
                    f"loss.mrd_fft_sizes {too_long} exceed audio.length {cfg.audio.length}: "
                    "use FFT sizes up to the example length (e.g. --set loss.mrd_fft_sizes=[...])"
                )
            self.families["mrd"] = MultiBandSpectralDiscriminator(loss.mrd_fft_sizes, cfg.audio.sample_rate)
        if loss.use_msd:
            self.families["msd"] = MultiScaleDiscriminator()

    def forward(self, x: Tensor) -> list[DiscOutput]:
        """x [B,1,T] -> flat list of (logits, features), MPD first, then MRD, then MSD."""
        outs: list[DiscOutput] = []
        for family in self.families.values():
            outs.extend(family(x))
        return outs
