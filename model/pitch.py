"""Pitch tracking (YIN) of whole batches: what teaches the harmonic voice its pitch.

A voice's pitch cannot be learned from spectral distances: a harmonic's phase moves
with the integral of the pitch, so the per-bin gradient is noise that grows with time
(the body oscillators showed it, ``model/bodies.py``), and DDSP-style models without a
pitch given to them rarely find it. So the training targets' own pitch is tracked here,
with no gradient, and the voice's pitch is regressed onto it on voiced frames.

YIN (de Cheveigne and Kawahara, 2002), per frame:

    d(tau)  = sum over j < W of (s[j] - s[j + tau])^2
    d'(tau) = d(tau) tau / sum over 1 <= t <= tau of d(t)     (cumulative-mean normalised)

the period is the first local minimum of d' under ``threshold`` in the allowed lag range
(else d''s smallest value there, and the frame counts as unvoiced), refined by a parabola
through its neighbours. d comes from one FFT cross-correlation and two running sums per
frame, so a batch of 16 words costs a few milliseconds.
"""

import math

import torch
from torch import Tensor


def track_pitch(x: Tensor, sample_rate: float, hop: int, frames: int, min_hz: float, max_hz: float,
                threshold: float = 0.15, floor_db: float = -40.0) -> tuple[Tensor, Tensor]:
    """Sounds [B,1,L] or [B,L] -> (pitch [B,F] Hz, voiced [B,F] 0 or 1).

    Frame n is centred on sample ``n * hop`` (zeros outside the sound). A frame is voiced
    when d' dips under ``threshold`` in the lag range and its energy is within
    ``floor_db`` of the sound's loudest frame; the pitch of an unvoiced frame is d''s
    best guess, to be ignored.

    Args:
        x: the sounds. sample_rate: Hz. hop: samples between frames. frames: F.
        min_hz, max_hz: the pitch range searched (sets the lags and the window: one
            period of ``min_hz``).
    """
    x = x.reshape(x.shape[0], -1).float()
    tau_max = int(math.ceil(sample_rate / min_hz)) + 1
    tau_min = max(2, int(math.floor(sample_rate / max_hz)))
    width = tau_max
    seg = width + tau_max + 1
    # The period is measured between the window and its copy one lag on: start the window
    # half a window and half a middling lag early, so a gliding pitch is read at the frame.
    left = width // 2 + (tau_min + tau_max) // 4
    right = max(0, (frames - 1) * hop + seg - (x.shape[-1] + left))
    s = torch.nn.functional.pad(x, (left, right)).unfold(-1, seg, hop)[:, :frames]  # [B,F,seg]
    n_fft = 1 << int(math.ceil(math.log2(seg + width)))
    head = s[..., :width]
    corr = torch.fft.irfft(torch.fft.rfft(head, n_fft).conj() * torch.fft.rfft(s, n_fft), n_fft)[..., : tau_max + 1]
    energy = torch.nn.functional.pad(s.square().cumsum(-1), (1, 0))  # energy[k] = sum of s[j]^2, j < k
    e0 = energy[..., width: width + 1]
    lags = torch.arange(tau_max + 1, device=x.device)
    e_tau = energy[..., lags + width] - energy[..., lags]
    d = (e0 + e_tau - 2.0 * corr).clamp_min(0.0)
    d[..., 0] = 0.0
    running = d[..., 1:].cumsum(-1)
    cmnd = torch.ones_like(d)
    cmnd[..., 1:] = d[..., 1:] * lags[1:] / running.clamp_min(1e-12)

    inside = cmnd[..., tau_min: tau_max]  # lags tau_min .. tau_max - 1, each with both neighbours
    before, after = cmnd[..., tau_min - 1: tau_max - 1], cmnd[..., tau_min + 1: tau_max + 1]
    candidate = (inside < threshold) & (inside <= before) & (inside <= after)
    voiced = candidate.any(-1)
    first = candidate.to(torch.int8).argmax(-1)  # the first True (0 when there is none)
    best = torch.where(voiced, first, inside.argmin(-1))
    y0 = before.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    y1 = inside.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    y2 = after.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    curve = y0 - 2.0 * y1 + y2
    shift = torch.where(curve > 1e-9, 0.5 * (y0 - y2) / curve.clamp_min(1e-9), torch.zeros_like(curve))
    period = best.float() + tau_min + shift.clamp(-0.5, 0.5)
    pitch = sample_rate / period

    level = 10.0 * torch.log10(e0.squeeze(-1).clamp_min(1e-20))
    loud = level >= level.amax(-1, keepdim=True) + floor_db
    return pitch, (voiced & loud).float()


def pitch_distance(pitch_hz: Tensor, x: Tensor, sample_rate: float, hop: int, min_hz: float,
                   max_hz: float) -> Tensor:
    """Predicted pitch per frame [B,F] (Hz; frame n at sample ``n * hop``) against the
    targets' own (``track_pitch`` of x [B,1,L]) -> the mean squared log ratio over the
    targets' voiced frames (nats^2; 0 when none is voiced). No gradient reaches x."""
    target, voiced = track_pitch(x.detach(), sample_rate, hop, pitch_hz.shape[-1], min_hz, max_hz)
    error = torch.log(pitch_hz / target).square()
    return (voiced * error).sum() / voiced.sum().clamp_min(1.0)
