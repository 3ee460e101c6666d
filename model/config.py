"""Typed configuration for flowshot, with the named presets.

Every checkpoint stores ``FlowshotConfig.to_dict()`` (plain ints, floats, strings,
lists and dicts), so ``torch.load(..., weights_only=True)`` reads it back and
``FlowshotConfig.from_dict`` rebuilds the exact model without executing anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

# The decoder's up-samplers (``ModelConfig.upsample``).
UPSAMPLE_KINDS = ("linear", "polyphase", "balanced", "sinc")
# Which sub-bands' deterministic parts lose their time mean (``ModelConfig.wave_zero_mean``).
WAVE_ZERO_MEAN = ("none", "upper", "all")
# What of a sub-band's deterministic part counts as its offset (``ModelConfig.wave_mean_shape``).
WAVE_MEAN_SHAPES = ("flat", "envelope")


# Fewest bins under a transport cut-off for the spectral transport term to run at an FFT
# size: with fewer, a body's octave is one or two bins and the distance cannot say where
# in it the body is.
OT_MIN_BINS = 8
# Where the pitch term and the benchmarks look for a body's pitch by default: over every
# kick's and tom's (40-258 Hz in `builtin:drums`), under the hats' and snares' noise.
BODY_PITCH_MAX_HZ = 500.0


def transport_bins(max_hz: float, n_fft: int, sample_rate: float) -> int:
    """Bins 0..k-1 the transport term compares at FFT size ``n_fft``: all of them without a
    cut-off (``max_hz`` 0); with one, those up to it, or 0 (skip this size) when fewer
    than ``OT_MIN_BINS``. Here, torch-free, so that validation and the loss share it."""
    if max_hz <= 0:
        return n_fft // 2 + 1
    k = int(max_hz * n_fft / sample_rate) + 1
    return k if k >= OT_MIN_BINS else 0


@dataclass
class AudioConfig:
    """What one example is: rate, fixed length, and how a file becomes an example.

    Args:
        sample_rate: model sample rate in Hz.
        length: samples per one-shot; must be divisible by ``ModelConfig.hop``.
        trim_db: leading samples quieter than this (dB below the file's peak) are cut,
            so every example starts at its onset.
        fade_out_ms: fade applied at the end of a cropped example (no click at the cut).
        normalize: "peak" (to ``target_peak_db``) or "loudness" (RMS of the first
            ``length`` samples to ``target_rms_db``, peak limited to -0.1 dBFS).
        min_length_ms: files shorter than this after trimming are skipped.
    """

    sample_rate: int = 22050
    length: int = 16384
    trim_db: float = 40.0
    fade_out_ms: float = 10.0
    normalize: str = "peak"
    target_peak_db: float = -1.0
    target_rms_db: float = -18.0
    min_length_ms: float = 10.0

    @property
    def duration(self) -> float:
        return self.length / self.sample_rate


@dataclass
class ModelConfig:
    """The flow-VAE's shape.

    Args:
        pqmf_bands: number of PQMF sub-bands (a power of two; 1 disables PQMF).
        pqmf_attenuation: stop-band attenuation of the PQMF prototype filter, dB.
        channels: encoder channel widths per stage, from the sub-band input down to the
            bottleneck; the decoder mirrors them.
        ratios: down-sampling ratio of each encoder stage (the decoder up-samples by
            the same ratios in reverse); len(ratios) == len(channels) - 1.
        dilations: dilations of the residual units inside each stage.
        kernel_size: kernel of the dilated residual convolutions.
        decoder_channels: decoder widths, bottleneck first (None = ``channels`` reversed).
        decoder_dilations: dilations of the decoder's residual units (None = ``dilations``).
            Each unit is a dozen tensor ops at every stage's rate; on one CPU thread the
            render time follows their count more than the FLOPs.
        out_kernel: kernel of the decoder's last convolution (to the sub-band outputs).
        upsample: how the decoder raises the frame rate: "linear" (linear interpolation,
            then a conv: ``layers.InterpUpsample``) or "polyphase" (a conv making each
            output phase with its own kernel: ``layers.Upsample``; leaves a tone at each
            stage's input frame rate, see ``InterpUpsample``), or "balanced" (polyphase with
            every phase's 0 Hz gain equal: no steady tone, see ``Upsample``), or "sinc" (a
            band-limited interpolation, then a conv: ``layers.SincUpsample``), or one kind per
            stage, comma-separated, bottleneck first (e.g. "linear,linear,balanced"). The
            default stays "polyphase" so checkpoints written before this option rebuild
            as they were.
        decoder_preroll: bottleneck frames the decoder makes *before* the sound and
            ``decode`` cuts off after PQMF synthesis, so the sound's first samples lie
            inside the conv stack, away from its zero-padded edge (0 = none). At the edge
            the envelope fades in over ~5 sub-band frames: every hit starts ~2.5 ms late.
        encoder_norm: layer-normalise the encoder's pooled features before the head that
            makes the posterior's mean, log-variance and flow context. The encoder is an
            unnormalised conv stack whose gain compounds over its layers; early in training
            (KL weight near 0, under its free nats) that gain can swing tenfold in ten
            steps, and without the norm it reaches z unchecked: posterior means of 50 to
            1,000, decoder outputs of 1e5, a run that never recovers (seen at seed 1).
            Off in the presets: it stops that, but two `small` runs with it reconstructed
            1.1 dB worse (LSD) and scored FAD 172 to 192 against 157 (docs/evaluation.md).
        latent_dim: size of the ONE latent vector per sound.
        flows: Real NVP flows on posterior and prior; False is the plain Gaussian VAE.
        posterior_flow_depth, prior_flow_depth: coupling layers in each flow.
        flow_hidden: hidden width of the coupling networks.
        context_dim: size of the encoder summary that conditions the posterior flow.
        noise: the decoder adds a fixed white noise per sub-band under a learned
            envelope (see ``model/decoder.py``); False = deterministic part only.
        noise_init_bias: initial bias of the noise gains (mod_sigmoid(-4) = -74 dB). From
            -1.6 (-30 dB) the noise took over every sub-band above the first and the
            sounds lost all their spectral lines: FAD 11 to 15 points worse (docs/evaluation.md).
        noise_splits: gains per sub-band for that noise: the band's white noise is cut
            into this many equal slices of its spectrum, each under its own envelope (1 =
            one flat noise per band, as in older checkpoints). A band is 689 Hz wide in
            `small`, 1,378 in `base`: flat over that, the noise cannot follow a hat's or a
            cymbal's spectrum where it rises or falls steeply.
        highpass_hz: cut-off of a fixed high-pass on the lowest sub-band, which holds
            everything below ``sample_rate / (2 * pqmf_bands)``: no sound comes out with
            content under it (0 = off, as in older checkpoints).
        highpass_bands: how many sub-bands, lowest first, go through that high-pass (1 =
            the lowest only, as in older checkpoints; ``pqmf_bands`` = all). An offset in
            a sub-band comes out as a tone on one of its band edges: under the envelopes
            of the upper sub-bands it rings in every sound (in `small` on the multiples
            of 1,378 Hz, measured). All bands at 25 Hz: the ring gone, FAD 3 to 4 worse
            (docs/evaluation.md).
        highpass_order: 1 = a one-pole DC blocker (gentle: the model can still make 5 to
            10 Hz), 2 to 8 = a Butterworth high-pass of that order.
        highpass_in_training: the filter also runs while training; False = only in eval
            mode (generate, evaluate, validation, every export and host), so training
            sees the bare decoder. Trained behind the filter, decoders moved the offset to
            20-40 Hz and scored FAD 190-200 against 142 (docs/evaluation.md).
        signal_highpass_hz: -3 dB point of a high-pass on the upper sub-bands' deterministic
            signal before its envelope (``decoder.without_slow_part``), only when the model
            plays, never in training (0 = off, as in older checkpoints). That signal's slow
            offset, under the envelope, is what rings on the band edges; filtered there, not
            after the envelope as ``highpass_bands`` does, the edges come back at the data's
            level instead of as notches. At 25 Hz (the presets since 2026-12-07), five runs on
            three data sets: the ring per sound +5.9 to +12.8 dB against +19.5 to +26.6
            (real +6.5 to +8.9), KID better at all 10 draws, FAD at 8 (2.3 and 2.9 worse
            at the built-in seed 2's two; docs/evaluation.md).
        envelope_smooth: the upper sub-bands' envelopes are averaged over this many
            sub-band samples (a centred boxcar, in training and playing; 1 = off, as in
            older checkpoints). An envelope as fast as its signal multiplies with it:
            content the two share at one frequency lands at the sub-band's 0 Hz, a band
            edge (the rest of the band-edge ring after ``signal_highpass_hz``). Off in
            the presets: at 4 (the last up-sampler's ratio) the ring went on every run,
            and two built-in seeds scored better on every measure, but of three word
            seeds one scored FAD 20 worse with steady lines in every sound and one
            diverged (docs/evaluation.md).
        render_boost_max_db: what is played (``FlowVAE.render``: generate, evaluate, every
            export and host) is brought to the level every training example was normalised
            to (``audio.normalize``: its peak to ``target_peak_db``, or its RMS to
            ``target_rms_db`` under the -0.1 dBFS limit), raised by at most this many dB.
            Decoders come out quiet (the models trained on the Hydrogen kits peak 4 to 5 dB
            under the data); a quiet draw is not blown up to its noise. 0 = never raised,
            only held under the ceiling (older checkpoints). Training does not see it.
        wave_zero_mean: take each sub-band's own time mean out of the decoder's
            deterministic part, in training and after, so no sub-band can carry the offset
            that rings on its band edge: "none" (as in older checkpoints), "upper" (every
            band but the lowest, whose mean is the sound's own DC, left to the high-pass)
            or "all". A mean over the whole sound is one bin of a real sub-band's
            spectrum, about nothing. "upper" on `small`, seeds 0 and 2 (2026-12-04): the
            ring goes (per sound +7 to +12 dB against +22; real +6.5) and the cymbals'
            lines come back, but the noise branch dies (-56 and -73 dB) and FAD is 21 to
            25 worse, hats, claps and snares furthest off; not adopted (docs/evaluation.md).
            Why (2026-12-06): the preset's deterministic part keeps a fifth to a third of its
            upper-band energy in that offset and leaves the band interior to the noise;
            without the offset it fills the interior itself and the noise is not needed.
        wave_mean_shape: what ``wave_zero_mean`` takes out. "flat" (as before): the plain
            time mean. "envelope": the part shaped like the band's own envelope (the
            deterministic part's projection on its ``mod_sigmoid`` amplitude), which is
            what an offset under a hit is. A flat mean taken out of a short hit comes back
            as a faint steady tone over the whole silent rest of the sound, so the decoder
            must make every hit's sub-band sum exactly zero, which real hits' sums are
            not; the enveloped one is zero wherever the envelope is. Measured on `small`
            (2026-12-06, with ``wave_fade_in_steps`` 1000; ``benchmarks/envelope_floor.py``):
            under the flat mean the envelopes stopped closing (closed hats silent in 0 to 5 %
            of their samples against 67 % in the preset), under the enveloped one they
            close as in the preset (74 %); FAD 76.4 / 80.0 against 86.3 / 90.7 on seed 0,
            86.8 / 89.0 against 81.3 / 83.4 on seed 2 (its noise branch died), the band-edge
            ring +15 to +17 dB per sound against +22 (real +6.5); not adopted on two seeds
            that disagree. Without the fade the noise branch died on both seeds: FAD 103.2
            and 110.0 (docs/evaluation.md).
        body_oscillators: damped, gliding sines whose pitch, glide, decay, level and phase
            a head makes from z, added to the decoder's output (``model/bodies.py``; 0 =
            none, as in older checkpoints). The conv decoder plays drum bodies at a few
            fixed pitches only (``benchmarks/body_pitch.py``). One, taught its pitch
            (``loss.body_pitch_weight``, ``loss.body_pitch_to_encoder``,
            ``train.body_fade_in_*``) and its glide (``loss.body_transport_weight`` at 5),
            in `small` and `base` since 2026-12-06; two tuned by the transport term alone
            made every kick and tom one body at ~90 Hz (docs/evaluation.md).
        body_min_hz, body_max_hz: range of the oscillators' resting pitch. The presets
            reach 640 Hz, so the oscillator can take the rims' tone (380-560 Hz in
            `builtin:drums`); at 400 it sat at the top, a few semitones flat.
        body_input_gain: z is scaled by this into the oscillators' head. At 0.1 the head
            moved slowly enough not to saturate under the transport term, and too slowly
            to learn the pitch; at 1 (the presets), taught the pitch, it learns it.
        body_drive: each oscillator's sine is saturated (tanh) by a drive its head makes
            from z, as an analogue kick's VCA overdrives its body: odd harmonics that glide
            with the pitch, which the decoder cannot make (``model/bodies.py``). On in
            `small` and `base` since 2026-12-06; no effect without oscillators.
        voice_harmonics: a harmonic voice whose pitch and harmonic levels move over time,
            added to the decoder's output (``model/voice.py``; 0 = none, as in older
            checkpoints), for spoken words and anything sung or whistled: the conv decoder
            holds a word's pitch and formants still. Its pitch is taught by
            ``loss.voice_pitch_weight``. Off in the presets (drums have no such voice).
        voice_min_hz, voice_max_hz: the voice's pitch range (and the tracker's search range).
        voice_frame_ms: time between the voice's control frames; pitch and levels are
            interpolated linearly between them.
        voice_channels: width of the voice's control net.
        voice_smooth: the voice's controls (pitch, level, harmonic shares) are averaged over
            this many frames (a centred triangle; odd; 1 = off, as in older checkpoints)
            before their non-linearities, in training too.
    """

    pqmf_bands: int = 8
    pqmf_attenuation: float = 100.0
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 384])
    ratios: list[int] = field(default_factory=lambda: [4, 4, 4])
    dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    kernel_size: int = 3
    decoder_channels: list[int] | None = None
    decoder_dilations: list[int] | None = None
    out_kernel: int = 7
    upsample: str = "polyphase"
    decoder_preroll: int = 0
    encoder_norm: bool = False
    latent_dim: int = 128
    flows: bool = True
    posterior_flow_depth: int = 4
    prior_flow_depth: int = 6
    flow_hidden: int = 256
    context_dim: int = 128
    noise: bool = True
    noise_init_bias: float = -4.0
    noise_splits: int = 1
    highpass_hz: float = 0.0
    highpass_bands: int = 1
    highpass_order: int = 1
    highpass_in_training: bool = True
    signal_highpass_hz: float = 0.0
    envelope_smooth: int = 1
    render_boost_max_db: float = 0.0
    wave_zero_mean: str = "none"
    wave_mean_shape: str = "flat"
    body_oscillators: int = 0
    body_min_hz: float = 30.0
    body_max_hz: float = 400.0
    body_input_gain: float = 0.1
    body_drive: bool = False
    voice_harmonics: int = 0
    voice_min_hz: float = 50.0
    voice_max_hz: float = 500.0
    voice_frame_ms: float = 10.0
    voice_channels: int = 64
    voice_smooth: int = 1

    def upsample_kinds(self) -> list[str]:
        """One of ``UPSAMPLE_KINDS`` for each decoder stage, bottleneck first."""
        kinds = self.upsample.split(",")
        return kinds * len(self.ratios) if len(kinds) == 1 else kinds

    def voice_hop(self, sample_rate: int) -> int:
        """Samples between the voice's control frames."""
        return max(2, round(sample_rate * self.voice_frame_ms / 1000.0))

    @property
    def hop(self) -> int:
        """Samples of audio per bottleneck frame."""
        hop = self.pqmf_bands
        for r in self.ratios:
            hop *= r
        return hop

    def dec_channels(self) -> list[int]:
        return list(self.decoder_channels) if self.decoder_channels else list(reversed(self.channels))

    def dec_dilations(self) -> list[int]:
        return list(self.decoder_dilations) if self.decoder_dilations else list(self.dilations)


