"""The harmonic voice: a pitch that moves and harmonics whose levels move, made from z.

The conv decoder makes a spoken word as a steady, blurred spectrum shaped like the word:
neither the pitch nor the formants move within a syllable (docs/training.md, stop 39).
Its sub-bands are 689 Hz wide in `small` and its stages share one set of weights across
time, so a harmonic series whose spacing glides is far from anything it makes cheaply.
A harmonic oscillator makes it for free, as in DDSP (Engel et al., 2020): per frame of
``hop`` samples a small conv net from z gives a pitch f0, a level A and a distribution
c_k over K harmonics, linearly interpolated to the sample rate, and

    phi(t) = 2 pi cumsum(f0(t)) / sample_rate         (in closed form per frame: ``cycles``)
    y(t)   = A(t) sum over k of c_k(t) sin(k phi(t))   (per frame, two matrix products)

Harmonics at or over half the sample rate get no share (c is renormalised without them),
so no z aliases. The formants are the distribution's shape, free per frame. The output adds
to the decoder's after PQMF synthesis, as the body oscillators' does; the decoder still
makes the consonants, the breath and whatever is not harmonic.

The pitch is taught by ``model/pitch.py``'s tracker (``loss.voice_pitch_weight``) and held
out of every other term in training (``hold_pitch``): a harmonic's phase is the integral of
the pitch, so per-bin spectral gradients reach it as noise that grows with time.
Pure tensor maths of z: TorchScript and ONNX take it as it is.
"""

import math

import torch
from torch import Tensor, nn

from flowshot.model.bodies import log_range
from flowshot.model.decoder import mod_sigmoid, smooth, triangle
from flowshot.model.layers import ResidualUnit, Snake, wn_conv1d

# Initial level logit: mod_sigmoid(-2) = 0.015 (-36 dB): the levels have a gradient from the
# first step, and a voice whose pitch is still untaught does not buzz over every sound.
LEVEL_INIT_BIAS = -2.0


class VoiceNet(nn.Module):
    """z [B,D] -> controls [B, 2 + K, F]: pitch logit, level logit, K harmonic logits per frame."""

    def __init__(self, latent_dim: int, harmonics: int, frames: int, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.frames = int(frames)
        self.project = nn.Linear(latent_dim, channels * frames)
        self.stage = nn.Sequential(ResidualUnit(channels, 1), ResidualUnit(channels, 3), Snake(channels))
        self.out = wn_conv1d(channels, 2 + harmonics, 3, padding=1)
        with torch.no_grad():
            self.out.bias.zero_()  # mid-range pitch (the range's geometric middle), even harmonics
            self.out.bias[1] = LEVEL_INIT_BIAS

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).reshape(z.shape[0], self.channels, self.frames)
        return self.out(self.stage(h))


