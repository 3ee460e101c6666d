"""Body oscillators: a drum's pitched body as damped, gliding sines made from z.

A conv decoder that makes a whole one-shot from one latent has no oscillator whose
pitch z can set: it builds a body's sine out of its layers' fixed responses, and
trained `small` decoders play every body at one of a handful of pitches (held-out toms
of 76 to 253 Hz came back at 66, 94, 249 or 277 Hz, up to 24 dB short at their own
pitch; ``docs/evaluation.md``, ``benchmarks/body_pitch.py``). `small` and `base` carry
one, taught each body's pitch in training (``loss.body_pitch_weight``); tuned by the
transport term alone they failed (docs/evaluation.md). Kicks and toms are, to a first
approximation, one sine whose pitch falls from a strike pitch to a resting one while it
decays. Here a linear head maps z to that, per oscillator, and the sine is computed in
closed form:

    f(t)   = f_end + (f_start - f_end) exp(-t / glide)
    phi(t) = 2 pi (f_end t + (f_start - f_end) glide (1 - exp(-t / glide))) + phase
    y(t)   = sum over oscillators of amp exp(-t / decay) sin(phi(t))

or, with drive (``model.body_drive``), each sine saturated after its envelope, as an
analogue kick's VCA overdrives it:

    y(t)   = sum over oscillators of amp tanh(d exp(-t / decay) sin(phi(t))) / tanh(d)

The drive's odd harmonics glide with the pitch, which the conv decoder cannot make
(its kicks lacked the squared-off cycles of the data's, ``benchmarks/body_waveforms.py``);
dividing by tanh(d) keeps a unit sine's peak at amp whatever d is.

Each parameter is squashed into a musical range (pitch ``min_hz`` to ``max_hz`` on a
log scale, strike pitch 1 to 8 times the resting one, glide 3 to 150 ms, decay 15 ms to
2 s, drive 0.1 to 5), so no z makes a sound outside it. The output adds to the decoder's
own, after PQMF synthesis: the decoder still makes the attack, the noise and whatever the
sines cannot. Pure tensor maths of z, so TorchScript and ONNX take it as it is.
"""

import math

import torch
from torch import Tensor, nn

from flowshot.model.decoder import mod_sigmoid

# Ranges each squashed parameter spans: (low, high), mapped log-linearly.
GLIDE_RATIO = (1.0, 8.0)
GLIDE_S = (0.003, 0.15)
DECAY_S = (0.015, 2.0)
# tanh(0.1 x) / tanh(0.1) is a sine to within 0.3 %; at 5 it is nearly square. A zero
# logit starts at 0.7, mild (a unit sine's half-amplitude point sits at 0.56, not 0.5).
DRIVE = (0.1, 5.0)
PARAMS = 6  # pitch, glide ratio, glide time, decay, amplitude, phase (and drive, if on)
# Initial amplitude logit: mod_sigmoid(-1) = 0.1, loud enough that the pitch has a
# gradient from the first step, quiet enough that hats do not start as sines.
AMP_INIT_BIAS = -1.0
# z is scaled down into the head by default (``model.body_input_gain``). Adam moves every
# weight by about the learning rate per step whatever its gradient's size, so over 128
# inputs a logit moved by ~0.2 a step and, under the whole-model transport term, the
# squashed parameters saturated within a few hundred steps (pitch stuck at its floor, decay
# and level at their ceilings; their gradients gone). A tenth: ~0.02 a step, but then a
# head taught its pitch outright learned only the mean pitch in 1,000 steps.
INPUT_GAIN = 0.1


def log_range(x: Tensor, lo: float, hi: float) -> Tensor:
    """Logits -> lo..hi, evenly on a log scale."""
    return lo * torch.exp(torch.sigmoid(x) * math.log(hi / lo))