@dataclass
class LossConfig:
    """Loss terms and their weights.

    Args:
        stft_scales: FFT sizes of the multi-scale STFT distance (hop = size // 4).
        stft_linear_weight, stft_log_weight: weights of the linear and log magnitude terms.
            Linear 0 on `small` (2026-12-06): FAD 10 to 14 lower on seed 0, 4 to 5 higher
            on seed 2 (0.5: 9 and 7 higher); samples 1 dB louder, 160-320 Hz 13 dB
            shorter on both seeds. Kept at 1 (docs/evaluation.md).
        stft_band_weight: weight of the band-energy term (0 = off; see ``model/losses.py``).
        stft_bands: frequency bands of the band-energy term.
        stft_band_spacing: "linear" (equal widths) or "log" (equal ratios from 40 Hz).
        stft_spectrum_weight: weight of the long-term-spectrum term (0 = off): the band
            term's bands, each averaged over the whole sound (see ``model/losses.py``).
            Tried at 1 on two seeds of `small`, not adopted: FAD equal, reconstructions
            1.3 and -0.3 dB louder, LSD or STFT distance worse (docs/evaluation.md).
        stft_ot_weight: weight of the spectral transport term (0 = off): per frame, the
            1-D Wasserstein distance between the normalised power spectra along log
            frequency (see ``model/losses.py``). Tried at 2 and 5 on `small` (seed 0),
            not adopted: FAD 116 and 122 against 106, fewer spectral lines (5.5 and 3.7
            per reconstruction against 9.2), 80-160 Hz 6 dB shorter (docs/evaluation.md).
        stft_ot_max_hz: the transport term compares only the bins under this (0 = the
            whole spectrum), at the FFT sizes with at least 8 of them, each example by its
            share of energy there: a drum body in the wrong octave is a distance the term
            measures, where the per-bin terms see no bin in common. With the body
            oscillators on, at 20 under 640 Hz (`small`, seeds 0 and 2, 2026-12-06): the
            runs diverged by step 1,000 (one decoder's toms at +36 dB): the term's gradient
            reached the encoder as strongly as all the others' together.
        body_transport_weight: weight of the body oscillators' own transport term (0 =
            off; needs ``model.body_oscillators``): the spectral transport distance under
            ``body_transport_max_hz`` of the reconstruction against its target, with its
            gradient reaching only the oscillators' head (z and the rest of the sound held
            fixed). It tunes their pitch, which the per-bin terms cannot
            (``tests/test_bodies.py``), and leaves encoder and decoder to the other terms.
            5 in `small` and `base`, beside the pitch term: it is what teaches the glide
            (at 20, one seed of two lost 17 FAD points).
        body_transport_max_hz: its cut-off (every built-in body's strike pitch is under 640 Hz).
        body_pitch_weight: weight of a term that tells the first body oscillator its pitch
            (0 = off; needs ``model.body_oscillators``): its resting pitch against the
            target's loudest frequency under ``body_pitch_max_hz``, squared log ratio, each
            example by its share of energy there (``losses.body_pitch_distance``). At 10 with z held
            fixed, the head on z scaled by 0.1 and the transport term at 20 on `small`
            (2026-12-06), the head learned the mean pitch only; at 10 with the head at
            full gain and ``body_pitch_to_encoder`` (the presets), every body's own
            (docs/evaluation.md).
        voice_pitch_weight: weight of the term that teaches the harmonic voice its pitch
            (used only with ``model.voice_harmonics``): per control frame, the voice's
            pitch against the target's own (YIN, ``model/pitch.py``), squared log ratio
            over the target's voiced frames. The only thing that moves the voice's pitch.
        body_pitch_to_encoder: the pitch term's gradient also reaches z (the encoder), so
            the latent keeps each body's pitch where the head can read it. A regression
            onto a measured pitch, not a sine's phase, so the encoder gets a bounded pull.
        body_pitch_max_hz: the pitch term looks for each target's pitch under this. At 500
            (the presets) every rim whose tone is over 500 Hz (a third of them) is taught
            499 Hz; at 640 the rims were no nearer their pitch and FAD was 1.4 to 5.7
            worse at four draws on two seeds (docs/evaluation.md).
        stft_texture_weight: weight of the texture term (0 = off): log magnitudes sorted
            within patches of 16 bins by 4 frames, compared (see ``model/losses.py``).
            At 2 (`small` and `base` since 2026-12-03; two seeds, two draws each): FAD 5
            to 20 lower, KID lower, cymbal partial lines back (19.8 and 11.7 lines per
            reconstruction against 5.3 and 9.2; real 21.5), but per-bin distances worse,
            the band-edge ring louder, and one seed 1.6 dB quieter with 80-320 Hz 5 to 11
            dB shorter (docs/evaluation.md).
        stft_texture_min_size: the texture term runs only at the STFT sizes from this
            one up (0 = all); each size's sort costs about the same, and small FFTs
            resolve no partial. Still divided by every size, so the large sizes keep
            their weight and the small sizes' share is dropped. At 512 (`small` since
            2026-12-04; its 3 largest of 6 sizes), two seeds, two draws each: FAD 8 to 13
            lower, KID lower at 3 of 4, every reconstruction distance nearer, 1.99 / 1.97
            steps/s against 1.86 / 1.79 (docs/evaluation.md). `base`: 1024, untried.
        stft_log_highpass_hz: the log and band terms hear nothing below this (0 = off;
            see ``MultiScaleSTFTLoss``); the linear term always hears everything. Tried
            at 25 Hz, not adopted: FAD 163 against 142, 15 % slower (docs/evaluation.md).
        dc_weight: weight of the DC term (``losses.dc_distance``; 0 = off).
        edge_weight: weight of the band-edge term (``losses.band_edge_distance``; 0 = off):
            the upper PQMF sub-bands' local means, where an offset rings on the band
            edges, matched to the target's in log magnitude. At 1 on `small`, seeds 0 and
            2 (2026-12-06): the ring goes, but by killing the deterministic branch (the
            noise 3 and 34 dB over it by step 500): FAD 113 and 170 against 86 and 81,
            no spectral lines left, seed 2's kicks gone (docs/evaluation.md).
        edge_window: sub-band samples per mean of the band-edge term (32: 23 ms in `small`).
        flatness_weight: weight of the flatness term (``losses.wave_flatness``; 0 = off):
            the spectral flatness of the decoder's deterministic part in the upper
            sub-bands, so that it makes the lines and leaves the band's noise to the
            noise branch. At 1 with the enveloped offset on `small`, seeds 0 and 2
            (2026-12-06): the noise branch lived on both (-4 and 0 dB), but FAD 79.9 and
            93.5 against 86.3 and 81.3, fewer lines in the sounds (docs/evaluation.md).
        flatness_fft: STFT size of the flatness terms, in sub-band samples (64: 46 ms
            and 21.5 Hz bins in `small`).
        flatness_match_weight: weight of the flatness-matching term
            (``losses.flatness_distance``; 0 = off): the reconstruction's upper
            sub-bands as peaked, frame by frame, as the target's. At 1 on top of the
            above: every class's flatness as the data's on seed 0, but FAD 84.2 and
            108.4 (seed 2's noise branch died) against 86.3 and 81.3 (docs/evaluation.md).
        wave_weight: weight of the low-band waveform term (``losses.low_band_wave_distance``;
            0 = off), which compares the first ``wave_ms`` below ``wave_lowpass_hz`` sample by sample.
            Tried at 1 on two seeds of `small`: FAD 4 to 9 points lower, but the bodies it
            was meant to line up came out smaller, and each seed lost part of its low end
            (rumble under 20 Hz, or 80-160 Hz 12 dB short; docs/evaluation.md). At 0.3
            the low end suffered as much and FAD gained on one seed only.
        wave_highpass_hz: the waveform term hears nothing below this (0 = down to 0 Hz).
            At 30 Hz with weight 1 (`small` and `base` since 2026-12-02; two seeds, two
            draws each): FAD 3 to 5 lower and KID lower at all four, most of weight 1's
            rumble gone, but 80-160 Hz 4 to 9 dB short and the reconstructions' STFT
            distance 0.03 to 0.07 worse (docs/evaluation.md).
        beta: weight of the KL term after warm-up.
        beta_warmup_steps: KL weight rises linearly from 0 to ``beta`` over these steps.
        free_bits: nats per latent dimension that the KL may spend without penalty; the
            budget is on the total (``free_bits * latent_dim`` nats, flows included), so a
            posterior always keeps that much information (fights posterior collapse).
        adversarial_start: step at which discriminators and the adversarial loss start.
        adv_weight, feature_matching_weight: generator loss weights in the second stage.
        use_mpd, use_mrd, use_msd: which discriminators run.
        mpd_periods: periods of the multi-period discriminator.
        mrd_fft_sizes: FFT sizes of the multi-resolution multi-band spectral discriminator.
        disc_crop: the discriminators see a window of this many samples (0 = the whole
            one-shot); half the windows start at the onset.
    """

    stft_scales: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64])
    stft_linear_weight: float = 1.0
    stft_log_weight: float = 1.0
    stft_band_weight: float = 0.0
    stft_bands: int = 16
    stft_band_spacing: str = "linear"
    stft_spectrum_weight: float = 0.0
    stft_ot_weight: float = 0.0
    stft_ot_max_hz: float = 0.0
    body_transport_weight: float = 0.0
    body_transport_max_hz: float = 640.0
    body_pitch_weight: float = 0.0
    body_pitch_to_encoder: bool = False
    body_pitch_max_hz: float = BODY_PITCH_MAX_HZ
    voice_pitch_weight: float = 10.0
    stft_texture_weight: float = 0.0
    stft_texture_min_size: int = 0
    stft_log_highpass_hz: float = 0.0
    dc_weight: float = 0.0
    edge_weight: float = 0.0
    edge_window: int = 32
    flatness_weight: float = 0.0
    flatness_fft: int = 64
    flatness_match_weight: float = 0.0
    wave_weight: float = 0.0
    wave_lowpass_hz: float = 500.0
    wave_ms: float = 60.0
    wave_highpass_hz: float = 0.0
    # The reconstruction loss is a mean over bins (~2-3) while the KL is a sum over the
    # latent, and Adam normalises each parameter's step: however small beta is, the KL's
    # steady pull moves the encoder's heads at full speed wherever the reconstruction's
    # gradient is weak. Measured on small: beta 0.02 with 0.1 free nats per dimension held
    # the posterior at the free-nats floor and every hit decoded alike. A budget of 1 nat
    # per dimension (128 nats) keeps the KL silent while the decoder learns to use z.
    beta: float = 0.003
    beta_warmup_steps: int = 2000
    free_bits: float = 1.0
    adversarial_start: int = 20000
    adv_weight: float = 1.0
    feature_matching_weight: float = 10.0
    use_mpd: bool = True
    use_mrd: bool = True
    use_msd: bool = False
    mpd_periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    mrd_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512])
    disc_crop: int = 0


