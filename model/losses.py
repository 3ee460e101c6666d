"""Reconstruction and adversarial losses.

* ``MultiScaleSTFTLoss``: spectral distance at several FFT sizes, on linear magnitudes
  (spectral convergence) and on log magnitudes. No mel: one-shots (hats, cymbals) keep
  much of their character above the range a mel scale resolves well.
* ``zero_phase_highpass``: what the log and band terms may be told not to hear.
* ``dc_distance``: the whole sound's mean (its 0 Hz component) against the target's.
* ``band_edge_distance``: the sub-bands' local means (the band edges) against the target's.
* ``discriminator_loss`` / ``generator_adv_loss``: least-squares GAN objectives.
* ``feature_matching_loss``: relative L1 between discriminator feature maps.

Discriminator outputs follow ``flowshot.model.discriminators.DiscOutput``:
``(logits, [feature maps])``, one tuple per sub-discriminator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.config import BODY_PITCH_MAX_HZ, OT_MIN_BINS, transport_bins

if TYPE_CHECKING:
    from flowshot.model.config import FlowshotConfig

DiscOutputs = Sequence[tuple[Tensor, Sequence[Tensor]]]


def _as_batch(x: Tensor) -> Tensor:
    """[B,1,T] or [B,T] -> [B,T]."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"expected mono audio [B,1,T], got shape {tuple(x.shape)}")
        return x[:, 0]
    if x.dim() == 2:
        return x
    raise ValueError(f"expected audio [B,1,T] or [B,T], got shape {tuple(x.shape)}")


def dc_distance(x: Tensor, y: Tensor, floor: float = 1e-3) -> Tensor:
    """``|mean(x) - mean(y)| / rms(y)`` per sound, averaged over the batch.

    The STFT terms barely see a DC offset: at FFT sizes up to 256 (hop 64 and less) bin 0
    spans 0 to 86 Hz or more, so an offset under the envelope fills the same bin as a
    kick's 50 Hz fundamental and, for those scales, passes for it. Trained decoders made
    exactly that trade: a decaying offset 40 to 80 dB above the data's below 10 Hz, the
    fundamental 15 to 25 dB short (docs/evaluation.md). The whole sound's mean is its 0 Hz
    component however the offset decays, and one-shots have next to none.

    Args:
        x: prediction [B,1,T] or [B,T]; y: target, same shape.
        floor: lower bound of the target RMS (scale-free, but finite for near-silence).
    Returns:
        a scalar.
    """
    x, y = _as_batch(x), _as_batch(y)
    rms = y.square().mean(dim=-1).sqrt().clamp_min(floor)
    return ((x.mean(dim=-1) - y.mean(dim=-1)).abs() / rms).mean()


def zero_phase_highpass(x: Tensor, cutoff_hz: float, sample_rate: float, order: int = 4) -> Tensor:
    """``x`` through a zero-phase high-pass with a Butterworth magnitude, by one FFT of the
    whole sound (zero-padded to twice its length, so nothing wraps around).

    Args:
        x: audio [B,T]. cutoff_hz: -3 dB frequency. sample_rate: of x. order: the slope is
            6 * order dB per octave below the cut-off.
    Returns:
        [B,T], same dtype.
    """
    n = 2 * x.shape[-1]
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate, device=x.device, dtype=x.dtype)
    # 1 / sqrt(1 + (fc / f)^2N): 0 at 0 Hz (fc / 0 = inf), and no inf / inf up high.
    gain = torch.rsqrt(1.0 + (cutoff_hz / freqs).pow(2 * order))
    return torch.fft.irfft(torch.fft.rfft(x, n=n) * gain, n=n)[..., : x.shape[-1]]


def low_band_wave_distance(x: Tensor, y: Tensor, cutoff_hz: float, sample_rate: float, samples: int,
                           floor: float = 1e-2, highpass_hz: float = 0.0) -> Tensor:
    """``mean|x_low - y_low| / mean|y_low|`` over the first ``samples`` of each sound, both
    low-passed at ``cutoff_hz`` (the complement of ``zero_phase_highpass``) and, when
    ``highpass_hz`` > 0, high-passed there, averaged over the batch.

    Magnitude losses cannot see how a kick's or tom's partials line up: trained decoders
    play their bodies as irregular waves that peak as high as the real sine over 2 to 4 dB
    less energy (docs/evaluation.md). Sounds are trimmed to their onset, so a body's
    waveform right after it is as determined as its spectrum; the window stays short
    because a small pitch error turns into a phase error that grows with time.

    Args:
        x: prediction [B,1,T] or [B,T]; y: target, same shape.
        floor: lower bound of the target's mean |y_low|: sounds with no body (hats) add
            about nothing.
        highpass_hz: the term hears nothing below this (0 = down to 0 Hz). A waveform
            distance that reaches 0 Hz pays the decoder for an offset or a slow swell under
            a body it cannot place; both runs with the low-passed term grew rumble.
    Returns:
        a scalar.
    """
    x, y = _as_batch(x)[..., :samples], _as_batch(y)[..., :samples]
    xl = x - zero_phase_highpass(x, cutoff_hz, sample_rate)
    yl = y - zero_phase_highpass(y, cutoff_hz, sample_rate)
    if highpass_hz > 0:
        xl = zero_phase_highpass(xl, highpass_hz, sample_rate)
        yl = zero_phase_highpass(yl, highpass_hz, sample_rate)
    return ((xl - yl).abs().mean(dim=-1) / yl.abs().mean(dim=-1).clamp_min(floor)).mean()