class HarmonicVoice(nn.Module):
    """z [B,D] -> the voice's audio [B,1,L].

    Args:
        latent_dim: D.
        harmonics: K (0 = none: silence, no weights, so checkpoints without it load unchanged).
        sample_rate: Hz. length: L, samples.
        hop: samples between control frames (frame n sits at sample ``n * hop``).
        min_hz, max_hz: the pitch's range (log scale).
        channels: width of the control net.
        smooth: every control is averaged over this many frames (a centred triangle, ends
            extended; 1 = off) before its non-linearity, in training too.
    """

    def __init__(self, latent_dim: int, harmonics: int, sample_rate: int, length: int, hop: int,
                 min_hz: float, max_hz: float, channels: int = 64, smooth: int = 1) -> None:
        super().__init__()
        if harmonics < 0:
            raise ValueError(f"voice harmonics must be >= 0, got {harmonics}")
        if not 0 < min_hz < max_hz < sample_rate / 2:
            raise ValueError(f"voice pitch range must satisfy 0 < min_hz < max_hz < {sample_rate / 2:g} Hz, "
                             f"got {min_hz:g} to {max_hz:g}")
        self.count = int(harmonics)
        self.sample_rate = float(sample_rate)
        self.length = int(length)
        self.hop = int(hop)
        # Enough frames that every sample lies between two.
        self.frames = int(math.ceil(length / hop)) + 1
        self.min_hz = float(min_hz)
        self.max_hz = float(max_hz)
        # Zero or one net: TorchScript iterates over the list, and an empty one leaves no keys.
        nets = [VoiceNet(latent_dim, harmonics, self.frames, channels)] if harmonics > 0 else []
        self.nets = nn.ModuleList(nets)
        self.register_buffer("ks", torch.arange(1, harmonics + 1, dtype=torch.float32).reshape(1, -1, 1),
                             persistent=False)
        self.register_buffer("steps", torch.arange(self.hop, dtype=torch.float32), persistent=False)
        # The net makes each frame's controls from its own weights, and on held-out sounds
        # their errors differ frame to frame: levels that flicker every 10 ms break the
        # voice's periodicity (a tracker found a trained voice voiced on 30 % of the real
        # voice's frames, 80 % with its levels averaged over three; docs/evaluation.md).
        if smooth < 1 or smooth % 2 == 0:
            raise ValueError(f"voice smoothing must be an odd number of frames (1 = off), got {smooth}")
        self.smooth_width = int(smooth)
        taps = triangle((smooth + 1) // 2)
        self.register_buffer("smoother", (taps / taps.sum()).reshape(1, 1, -1).repeat(harmonics + 2, 1, 1),
                             persistent=False)

    def controls(self, z: Tensor) -> Tensor:
        """z [B,D] -> [B, 2 + K, F] logits (zeros, [B, 2, F], without harmonics), smoothed
        over ``smooth`` frames."""
        out = z.new_zeros(z.shape[0], 2 + self.count, self.frames)
        for net in self.nets:
            out = net(z)
        if self.smooth_width > 1:
            out = smooth(out, self.smoother.to(out.dtype))
        return out

    def frame_pitch(self, z: Tensor) -> Tensor:
        """z [B,D] -> the pitch at each frame [B,F], Hz."""
        return log_range(self.controls(z)[:, 0], self.min_hz, self.max_hz)

    def forward(self, z: Tensor, hold_pitch: bool = False) -> Tensor:
        """z [B,D] -> [B,1,L]. ``hold_pitch``: no gradient reaches the pitch (training)."""
        if self.count == 0:
            return z.new_zeros(z.shape[0], 1, self.length)
        p = self.controls(z)
        pitch = log_range(p[:, 0], self.min_hz, self.max_hz)  # [B,F]
        if hold_pitch:
            pitch = pitch.detach()
        audible = (self.ks * pitch.unsqueeze(1) < 0.5 * self.sample_rate).to(p.dtype)  # [B,K,F]
        share = torch.softmax(p[:, 2:], dim=1) * audible
        share = share / share.sum(dim=1, keepdim=True).clamp_min(1e-7)
        levels = mod_sigmoid(p[:, 1:2]) * share  # [B,K,F]
        # Between frames n and n + 1 a harmonic's level is a_n + (a_{n+1} - a_n) r / hop,
        # so the sum over harmonics is two small matrix products per frame, one with the
        # levels and one with their steps, and no [B,K,L] tensor of levels is made.
        batch, segments = z.shape[0], self.frames - 1
        phase = (2.0 * math.pi) * self.cycles(pitch).reshape(batch, segments, 1, self.hop)
        sines = torch.sin(self.ks.to(p.dtype).reshape(1, 1, -1, 1) * phase)  # [B,F-1,K,hop]
        start = levels[..., :-1].transpose(1, 2).unsqueeze(2)  # [B,F-1,1,K]
        step = (levels[..., 1:] - levels[..., :-1]).transpose(1, 2).unsqueeze(2)
        ramp = self.steps.to(p.dtype) / self.hop
        y = torch.matmul(start, sines) + torch.matmul(step, sines) * ramp  # [B,F-1,1,hop]
        return y.reshape(batch, 1, -1)[..., : self.length]

    def cycles(self, pitch: Tensor) -> Tensor:
        """Frame pitches [B,F] (Hz) -> the phase in cycles, wrapped to [0, 1), per sample
        [B, F-1, hop] (sample n hop + r at [n, r]; the sound is the first L): the running
        sum over samples of the pitch, linearly interpolated between frames, over the
        sample rate. Summed in closed form within each frame and in float64 across
        frames, so the phase is as exact as the pitch: a float32 running sum over a second
        of samples reaches thousands of radians and keeps them only to 2e-4, which a 32nd
        harmonic makes 8e-3 rad."""
        start, slope = pitch[:, :-1].unsqueeze(-1), (pitch[:, 1:] - pitch[:, :-1]).unsqueeze(-1)  # [B,F-1,1]
        r = self.steps.to(pitch.dtype)  # 0 .. hop - 1
        # Sample n hop + r: sum over r' <= r of start_n + slope_n r' / hop.
        within = ((r + 1.0) * start + slope * (r * (r + 1.0) / (2.0 * self.hop))) / self.sample_rate
        total = (self.hop * start + slope * ((self.hop - 1) / 2.0)) / self.sample_rate  # [B,F-1,1]
        before = torch.cumsum(total.double(), dim=1) - total.double()
        before = (before - torch.floor(before)).to(pitch.dtype)
        turns = before + within
        return turns - torch.floor(turns)