@dataclass
class AugmentConfig:
    """Training-time augmentations, each switchable.

    Args:
        offset_jitter_ms: random shift of the onset (positive = later, padded with zeros).
        allpass_prob: probability of random all-pass phase mangling.
        dequantize: add uniform noise of one 16-bit LSB.
        pitch_shift_semitones: max |shift| for pitch shift by resampling (0 = off).
        pitch_shift_prob: probability of applying the pitch shift.
        gain_db: max |random gain| in dB (0 = off).
        encoder_only: offset jitter and all-pass change only the encoder's input; the
            reconstruction target keeps its onset at sample 0 and its phase (False: the
            target gets them too, as before; see ``model/augment.py``).
    """

    offset_jitter_ms: float = 5.0
    allpass_prob: float = 0.5
    dequantize: bool = True
    pitch_shift_semitones: float = 2.0
    pitch_shift_prob: float = 0.3
    gain_db: float = 3.0
    encoder_only: bool = True


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Args:
        batch_size, lr, betas, weight_decay: AdamW settings (generator and discriminator).
        lr_decay: multiplicative per-step exponential decay (1.0 = constant).
        wave_fade_in_steps: the decoder's deterministic part of the upper sub-bands (all
            but the lowest) is scaled from 0 at step 0 to 1 at this step (0 = off, as
            before), so the noise branch holds the band interiors before the
            deterministic part can take them: the two compete and whichever holds a band
            early keeps it (docs/evaluation.md). Training only: a finished model plays
            both parts in full. At 1000 with ``model.wave_zero_mean`` "upper" (flat) on
            `small` (2026-12-06): the noise branch lived on seed 0 (-10 dB) and died on
            seed 2 (-58 dB); FAD 106.7 and 123.4 against 86.3 and 81.3. Not adopted.
        body_fade_in_start, body_fade_in_steps: the body oscillators' output is silent
            until the first step and rises linearly to full over the next ones (steps 0 =
            off, as before): the decoder learns the bodies itself first, and the
            oscillators join once their pitch term has taught them. The level is saved
            with the weights, so a checkpoint from mid-fade plays as trained.
        lr_warmup_steps: the generator's learning rate rises linearly from ``lr / steps``
            to ``lr`` over these first steps (0 = none). Without it one `small` run in
            three tried blew up within 150 steps and never recovered (docs/evaluation.md).
        grad_clip: gradient norm clipping (0 = off).
        max_steps: default step budget of ``flowshot train``.
        val_every: validation (and audio/PNG writing) every this many steps.
        ckpt_every: checkpoint every this many steps.
        val_fraction: share of files held out for validation (by file hash).
        num_workers: data-loader worker processes.
        seed: global seed (initialisation, data order, augmentation).
        builtin_size: examples generated for ``builtin:drums``.
        builtin_seed: seed of the generated ``builtin:drums`` set; None follows ``seed``.
            Set it to repeat a run with another ``seed`` on the very same sounds, which is
            how the spread between training runs is measured.
    """

    batch_size: int = 16
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    lr_warmup_steps: int = 0
    wave_fade_in_steps: int = 0
    body_fade_in_start: int = 0
    body_fade_in_steps: int = 0
    grad_clip: float = 10.0
    max_steps: int = 20000
    val_every: int = 500
    ckpt_every: int = 500
    val_fraction: float = 0.1
    num_workers: int = 0
    seed: int = 0
    builtin_size: int = 2000
    builtin_seed: int | None = None

    def data_seed(self) -> int:
        return self.seed if self.builtin_seed is None else self.builtin_seed


@dataclass
class FlowshotConfig:
    """Everything needed to rebuild and train a flowshot model."""

    preset: str = "small"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "FlowshotConfig":
        m, a = self.model, self.audio
        if len(m.ratios) != len(m.channels) - 1:
            raise ValueError(f"model.ratios needs {len(m.channels) - 1} entries (one per stage), got {m.ratios}")
        if m.pqmf_bands < 1 or m.pqmf_bands & (m.pqmf_bands - 1):
            raise ValueError(f"model.pqmf_bands must be a power of two, got {m.pqmf_bands}")
        if a.length % m.hop:
            raise ValueError(f"audio.length {a.length} must be divisible by the model hop {m.hop} (bands x ratios)")
        if m.decoder_preroll < 0:
            raise ValueError(f"model.decoder_preroll must be >= 0 bottleneck frames, got {m.decoder_preroll}")
        if m.out_kernel < 1 or m.out_kernel % 2 == 0:
            raise ValueError(f"model.out_kernel must be odd (same padding), got {m.out_kernel}")
        if not 0.0 <= m.highpass_hz < a.sample_rate / (4 * m.pqmf_bands):
            raise ValueError(f"model.highpass_hz must be in [0, {a.sample_rate / (4 * m.pqmf_bands):g}) Hz "
                             f"(half the lowest sub-band), got {m.highpass_hz}")
        if not 0.0 <= m.signal_highpass_hz < a.sample_rate / (4 * m.pqmf_bands):
            raise ValueError(f"model.signal_highpass_hz must be in [0, {a.sample_rate / (4 * m.pqmf_bands):g}) Hz "
                             f"(half a sub-band), got {m.signal_highpass_hz}")
        if not 1 <= m.envelope_smooth <= 64:
            raise ValueError(f"model.envelope_smooth must be 1 (off) to 64 sub-band samples, got {m.envelope_smooth}")
        if not 1 <= m.noise_splits <= 16:
            raise ValueError(f"model.noise_splits must be 1 to 16, got {m.noise_splits}")
        if not 1 <= m.highpass_bands <= m.pqmf_bands:
            raise ValueError(f"model.highpass_bands must be 1 to pqmf_bands ({m.pqmf_bands}), got {m.highpass_bands}")
        if not 0.0 <= m.render_boost_max_db <= 40.0:
            raise ValueError(f"model.render_boost_max_db must be 0 (never raise a one-shot) to 40 dB, "
                             f"got {m.render_boost_max_db:g}")
        if not 1 <= m.highpass_order <= 8:
            raise ValueError(f"model.highpass_order must be 1 (one-pole) to 8, got {m.highpass_order}")
        kinds = m.upsample_kinds()
        if any(k not in UPSAMPLE_KINDS for k in kinds) or len(kinds) != len(m.ratios):
            raise ValueError(f"model.upsample must be {', '.join(UPSAMPLE_KINDS)} or one of them per stage "
                             f"({len(m.ratios)}, comma-separated), got {m.upsample!r}")
        if m.wave_zero_mean not in WAVE_ZERO_MEAN:
            raise ValueError(f"model.wave_zero_mean must be one of {', '.join(WAVE_ZERO_MEAN)}, got {m.wave_zero_mean!r}")
        if m.wave_mean_shape not in WAVE_MEAN_SHAPES:
            raise ValueError(f"model.wave_mean_shape must be one of {', '.join(WAVE_MEAN_SHAPES)}, got {m.wave_mean_shape!r}")
        if m.latent_dim < 2 or m.latent_dim % 2:
            raise ValueError(f"model.latent_dim must be even and >= 2, got {m.latent_dim}")
        if self.loss.stft_band_spacing not in ("linear", "log"):
            raise ValueError(f"loss.stft_band_spacing must be 'linear' or 'log', got {self.loss.stft_band_spacing!r}")
        if self.loss.edge_weight > 0 and m.pqmf_bands < 2:
            raise ValueError("loss.edge_weight needs PQMF sub-bands (model.pqmf_bands >= 2): without them there are no band edges")
        if self.loss.edge_weight > 0 and not 1 <= self.loss.edge_window <= a.length // m.pqmf_bands:
            raise ValueError(f"loss.edge_window must be 1 to {a.length // m.pqmf_bands} sub-band samples "
                             f"(the clip's length over pqmf_bands), got {self.loss.edge_window}")
        flatness_on = self.loss.flatness_weight > 0 or self.loss.flatness_match_weight > 0
        if flatness_on and m.pqmf_bands < 2:
            raise ValueError("loss.flatness_weight and loss.flatness_match_weight need PQMF sub-bands "
                             "(model.pqmf_bands >= 2): they score the upper ones")
        if flatness_on and not 2 <= self.loss.flatness_fft <= a.length // m.pqmf_bands:
            raise ValueError(f"loss.flatness_fft must be 2 to {a.length // m.pqmf_bands} sub-band samples "
                             f"(the clip's length over pqmf_bands), got {self.loss.flatness_fft}")
        if self.train.body_fade_in_start < 0 or self.train.body_fade_in_steps < 0:
            raise ValueError("train.body_fade_in_start and train.body_fade_in_steps must be >= 0 steps, got "
                             f"{self.train.body_fade_in_start} and {self.train.body_fade_in_steps}")
        if m.body_oscillators > 0 and not m.body_input_gain > 0:
            raise ValueError(f"model.body_input_gain must be > 0, got {m.body_input_gain}")
        if self.train.wave_fade_in_steps < 0:
            raise ValueError(f"train.wave_fade_in_steps must be >= 0 steps (0 = off), got {self.train.wave_fade_in_steps}")
        if self.loss.stft_texture_min_size > max(self.loss.stft_scales):
            raise ValueError(f"loss.stft_texture_min_size {self.loss.stft_texture_min_size} is above every STFT size "
                             f"{self.loss.stft_scales}: the texture term would never run; lower it or set 0")
        if m.body_oscillators < 0:
            raise ValueError(f"model.body_oscillators must be >= 0 (0 = none), got {m.body_oscillators}")
        top = a.sample_rate / 16  # the strike pitch, up to 8 times the resting one, under Nyquist
        if m.body_oscillators > 0 and not 0 < m.body_min_hz < m.body_max_hz <= top:
            raise ValueError(f"model.body_min_hz and model.body_max_hz must satisfy 0 < min < max <= {top:g} Hz "
                             f"(a sixteenth of the sample rate), got {m.body_min_hz:g} and {m.body_max_hz:g}")
        body_terms = [f"loss.{key}" for key in ("body_transport_weight", "body_pitch_weight")
                      if getattr(self.loss, key) > 0]
        if body_terms and m.body_oscillators == 0:
            # Named all at once: `small` runs both, and its oscillator goes only with both off.
            raise ValueError(f"{' and '.join(body_terms)} without body oscillators: these terms tune the "
                             f"oscillators and nothing else; --set model.body_oscillators=1, or turn them off "
                             f"with {' '.join(f'--set {key}=0' for key in body_terms)}")
        if self.loss.body_pitch_weight > 0 and not 20.0 < self.loss.body_pitch_max_hz <= a.sample_rate / 2:
            raise ValueError(f"loss.body_pitch_max_hz must be over 20 Hz (where the pitch search starts) and at most "
                             f"{a.sample_rate / 2:g} Hz (half the sample rate), got {self.loss.body_pitch_max_hz:g}")
        if m.voice_harmonics < 0:
            raise ValueError(f"model.voice_harmonics must be >= 0 (0 = none), got {m.voice_harmonics}")
        if m.voice_harmonics > 0:
            if not 20.0 <= m.voice_min_hz < m.voice_max_hz < a.sample_rate / 4:
                raise ValueError(f"model.voice_min_hz and model.voice_max_hz must satisfy 20 <= min < max < "
                                 f"{a.sample_rate / 4:g} Hz (a quarter of the sample rate), got "
                                 f"{m.voice_min_hz:g} and {m.voice_max_hz:g}")
            if not 1.0 <= m.voice_frame_ms <= 50.0:
                raise ValueError(f"model.voice_frame_ms must be 1 to 50 ms, got {m.voice_frame_ms:g}")
            if not (1 <= m.voice_smooth <= 31 and m.voice_smooth % 2 == 1):
                raise ValueError(f"model.voice_smooth must be an odd number of frames from 1 (off) to 31, "
                                 f"got {m.voice_smooth}")
            if m.voice_channels < 1:
                raise ValueError(f"model.voice_channels must be >= 1, got {m.voice_channels}")
            if not self.loss.voice_pitch_weight > 0:
                raise ValueError(f"loss.voice_pitch_weight is {self.loss.voice_pitch_weight:g}: nothing else teaches "
                                 "the voice its pitch; set it over 0 (10 is the default) or turn the voice off "
                                 "with --set model.voice_harmonics=0")
        # Each transport cut-off is checked only where its term runs: unused, it may be anything.
        for key, on in (("stft_ot_max_hz", self.loss.stft_ot_weight > 0),
                        ("body_transport_max_hz", self.loss.body_transport_weight > 0)):
            hz = getattr(self.loss, key)
            if not on:
                continue
            if not 0.0 <= 2 * hz <= a.sample_rate:
                raise ValueError(f"loss.{key} must be 0 (whole spectrum) to {a.sample_rate / 2:g} Hz "
                                 f"(half the sample rate), got {hz:g}")
            if not any(transport_bins(hz, n, a.sample_rate) for n in self.loss.stft_scales):
                raise ValueError(f"loss.{key} {hz:g} Hz holds fewer than {OT_MIN_BINS} bins at every STFT size "
                                 f"{self.loss.stft_scales}: raise it or set 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FlowshotConfig":
        """Rebuild from ``to_dict`` output; unknown keys are an error, missing keys take defaults."""
        return _from_dict(cls, data).validate()

    def replace(self, **overrides: Any) -> "FlowshotConfig":
        """Copy with dotted overrides, e.g. ``replace(**{"model.flows": False})``."""
        d = self.to_dict()
        for key, value in overrides.items():
            node = d
            *path, last = key.split(".")
            for p in path:
                node = node[p]
            if last not in node:
                raise KeyError(f"unknown config key {key!r}")
            node[last] = value
        return FlowshotConfig.from_dict(d)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        sub = _SUBCONFIGS.get((cls, name))
        kwargs[name] = _from_dict(sub, value) if sub is not None else value
    return cls(**kwargs)


_SUBCONFIGS = {
    (FlowshotConfig, "audio"): AudioConfig,
    (FlowshotConfig, "model"): ModelConfig,
    (FlowshotConfig, "loss"): LossConfig,
    (FlowshotConfig, "augment"): AugmentConfig,
    (FlowshotConfig, "train"): TrainConfig,
}


# A fourth-order 25 Hz high-pass on the finished model's output, not in training: it takes
# the slow offset under every decoded sound down by 30 dB (energy under 20 Hz: median -25
# -> -35 dB of the sound, worst -10 -> -24 dB) at no measurable cost (FAD 142 -> 145, draw
# noise ~9; LSD 5.55 -> 5.51 dB). Trained behind it, decoders scored FAD 190-200
# (docs/evaluation.md).
#
# A high-pass on the upper sub-bands' signals before their envelopes, also only when
# playing: their slow offset, shaped by the envelope, rang on the band edges (the multiples
# of 1,378 Hz in `small` and `base`) +20 to +27 dB over the spectrum around them in 78 to
# 99 % of all sounds; with it in 6 to 45 %, the medians 1 dB under to 4 dB over the data's
# (docs/evaluation.md).
OUTPUT_HIGHPASS = {"highpass_hz": 25.0, "highpass_order": 4, "highpass_in_training": False, "signal_highpass_hz": 25.0}
# Every training example is normalised, so every one-shot played is too, raised by up to
# 12 dB: the models trained on the Hydrogen kits peaked 4 to 5 dB under their data.
OUTPUT_LEVEL = {"render_boost_max_db": 12.0}
# The first 60 ms below 500 Hz compared sample by sample, leaving out what is under 30 Hz:
# at 0 Hz the term paid the decoder for offsets and rumble (docs/evaluation.md).
LOW_BAND_WAVE = {"wave_weight": 1.0, "wave_highpass_hz": 30.0}
# One body oscillator, its head reading z at full gain, taught each body's pitch with the
# encoder keeping that pitch in z, silent until step 750 and full from 1,500: on `small`
# (two seeds) held-out kicks and toms within a semitone 82-86 % and 71-75 % of the time
# against 7-29 % and 7-11 %, at 9-11 and 16-17 distinct pitches against 2-4 and 4-6;
# FAD equal, KID 0.02 to 0.2 worse, LSD 0.13-0.18 dB better. Its glide (strike pitch and
# time) is taught by its own transport term at 5: the glides take the data's shape, the
# oscillator stays on the kicks on every seed (one of three lost them without it), rims
# get their tone; FAD better on two seeds of three, 7-9 worse on the third. Its pitch
# reaches 640 Hz, not 400, so it can play the rims' tone (380-560 Hz) where it had sat at
# 400: rims within a semitone 28-72 % against 24-40 %, FAD 4 to 9 better at all six
# draws (three seeds). Its sine saturated by a drive from z, as the data's kicks and toms
# are: the drives learned sit in the data's range (kicks 2.0-3.2, toms 1.4-2.3), the kicks'
# peaks come within 0.7 dB of the real ones' (from 4-5 dB over), FAD 1.7 to 16.8 better
# at all six draws (three seeds; docs/evaluation.md).
BODY_MODEL = {"body_oscillators": 1, "body_input_gain": 1.0, "body_max_hz": 640.0, "body_drive": True}
BODY_LOSS = {"body_pitch_weight": 10.0, "body_pitch_to_encoder": True, "body_transport_weight": 5.0}
BODY_TRAIN = {"body_fade_in_start": 750, "body_fade_in_steps": 750}


def tiny() -> FlowshotConfig:
    """Seconds per hundred steps on a CPU: for tests and CI, not for listening."""
    return FlowshotConfig(
        preset="tiny",
        audio=AudioConfig(sample_rate=8000, length=2048),
        model=ModelConfig(
            pqmf_bands=4,
            channels=[16, 32, 64],
            ratios=[4, 4],
            dilations=[1, 3],
            latent_dim=16,
            posterior_flow_depth=2,
            prior_flow_depth=2,
            flow_hidden=32,
            context_dim=16,
            decoder_preroll=1,
            upsample="linear,balanced",  # the small preset's kinds, so tests cover both
            **OUTPUT_HIGHPASS,
            **OUTPUT_LEVEL,
        ),
        loss=LossConfig(
            stft_scales=[512, 256, 128, 64],
            beta_warmup_steps=100,
            adversarial_start=150,
            mpd_periods=[2, 3, 5, 7, 11],
            mrd_fft_sizes=[256, 128],
        ),
        augment=AugmentConfig(pitch_shift_prob=0.0),
        train=TrainConfig(batch_size=8, lr=2e-3, max_steps=300, val_every=100, ckpt_every=100, builtin_size=200),
    ).validate()


def small() -> FlowshotConfig:
    """22.05 kHz, 0.74 s: trains usefully within an hour on a 2-core CPU."""
    # 16 bands and a narrow decoder near the sub-band rate: ~80 MFLOPs per one-shot
    # (benchmarks/decoder_speed.py), so a hit renders in a few ms on one CPU thread.
    return FlowshotConfig(
        preset="small",
        # One pre-roll frame: without it every hit started ~2.5 ms late (docs/evaluation.md).
        # Linear up-sampling: the polyphase up-sampler left a tone at 86 Hz and kicks 16 dB
        # short at 40-80 Hz; FAD 152 -> 142 at the end of stage 1. The last stage balanced
        # polyphase: linear alone left a hole at 160-320 Hz (recon -14 dB, now -1 to -4)
        # and scored FAD 162 where two seeds of this one scored 131-138; balanced every
        # stage wrote an 86 Hz comb of lines into the sounds (docs/evaluation.md).
        model=ModelConfig(pqmf_bands=16, channels=[32, 64, 128, 256], decoder_channels=[256, 96, 48, 24],
                          decoder_preroll=1, upsample="linear,linear,balanced", **OUTPUT_HIGHPASS, **OUTPUT_LEVEL,
                          **BODY_MODEL),
        # Warm-up: the same seed without it blew up at step 70 (docs/evaluation.md).
        train=TrainConfig(lr_warmup_steps=300, **BODY_TRAIN),
        # Band-energy term: at the end of stage 1 FAD 171 -> 154 and 166 -> 151 (two seeds),
        # KID 2.6 -> 1.6; after ~180 adversarial steps about equal. Log-spaced bands: FAD
        # 6 to 12 lower at three draws over two seeds, reconstructions nearer by STFT
        # distance and LSD in both (docs/evaluation.md). The low-band waveform term,
        # high-passed at 30 Hz: FAD 103-112 against 107-117 and lower KID at two draws of
        # two seeds, octave balance nearer overall, 80-160 Hz shorter (docs/evaluation.md).
        # Texture term: FAD 101/95 and 93/88 against 106/103 and 112/107 (two seeds, two
        # draws), the cymbals' partial lines back in the reconstructions (docs/evaluation.md).
        # ... at the three largest FFT sizes only: FAD 86/91 and 81/83 against 99/99 and
        # 90/94, every reconstruction distance nearer, 7-10 % more steps per second.
        loss=LossConfig(disc_crop=8192, stft_band_weight=2.0, stft_band_spacing="log", stft_texture_weight=2.0,
                        stft_texture_min_size=512, **LOW_BAND_WAVE, **BODY_LOSS),
    ).validate()


def base() -> FlowshotConfig:
    """44.1 kHz, 1.02 s: the full-quality instrument."""
    return FlowshotConfig(
        preset="base",
        audio=AudioConfig(sample_rate=44100, length=45056),
        # Decoder ~140 MFLOPs per one-shot: channels halve as the rate quadruples, so each
        # stage costs the same and the sub-band-rate stage stays cheap.
        # Kernel-3 output conv: the kernel-7 one at the 2,816-frame sub-band rate was the
        # single most expensive op of a render (1.4 ms of ~8 on one thread).
        model=ModelConfig(pqmf_bands=16, channels=[32, 64, 128, 256, 512], ratios=[4, 4, 4, 4],
                          decoder_channels=[256, 128, 64, 32, 16], out_kernel=3, decoder_preroll=1,
                          upsample="linear,linear,linear,balanced", **OUTPUT_HIGHPASS, **OUTPUT_LEVEL, **BODY_MODEL),
        # Log-spaced bands as small's; at 44.1 kHz an equal-width band is 1,378 Hz wide.
        # The texture term at the FFT sizes whose bins are as wide as small's (10.8-43 Hz).
        loss=LossConfig(stft_scales=[4096, 2048, 1024, 512, 256, 128, 64], mrd_fft_sizes=[4096, 2048, 1024],
                        stft_band_weight=2.0, stft_band_spacing="log", stft_texture_weight=2.0,
                        stft_texture_min_size=1024, **LOW_BAND_WAVE, **BODY_LOSS),
        train=TrainConfig(batch_size=16, max_steps=200000, lr_warmup_steps=300, **BODY_TRAIN),
    ).validate()


PRESETS = {"tiny": tiny, "small": small, "base": base}


def preset(name: str) -> FlowshotConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