def body_peak(y: Tensor, sample_rate: float, low_hz: float = 20.0,
              high_hz: float = BODY_PITCH_MAX_HZ) -> tuple[Tensor, Tensor]:
    """Sounds [B,1,T] or [B,T] -> (the loudest frequency in ``low_hz``..``high_hz`` of one
    FFT of each whole sound [B], Hz: a drum body's pitch; the share of its energy in that
    range [B])."""
    y = _as_batch(y)
    power = torch.fft.rfft(y, dim=-1).abs().square()
    freqs = torch.fft.rfftfreq(y.shape[-1], 1.0 / sample_rate).to(y.device)
    band = (freqs > low_hz) & (freqs < high_hz)
    peak = freqs[band][power[:, band].argmax(dim=-1)]
    return peak, power[:, band].sum(-1) / power.sum(-1).clamp_min(1e-20)


def body_pitch_distance(pitch_hz: Tensor, y: Tensor, sample_rate: float,
                        max_hz: float = BODY_PITCH_MAX_HZ) -> Tensor:
    """Predicted body pitches [B] (Hz) against the targets' own (``body_peak`` of each
    target [B,1,T] under ``max_hz``) -> the mean squared log ratio (nats^2), each example
    weighted by its share of energy under ``max_hz`` (a hat's loudest low bin is its floor,
    not a pitch). No gradient reaches the targets."""
    peak, share = body_peak(y.detach(), sample_rate, high_hz=max_hz)
    return (share * torch.log(pitch_hz / peak).square()).mean()


def band_edge_distance(x_sub: Tensor, y_sub: Tensor, window: int, first_band: int = 1, eps: float = 1e-5) -> Tensor:
    """Mean |log| ratio between the local means of two sets of PQMF sub-bands, from
    ``first_band`` up, over windows of ``window`` sub-band samples, averaged over cells
    and the batch.

    A sub-band's slow part (its mean over a window) is what the full band holds right at
    the band's edge: trained decoders put an offset under their upper sub-bands'
    envelopes, which rings as a steady tone on the edges under every hit, 14 to 24 dB
    over the spectrum around it (docs/evaluation.md). The STFT terms see it as one bin
    in hundreds and leave it there. Here each edge is a cell of its own, matched to what
    the real sound has there (not forced to zero: a partial may sit on an edge).
    Taking the means out by construction (``model.wave_zero_mean``) removed the ring but
    starved the decoder's noise branch; a loss leaves the decoder free to get there its
    own way. Measured (``loss.edge_weight`` 1, `small`): its way was to silence the whole
    deterministic branch, so the noise held every band and the partials went (off in
    every preset; docs/evaluation.md).

    Args:
        x_sub: prediction's sub-bands [B, M, T]; y_sub: target's, same shape.
        window: sub-band samples per mean (``T`` need not be a multiple: the rest is left out).
        first_band: the lowest sub-band compared; sub-band 0's mean is the sound's own 0 Hz,
            which the output high-pass and the DC term deal with.
        eps: magnitude floor (1e-5: -100 dB).
    Returns:
        a scalar.
    """
    if x_sub.shape != y_sub.shape:
        raise ValueError(f"prediction sub-bands {tuple(x_sub.shape)} and target {tuple(y_sub.shape)} differ in shape")
    if not 1 <= window <= x_sub.shape[-1]:
        raise ValueError(f"band-edge window {window} must be 1 to {x_sub.shape[-1]} sub-band samples")
    mx = F.avg_pool1d(x_sub[:, first_band:], window)
    my = F.avg_pool1d(y_sub[:, first_band:], window)
    return 0.5 * (torch.log(mx.square() + eps**2) - torch.log(my.square() + eps**2)).abs().mean()