class BodyOscillators(nn.Module):
    """z [B,D] -> the bodies' audio [B,1,L].

    Args:
        latent_dim: D.
        count: oscillators (0 = none: the output is silence and the module holds no weights,
            so checkpoints written before it load unchanged).
        sample_rate: of the output, Hz.
        length: L, samples.
        min_hz, max_hz: the resting pitch's range.
        input_gain: z is scaled by this into the head.
        drive: each sine is saturated by a drive the head also makes (a seventh parameter).
    """

    def __init__(self, latent_dim: int, count: int, sample_rate: int, length: int,
                 min_hz: float, max_hz: float, input_gain: float = INPUT_GAIN, drive: bool = False) -> None:
        super().__init__()
        if count < 0:
            raise ValueError(f"body oscillators must be >= 0, got {count}")
        top = sample_rate / (2 * GLIDE_RATIO[1])  # the strike pitch stays under Nyquist
        if not 0 < min_hz < max_hz <= top:
            raise ValueError(f"body pitch range must satisfy 0 < min_hz < max_hz <= {top:g} Hz (Nyquist over "
                             f"the largest glide ratio), got {min_hz:g} to {max_hz:g}")
        self.count = int(count)
        self.drive = bool(drive)
        self.params = PARAMS + int(self.drive)  # TorchScript reads module attributes, not globals
        if not input_gain > 0:
            raise ValueError(f"body oscillators' input gain must be > 0, got {input_gain}")
        self.input_gain = float(input_gain)
        # Training scales the oscillators' output by this (``train.body_fade_in_steps``),
        # so the decoder learns the bodies first and the oscillators join once taught
        # their pitch. Saved with the weights: a checkpoint from the middle of the fade
        # plays its oscillators as loud as it was trained to, not louder.
        self.register_buffer("level", torch.ones(()), persistent=count > 0)
        self.glide_ratio, self.glide_s, self.decay_s, self.drive_range = GLIDE_RATIO, GLIDE_S, DECAY_S, DRIVE
        self.min_hz = float(min_hz)
        self.max_hz = float(max_hz)
        # A list of zero or one head: TorchScript iterates over it, and an empty one
        # leaves no keys in the state dict.
        heads = []
        if count > 0:
            head = nn.Linear(latent_dim, count * self.params)
            with torch.no_grad():
                head.bias.zero_()  # mid-range bodies, quiet
                head.bias.view(count, self.params)[:, 4] = AMP_INIT_BIAS
            heads.append(head)
        self.heads = nn.ModuleList(heads)
        self.register_buffer("t", (torch.arange(length, dtype=torch.float32) / sample_rate).reshape(1, 1, -1),
                             persistent=False)

    def parameters_of(self, z: Tensor) -> Tensor:
        """z [B,D] -> [B, count, 6 or 7]: resting pitch Hz, strike pitch Hz, glide s, decay s,
        amplitude, phase (radians), and with drive on the drive, in their ranges."""
        out = z.new_zeros(z.shape[0], self.count, self.params)
        for head in self.heads:
            p = head(z * self.input_gain).reshape(z.shape[0], self.count, self.params)
            f_end = log_range(p[..., 0], self.min_hz, self.max_hz)
            f_start = f_end * log_range(p[..., 1], self.glide_ratio[0], self.glide_ratio[1])
            glide = log_range(p[..., 2], self.glide_s[0], self.glide_s[1])
            decay = log_range(p[..., 3], self.decay_s[0], self.decay_s[1])
            columns = [f_end, f_start, glide, decay, mod_sigmoid(p[..., 4]), p[..., 5]]
            if self.drive:
                columns.append(log_range(p[..., 6], self.drive_range[0], self.drive_range[1]))
            out = torch.stack(columns, dim=-1)
        return out

    def forward(self, z: Tensor, hold_pitch: bool = False) -> Tensor:
        """z [B,D] -> [B,1,L]. ``hold_pitch``: no gradient reaches the pitch curve (resting
        pitch, strike pitch, glide): training's per-bin terms send it only the noise of a
        sine's phase (its derivative grows with t), large enough to swamp every other
        gradient under clipping; the pitch is left to ``loss.body_transport_weight``."""
        if self.count == 0:
            return z.new_zeros(z.shape[0], 1, self.t.shape[-1])
        p = self.parameters_of(z).unsqueeze(-1)  # [B, count, params, 1]
        f_end, f_start, glide, decay, amp, phase = p[:, :, 0], p[:, :, 1], p[:, :, 2], p[:, :, 3], p[:, :, 4], p[:, :, 5]
        if hold_pitch:
            f_end, f_start, glide = f_end.detach(), f_start.detach(), glide.detach()
        t = self.t.to(dtype=z.dtype)
        fall = 1.0 - torch.exp(-t / glide)
        phi = 2.0 * math.pi * (f_end * t + (f_start - f_end) * glide * fall) + phase
        y = torch.exp(-t / decay) * torch.sin(phi)
        if self.drive:
            d = p[:, :, 6]
            y = torch.tanh(d * y) / torch.tanh(d)
        y = amp * y
        return y.sum(dim=1, keepdim=True) * self.level.to(dtype=z.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # Checkpoints with oscillators written before the fade existed played them in full.
        if self.count > 0:
            state_dict.setdefault(prefix + "level", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