def frame_flatness(sub: Tensor, n_fft: int, first_band: int = 1) -> tuple[Tensor, Tensor]:
    """Spectral flatness of each frame of each sub-band from ``first_band`` up, and the
    frames' energy weights.

    Flatness is the geometric over the arithmetic mean of a frame's power spectrum: 0 for
    lines, about 0.56 for white noise (``exp(-Euler's gamma)``), and the same at any level.

    Args:
        sub: sub-bands [B, M, T].
        n_fft: Hann-window STFT size along each sub-band (hop a quarter of it).
        first_band: the lowest sub-band measured.
    Returns:
        (flatness [B, M - first_band, frames], weights of the same shape: each frame's
        share of its sub-band's energy, detached, so a silent tail's numerical dust does
        not count).
    """
    x = sub[:, first_band:]
    if not 2 <= n_fft <= x.shape[-1]:
        raise ValueError(f"flatness FFT size {n_fft} must be 2 to {x.shape[-1]} sub-band samples")
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop_length=max(1, n_fft // 4), window=window,
                      center=False, return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [B*M', bins, frames]
    mean = power.mean(dim=1)
    # A floor a million times under the frame's own mean: scale-free, and a pure line's
    # empty bins cannot drive the log to -inf.
    floor = 1e-6 * mean.detach() + 1e-30
    flatness = torch.exp(torch.log(power + floor.unsqueeze(1)).mean(dim=1)) / (mean + floor)
    weight = mean.detach() / mean.detach().sum(dim=-1, keepdim=True).clamp_min(1e-30)
    shape = (x.shape[0], x.shape[1], -1)
    return flatness.reshape(shape), weight.reshape(shape)


def wave_flatness(wave_sub: Tensor, n_fft: int, first_band: int = 1) -> Tensor:
    """Energy-weighted spectral flatness of the decoder's deterministic part in the upper
    sub-bands (``frame_flatness``), a scalar in [0, 1].

    The decoder has two parts per sub-band, a deterministic signal and a gain on fixed
    noise (``model/decoder.py``), and they compete: whichever holds a band's interior
    early keeps it. Where the deterministic part took it, the noise branch died, and the
    samples scored far worse; where the noise took it, the partial lines went with the
    deterministic part (docs/evaluation.md). Flatness does not care how loud the part
    is, only how its energy is spread, so paying for it leaves the lines to the
    deterministic part and the band's noise to the noise branch, without asking either
    part to be quieter. Measured (``loss.flatness_weight`` 1, `small`, two seeds): the
    noise branch lived on both, but the sounds gained no lines and FAD agreed on neither
    seed (off in every preset; docs/evaluation.md).

    Args:
        wave_sub: the deterministic part [B, M, T] (``FlowVAE.forward``'s ``wave``).
        n_fft: STFT size along each sub-band.
        first_band: the lowest sub-band scored: sub-band 0 holds kicks' and toms'
            bodies, lines already, and the sound's own 0 Hz.
    """
    flatness, weight = frame_flatness(wave_sub, n_fft, first_band)
    return (flatness * weight).sum(dim=-1).mean()


def flatness_distance(x_sub: Tensor, y_sub: Tensor, n_fft: int, first_band: int = 1) -> Tensor:
    """Energy-weighted mean |difference| between the frame flatness of a prediction's
    sub-bands and the target's, from ``first_band`` up, a scalar in [0, 1].

    Every trained decoder's upper bands were noisier than the data's: flatness 0.50 to
    0.54 against 0.47 (cymbals 0.38 to 0.50 against 0.35, hats 0.49 to 0.57 against
    0.42; ``benchmarks/branch_spectra.py``), the cymbals' lines drowned in the noise
    branch. The STFT terms compare magnitudes bin by bin, where a line in the wrong place
    costs about as much as a missing one; this compares only how peaked each frame is.
    Frames count by the target's energy: what the prediction puts where the target is
    silent is the STFT terms' business. Measured (weight 1 with the flatness term,
    `small`, two seeds): every class as peaked as the data's on seed 0, but FAD no better
    and seed 2's noise branch died (off in every preset; docs/evaluation.md).

    Args:
        x_sub: prediction's sub-bands [B, M, T]; y_sub: target's, same shape.
        n_fft, first_band: as ``frame_flatness``.
    """
    if x_sub.shape != y_sub.shape:
        raise ValueError(f"prediction sub-bands {tuple(x_sub.shape)} and target {tuple(y_sub.shape)} differ in shape")
    fx, _ = frame_flatness(x_sub, n_fft, first_band)
    fy, weight = frame_flatness(y_sub, n_fft, first_band)
    return ((fx - fy).abs() * weight).sum(dim=-1).mean()


# Patch of the texture term: 16 bins (172 Hz at 2,048 points and 22.05 kHz) by 4 frames.
TEXTURE_BINS, TEXTURE_FRAMES = 16, 4
# The transport term's floor, as a share of the target's mean power per bin (see there).
OT_FLOOR = 0.01

# Log-spaced bands start here; everything below is one band (offset and rumble).
LOG_BAND_LOW_HZ = 40.0


def log_band_matrix(n_fft: int, sample_rate: float, bands: int) -> Tensor:
    """Averaging matrix [G, n_fft//2+1] of log-spaced bands: 0 to ``LOG_BAND_LOW_HZ``, then
    ``bands - 1`` bands of equal ratio up to Nyquist. Each row averages the bins whose
    frequency falls in its band; bands no bin falls in (low ones, at small FFT sizes) are
    left out, so G <= bands."""
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    inner = LOG_BAND_LOW_HZ * (sample_rate / 2 / LOG_BAND_LOW_HZ) ** torch.linspace(0, 1, bands, dtype=torch.float64)
    edges = torch.cat([torch.zeros(1, dtype=torch.float64), inner[:-1], torch.tensor([float("inf")], dtype=torch.float64)])
    rows = [((freqs >= lo) & (freqs < hi)).to(torch.float64) for lo, hi in zip(edges[:-1], edges[1:])]
    rows = [r / r.sum() for r in rows if r.sum() > 0]
    return torch.stack(rows).to(torch.float32)


class STFTTerms(NamedTuple):
    """The unweighted terms of ``MultiScaleSTFTLoss``, each averaged over scales and examples."""

    linear: Tensor
    log: Tensor
    band: Tensor
    spectrum: Tensor
    transport: Tensor
    texture: Tensor


class MultiScaleSTFTLoss(nn.Module):
    """Multi-resolution STFT distance on linear and log magnitudes.

    For every FFT size ``n`` (hop ``n // 4``, Hann window, zero padding at the edges so
    any length works) the magnitudes are divided by the window sum, so a full-scale sine
    has a peak of 0.5 at every size and ``log_eps`` means the same level (-100 dB) at every
    scale. Per scale and per example:

    * linear term: spectral convergence ``||Y - X||_F / sqrt(||Y||_F^2 + N * floor^2)``,
      scale free by construction; the small ``floor`` (-60 dB per bin) keeps it finite
      for a silent target.
    * log term: ``mean |log(X + eps) - log(Y + eps)|``; it sees quiet partials and decay
      tails that barely move the linear term.
    * band term (``band_weight`` > 0): the same log distance on energies averaged over
      ``bands`` frequency bands (equal-width, or with ``band_spacing="log"`` equal ratios
      from ``LOG_BAND_LOW_HZ`` up, below it one band) and 4 frames. For noise, whose phase the
      model cannot match, the per-bin terms are biased low: between two independent
      noises, spectral convergence is smallest when the prediction is 2 to 2.5 dB too
      quiet (the log term is unbiased but noisy). Averaged energies are nearly
      deterministic, so their distance is smallest at the right level.
    * spectrum term (``spectrum_weight`` > 0): the same log distance on each band's energy
      averaged over the whole sound (its long-term spectrum, the band term's bands). The
      per-bin and 4-frame terms weigh every cell alike, so the few loud frames of a hit,
      where its level lives, are a small share of them; the whole sound's energy per
      band is set by those frames. A gain error of d dB costs it d * ln(10) / 20, whatever
      the sound's envelope.
    * transport term (``ot_weight`` > 0): per frame, the 1-D Wasserstein distance between
      the two power spectra normalised to unit mass, along log frequency (in nats of
      frequency: a partial an octave off costs ln 2), averaged over frames weighted by
      the target's frame energy. Level hardly enters it (a floor 20 dB under the target's
      mean power per bin, under both spectra, bounds its gradient near silence). The
      idea: where the model is unsure of a partial's exact frequency, per-bin terms pay
      a moved line's energy twice, while the transport distance averaged over the
      uncertain targets is smallest for one sharp line at their median frequency.
      Measured on a trained decoder it did the opposite (fewer lines,
      docs/evaluation.md): a dense cluster of partials and smooth noise of its envelope
      are nearly the same distribution at this distance, so it rewards the envelope
      only. Off in every preset.
      With ``ot_max_hz`` it compares only the bins under that frequency, as a spectrum of
      their own, each example weighted by its target's share of energy there: the
      distance between a drum body and the same body an octave off, which the per-bin
      terms, sharing no bin between the two, cannot measure. It tunes a body oscillator
      (``model/bodies.py``) an octave off, which under the per-bin terms alone stalls
      there (``tests/test_bodies.py``); in a whole model that did not work out
      (docs/evaluation.md).
    * texture term (``texture_weight`` > 0): in patches of 16 bins by 4 frames, the log
      magnitudes of each sound sorted and compared, L1 (the 1-D Wasserstein distance
      between the two patches' distributions of bin levels). It cannot see where in its
      patch a partial lies, only how peaked the patch is. Why: a cymbal's 72 partials sit
      at random frequencies the latent cannot carry, and per-bin terms cannot reward
      lines they cannot place: against a cymbal, another cymbal's lines score worse than
      smooth noise of the same envelope in spectral convergence and 29 % better in the
      log term, 58 % better in this one (``tests/test_losses.py``). It is never
      larger than the log term (sorting is the best pairing).
      In `small` and `base` at weight 2: the first runs whose reconstructed cymbals have
      their partial lines (docs/evaluation.md).

    With ``log_highpass_hz`` set, the log and band terms compare both sounds high-passed
    there (``zero_phase_highpass``); the linear term still hears everything. Those two
    terms paid decoders for a slow offset under the envelope: it fills the low bins where
    the reconstruction is too quiet, and removing it from a trained model's sounds
    raised them at every FFT size, 2,048 included, while the linear term fell
    (docs/evaluation.md). Deaf below the cut-off, they no longer pay for it.

    The result is averaged over examples and scales.

    Args:
        scales: FFT sizes, e.g. ``[2048, 1024, 512, 256, 128, 64]``.
        linear_weight: weight of the spectral-convergence term.
        log_weight: weight of the log-magnitude term.
        log_eps: added to magnitudes before the log (amplitude units, 1e-5 = -100 dB).
        floor: per-bin magnitude floor of the spectral-convergence denominator.
        band_weight: weight of the band-energy term (0 = off).
        bands: frequency bands of the band-energy term.
        band_spacing: "linear" (equal widths) or "log" (equal ratios; needs
            ``sample_rate``). Equal widths at 22 kHz put everything under 689 Hz, a kick's
            or tom's whole body, in one band of 16; log bands give 80-640 Hz three.
        log_highpass_hz: cut-off below which the log and band terms hear nothing (0 = off).
        spectrum_weight: weight of the long-term-spectrum term (0 = off).
        ot_weight: weight of the spectral transport term (0 = off).
        texture_weight: weight of the sorted-patch texture term (0 = off).
        texture_min_size: the texture term runs at the FFT sizes from this one up only
            (0 = every size); still averaged over all sizes, so each one it runs at weighs
            what it did. Small FFTs cannot resolve a partial, and each size's sort costs
            the same (the patch count is about ``2 * T`` at every size).
        sample_rate: of the audio; needed when ``log_highpass_hz`` or ``ot_max_hz`` is set
            or bands are log.
        ot_max_hz: the transport term compares the bins under this only (0 = all), at the
            FFT sizes with at least ``config.OT_MIN_BINS`` of them (``config.transport_bins``).
    """

    def __init__(
        self,
        scales: Sequence[int],
        linear_weight: float = 1.0,
        log_weight: float = 1.0,
        log_eps: float = 1e-5,
        floor: float = 1e-3,
        band_weight: float = 0.0,
        bands: int = 16,
        log_highpass_hz: float = 0.0,
        sample_rate: float = 0.0,
        band_spacing: str = "linear",
        spectrum_weight: float = 0.0,
        ot_weight: float = 0.0,
        texture_weight: float = 0.0,
        texture_min_size: int = 0,
        ot_max_hz: float = 0.0,
    ) -> None:
        super().__init__()
        if band_spacing not in ("linear", "log"):
            raise ValueError(f"band_spacing must be 'linear' or 'log', got {band_spacing!r}")
        if band_spacing == "log" and not sample_rate > 2 * LOG_BAND_LOW_HZ:
            raise ValueError(f"log-spaced bands need a sample rate above {2 * LOG_BAND_LOW_HZ:g} Hz, got {sample_rate}")
        if log_highpass_hz > 0 and not 0 < 2 * log_highpass_hz < sample_rate:
            raise ValueError(f"log_highpass_hz {log_highpass_hz} needs a sample rate above twice it, got {sample_rate}")
        if not scales:
            raise ValueError("MultiScaleSTFTLoss needs at least one FFT size")
        if ot_max_hz > 0 and not 0 < 2 * ot_max_hz <= sample_rate:
            raise ValueError(f"ot_max_hz {ot_max_hz} needs a sample rate of at least twice it, got {sample_rate}")
        self.scales = [int(n) for n in scales]
        self.linear_weight = float(linear_weight)
        self.log_weight = float(log_weight)
        self.log_eps = float(log_eps)
        self.floor = float(floor)
        self.band_weight = float(band_weight)
        self.bands = int(bands)
        self.log_highpass_hz = float(log_highpass_hz)
        self.sample_rate = float(sample_rate)
        self.band_spacing = band_spacing
        self.spectrum_weight = float(spectrum_weight)
        self.ot_weight = float(ot_weight)
        self.texture_weight = float(texture_weight)
        self.texture_min_size = int(texture_min_size)
        self.ot_max_hz = float(ot_max_hz)
        # With a cut-off, the transport term runs only where the band holds enough bins to
        # place a partial in it; still divided by every size, like the texture term.
        self.ot_bins = {n: transport_bins(self.ot_max_hz, n, self.sample_rate) for n in self.scales}
        if self.ot_weight > 0 and not any(self.ot_bins.values()):
            raise ValueError(f"ot_max_hz {ot_max_hz:g} Hz holds fewer than {OT_MIN_BINS} bins at every FFT size "
                             f"{self.scales}: raise it or add a larger size")
        for n in self.scales:
            # Buffers follow the module to the loss's device / dtype; not saved in checkpoints.
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)
            if band_spacing == "log":
                self.register_buffer(f"bands_{n}", log_band_matrix(n, self.sample_rate, self.bands), persistent=False)
            if self.ot_weight > 0 and self.ot_bins[n]:
                # Log-frequency width between neighbouring bins 1..last (DC is folded into bin 1).
                k = torch.arange(1, self.ot_bins[n] - 1, dtype=torch.float64)
                self.register_buffer(f"logf_{n}", torch.log((k + 1) / k).to(torch.float32), persistent=False)

    def _magnitude(self, x: Tensor, n: int) -> Tensor:
        """x [B,T] -> magnitudes [B, n//2+1, frames], in amplitude units."""
        window: Tensor = getattr(self, f"window_{n}").to(dtype=x.dtype)
        spec = torch.stft(
            x, n_fft=n, hop_length=n // 4, window=window, center=True, pad_mode="constant", return_complex=True
        )
        power = spec.real.square() + spec.imag.square()
        # sqrt(p + tiny): |.| has an infinite slope at 0, which turns silence into NaN grads.
        return torch.sqrt(power + 1e-14) / window.sum()

    def _band_power(self, mag: Tensor, n: int) -> Tensor:
        """Magnitudes [B, F, frames] of FFT size n -> mean power per band and frame
        [B, bands, frames] (log bands: those holding at least one bin)."""
        if self.band_spacing == "log":
            bands: Tensor = getattr(self, f"bands_{n}").to(dtype=mag.dtype)
            return torch.einsum("gf,bft->bgt", bands, mag.square())
        return F.adaptive_avg_pool2d(mag.square()[:, None], (min(self.bands, mag.shape[1]), mag.shape[2]))[:, 0]

    def _transport_distance(self, mx: Tensor, my: Tensor, n: int) -> Tensor:
        """Magnitudes [B, F, frames] of FFT size n -> mean over examples of the frame-energy
        weighted 1-D Wasserstein distance between the normalised power spectra, on a
        log-frequency axis (nats). Power, not magnitude: as mass, magnitude gives a noise
        floor 40 dB down a fifth of the spectrum's mass, and the distance becomes one
        between floors. Bins 0 and 1 are one bin: the log axis has no place for DC. With a
        cut-off only the bins under it count, as a spectrum of their own, and each example
        counts by the share of its target's energy under the cut-off: a hat's low band is
        its floor, whose shape nothing should chase."""
        widths: Tensor = getattr(self, f"logf_{n}").to(dtype=mx.dtype)
        k = self.ot_bins[n]
        share = my[:, :k].square().sum((1, 2)) / my.square().sum((1, 2)).clamp_min(1e-20)
        mx, my = mx[:, :k], my[:, :k]

        def cdf(m: Tensor) -> Tensor:
            m = torch.cat([m[:, :2].sum(1, keepdim=True), m[:, 2:]], dim=1)
            return torch.cumsum(m, dim=1)[:, :-1] / m.sum(1, keepdim=True)

        px, py = mx.square(), my.square()
        # The distance does not depend on level, so its gradient grows as 1/level: at -60 dB
        # a prediction was pushed 1,000 times as hard as at the target's level. A floor
        # under both, 20 dB below the target's mean power per bin there, bounds that (13
        # times, tests/test_losses.py); whatever is quieter is floor to the term.
        floor = OT_FLOOR * py.mean((1, 2), keepdim=True).detach()
        px, py = px + floor, py + floor
        per_frame = ((cdf(px) - cdf(py)).abs() * widths[None, :, None]).sum(1)  # [B, frames]
        energy = py.sum(1)
        return ((per_frame * energy / energy.sum(-1, keepdim=True)).sum(-1) * share).mean()

    @staticmethod
    def _texture_distance(lx: Tensor, ly: Tensor, bins: int = TEXTURE_BINS, frames: int = TEXTURE_FRAMES) -> Tensor:
        """Log magnitudes [B, F, T] -> mean |sorted - sorted| over patches of ``bins`` x
        ``frames`` cells (the Nyquist bin and a last partial patch are left out)."""
        b, f, t = lx.shape
        pf, pt = f // bins, t // frames
        if pf == 0 or pt == 0:
            return lx.new_zeros(())

        def patches(v: Tensor) -> Tensor:
            v = v[:, : pf * bins, : pt * frames].reshape(b, pf, bins, pt, frames)
            return v.permute(0, 1, 3, 2, 4).reshape(b, pf, pt, bins * frames).sort(dim=-1).values

        return (patches(lx) - patches(ly)).abs().mean()

    def _log_energy_distance(self, ex: Tensor, ey: Tensor) -> Tensor:
        """Mean |log| ratio of two energy tables, in amplitude units (hence the 0.5)."""
        eps = self.log_eps**2  # power units: the same -100 dB
        return 0.5 * (torch.log(ex + eps) - torch.log(ey + eps)).abs().mean()

    def components(self, x: Tensor, y: Tensor) -> STFTTerms:
        """Unweighted terms, each averaged over scales and examples (band, spectrum,
        transport and texture are 0 when their weight is 0: they are not computed).

        Args:
            x: prediction [B,1,T] or [B,T].
            y: target, same shape.
        Returns:
            the six scalars.
        """
        x, y = _as_batch(x), _as_batch(y)
        if x.shape != y.shape:
            raise ValueError(f"prediction {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
        xl, yl = x, y
        if self.log_highpass_hz > 0:
            xl = zero_phase_highpass(x, self.log_highpass_hz, self.sample_rate)
            yl = zero_phase_highpass(y, self.log_highpass_hz, self.sample_rate)
        lin_total = x.new_zeros(())
        log_total = x.new_zeros(())
        band_total = x.new_zeros(())
        spectrum_total = x.new_zeros(())
        ot_total = x.new_zeros(())
        texture_total = x.new_zeros(())
        for n in self.scales:
            mx, my = self._magnitude(x, n), self._magnitude(y, n)
            bins = my.shape[1] * my.shape[2]
            num = (mx - my).square().sum(dim=(1, 2))
            den = my.square().sum(dim=(1, 2)) + bins * self.floor**2
            lin_total = lin_total + torch.sqrt(num + 1e-20).div(torch.sqrt(den)).mean()
            if self.ot_weight > 0 and self.ot_bins[n]:
                ot_total = ot_total + self._transport_distance(mx, my, n)
            if self.log_highpass_hz > 0:
                mx, my = self._magnitude(xl, n), self._magnitude(yl, n)
            lx, ly = torch.log(mx + self.log_eps), torch.log(my + self.log_eps)
            log_total = log_total + (lx - ly).abs().mean()
            if self.texture_weight > 0 and n >= self.texture_min_size:
                texture_total = texture_total + self._texture_distance(lx, ly)
            if self.band_weight > 0 or self.spectrum_weight > 0:
                px, py = self._band_power(mx, n), self._band_power(my, n)
            if self.band_weight > 0:
                frames = (px.shape[2] + 3) // 4  # groups of 4 frames
                band_total = band_total + self._log_energy_distance(F.adaptive_avg_pool1d(px, frames),
                                                                    F.adaptive_avg_pool1d(py, frames))
            if self.spectrum_weight > 0:
                spectrum_total = spectrum_total + self._log_energy_distance(px.mean(-1), py.mean(-1))
        k = len(self.scales)
        return STFTTerms(lin_total / k, log_total / k, band_total / k, spectrum_total / k, ot_total / k,
                         texture_total / k)

    def transport(self, x: Tensor, y: Tensor) -> Tensor:
        """The transport term alone, unweighted (``components(x, y).transport`` without the
        other terms' cost): prediction and target [B,1,T] or [B,T] -> scalar."""
        x, y = _as_batch(x), _as_batch(y)
        total = x.new_zeros(())
        for n in self.scales:
            if self.ot_bins[n]:
                total = total + self._transport_distance(self._magnitude(x, n), self._magnitude(y, n), n)
        return total / len(self.scales)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Weighted loss between prediction ``x`` and target ``y`` ([B,1,T] or [B,T]) -> scalar."""
        return self.weigh(self.components(x, y))

    def weigh(self, t: STFTTerms) -> Tensor:
        """The loss from its ``components``: their sum under this loss's weights."""
        return (self.linear_weight * t.linear + self.log_weight * t.log + self.band_weight * t.band
                + self.spectrum_weight * t.spectrum + self.ot_weight * t.transport + self.texture_weight * t.texture)


# --- adversarial objectives ---------------------------------------------------------------
# Least squares (HiFi-GAN / DAC style) rather than hinge: the generator's gradient stays
# proportional to how far D(fake) is from the "real" target even once the discriminator is
# confident, and the discriminator's loss is bounded below by 0, which makes "D loss drops
# by a factor" a meaningful health check. Every helper averages over sub-discriminators,
# so the loss weights in the config do not depend on how many discriminators are enabled.


def stft_loss_from_config(cfg: "FlowshotConfig") -> MultiScaleSTFTLoss:
    """The reconstruction loss a preset trains with (``cfg.loss.stft_*``, ``cfg.audio.sample_rate``)."""
    loss = cfg.loss
    return MultiScaleSTFTLoss(loss.stft_scales, loss.stft_linear_weight, loss.stft_log_weight,
                              band_weight=loss.stft_band_weight, bands=loss.stft_bands,
                              log_highpass_hz=loss.stft_log_highpass_hz, sample_rate=cfg.audio.sample_rate,
                              band_spacing=loss.stft_band_spacing, spectrum_weight=loss.stft_spectrum_weight,
                              ot_weight=loss.stft_ot_weight, texture_weight=loss.stft_texture_weight,
                              texture_min_size=loss.stft_texture_min_size, ot_max_hz=loss.stft_ot_max_hz)


def _check_outs(outs: DiscOutputs, what: str) -> None:
    if len(outs) == 0:
        raise ValueError(f"{what}: no discriminator outputs (enable use_mpd / use_mrd / use_msd in cfg.loss)")


def discriminator_loss(real_outs: DiscOutputs, fake_outs: DiscOutputs) -> Tensor:
    """LSGAN discriminator loss: mean over discriminators of E[(1 - D(real))^2] + E[D(fake)^2].

    ``fake_outs`` must come from detached generator output (the caller's job).

    Args:
        real_outs, fake_outs: lists of ``(logits, features)``, same order and length.
    Returns:
        scalar.
    """
    _check_outs(real_outs, "discriminator_loss")
    if len(real_outs) != len(fake_outs):
        raise ValueError(f"discriminator_loss: {len(real_outs)} real vs {len(fake_outs)} fake outputs")
    total = real_outs[0][0].new_zeros(())
    for (real, _), (fake, _) in zip(real_outs, fake_outs):
        total = total + (1.0 - real).square().mean() + fake.square().mean()
    return total / len(real_outs)


def generator_adv_loss(fake_outs: DiscOutputs) -> Tensor:
    """LSGAN generator loss: mean over discriminators of E[(1 - D(fake))^2] -> scalar."""
    _check_outs(fake_outs, "generator_adv_loss")
    total = fake_outs[0][0].new_zeros(())
    for fake, _ in fake_outs:
        total = total + (1.0 - fake).square().mean()
    return total / len(fake_outs)


def feature_matching_loss(real_outs: DiscOutputs, fake_outs: DiscOutputs, eps: float = 1e-8) -> Tensor:
    """Relative L1 between discriminator features of real and generated audio.

    Per layer: ``mean|f_real - f_fake| / (mean|f_real| + eps)`` with ``f_real`` detached
    (the generator must not move the real features), averaged over all layers of all
    discriminators. The per-layer normalisation keeps deep, large-valued layers from
    drowning the early ones.

    Returns:
        scalar.
    """
    _check_outs(real_outs, "feature_matching_loss")
    if len(real_outs) != len(fake_outs):
        raise ValueError(f"feature_matching_loss: {len(real_outs)} real vs {len(fake_outs)} fake outputs")
    terms: list[Tensor] = []
    for (_, real_feats), (_, fake_feats) in zip(real_outs, fake_outs):
        if len(real_feats) != len(fake_feats):
            raise ValueError("feature_matching_loss: real and fake outputs have different numbers of feature maps")
        for fr, ff in zip(real_feats, fake_feats):
            fr = fr.detach()
            terms.append((fr - ff).abs().mean() / (fr.abs().mean() + eps))
    if not terms:
        raise ValueError("feature_matching_loss: the discriminators returned no feature maps")
    return torch.stack(terms).mean()
