"""Trigger edges and polyphonic one-shot voices: the ONE definition of how a hit plays.

Played by the nn~ instrument (scripted into the ``.ts``) and pinned by ``tests/test_voices.py``;
the real-time host's engine (``flowshot.realtime.engine``, numpy, no torch in the audio
process) follows the same rules, and ``tests/test_engine.py`` checks its mix against this
one sample for sample. The semantics:

- A hit starts at a rising edge of the trigger signal: sample ``n`` with ``trig[n] > 0`` and
  ``trig[n-1] <= 0`` (the sample before the first one ever seen, or after a reset, counts as
  0). The value ``trig[n]`` is the hit's gain (velocity). A held gate is one hit.
- The hit's one-shot (``length`` samples, already rendered) plays from sample ``n`` exactly:
  ``out[n + k] += gain * audio[k]`` for ``0 <= k < length``.
- A hit never cuts earlier sounds; up to ``polyphony`` voices overlap. When a hit arrives
  with ``polyphony`` voices still sounding, the voice that started first (the oldest) is
  stolen: from sample ``n`` on it fades out, its sample ``n + j`` multiplied by
  ``1 - j / max(fade - 1, 1)`` for ``j < fade`` and silent after (``fade`` = 0: a hard cut,
  silent from ``n``). A hard cut clicks; a few ms of fade does not. A fading voice no longer
  counts against ``polyphony``, but at most ``polyphony`` voices fade at once: beyond that the
  one furthest into its fade (ties: the oldest) is cut hard at ``n``. Lowering ``polyphony``
  takes effect at the next hit (oldest voices are stolen until one is free).
- Hits at the same sample in the same batch row cannot happen (one edge per sample).
- State (voices, playheads, the previous trigger sample) persists between calls, so cutting
  the same signal into different block sizes gives the same output sample for sample.
  A change of batch size re-initialises the state (all voices silent, previous trigger 0).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

MAX_VOICES = 32


class VoiceBank(nn.Module):
    """Polyphonic player of pre-rendered one-shots, TorchScript-able, state in buffers.

    Args:
        length: samples of one voice's audio (every hit's one-shot has this length).
        polyphony: voices that may sound at once (1..``max_voices``).
        max_voices: the upper bound of ``polyphony``; twice as many slots are allocated
            per batch row, so stolen voices fade out in slots of their own.
        fade: samples over which a stolen voice fades out (0: hard cut).
    """

    def __init__(self, length: int, polyphony: int = 8, max_voices: int = MAX_VOICES, fade: int = 0) -> None:
        super().__init__()
        if not 1 <= polyphony <= max_voices:
            raise ValueError(f"polyphony must be in 1..{max_voices}, got {polyphony}")
        if fade < 0:
            raise ValueError(f"fade must be >= 0 samples, got {fade}")
        self.length = int(length)
        self.max_voices = int(max_voices)
        self.slots = 2 * int(max_voices)
        self.polyphony = int(polyphony)
        self.fade = int(fade)
        # Batch 0 until the first call: the batch size is only known then.
        self.register_buffer("audio", torch.zeros(0, self.slots, self.length))
        self.register_buffer("gain", torch.zeros(0, self.slots))
        self.register_buffer("pos", torch.zeros(0, self.slots, dtype=torch.long))
        self.register_buffer("faded", torch.zeros(0, self.slots, dtype=torch.long))
        self.register_buffer("order", torch.zeros(0, self.slots, dtype=torch.long))
        self.register_buffer("serial", torch.zeros(0, dtype=torch.long))
        self.register_buffer("prev_trigger", torch.zeros(0))

    @torch.jit.export
    def reset(self, batch: int) -> None:
        """Silence every voice and forget the previous trigger sample, for ``batch`` rows."""
        device = self.gain.device
        self.audio = torch.zeros(batch, self.slots, self.length, device=device)
        self.gain = torch.zeros(batch, self.slots, device=device)
        # A playhead at ``length`` marks a free slot; ``faded`` counts samples into a
        # voice's fade-out, -1 while it is not fading.
        self.pos = torch.full((batch, self.slots), self.length, dtype=torch.long, device=device)
        self.faded = torch.full((batch, self.slots), -1, dtype=torch.long, device=device)
        self.order = torch.zeros(batch, self.slots, dtype=torch.long, device=device)
        self.serial = torch.zeros(batch, dtype=torch.long, device=device)
        self.prev_trigger = torch.zeros(batch, device=device)

    @torch.jit.export
    def set_length(self, length: int) -> None:
        """A new one-shot length (e.g. after a sample-rate change); silences every voice."""
        self.length = length
        self.reset(self.pos.size(0))

    @torch.jit.export
    def set_fade(self, fade: int) -> None:
        """Samples over which a stolen voice fades out (0: hard cut); voices keep sounding."""
        self.fade = max(0, fade)

    @torch.jit.export
    def ensure_batch(self, batch: int) -> None:
        """Re-initialise the state when the batch size changed since the last call."""
        if self.pos.size(0) != batch:
            self.reset(batch)

    @torch.jit.export
    def set_polyphony(self, polyphony: int) -> int:
        """Returns 0 when accepted, -1 when outside 1..max_voices (unchanged then)."""
        if polyphony < 1 or polyphony > self.max_voices:
            return -1
        self.polyphony = polyphony
        return 0

    @torch.jit.export
    def active_voices(self) -> Tensor:
        """Voices per batch row that count against ``polyphony`` (sounding, not fading), ``[B]`` (long)."""
        return ((self.pos < self.length) & (self.faded < 0)).sum(1)

    @torch.jit.export
    def find_hits(self, trigger: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Rising edges of a trigger block, in time order; updates the previous-sample state.

        Args:
            trigger: ``[B, N]`` trigger signal.
        Returns:
            (rows ``[H]`` long, samples ``[H]`` long, gains ``[H]``), sorted by sample then row.
        """
        self.ensure_batch(trigger.size(0))
        prev = torch.cat([self.prev_trigger.unsqueeze(1), trigger[:, :-1]], dim=1)
        edges = (trigger > 0) & (prev <= 0)
        self.prev_trigger = trigger[:, -1].clone()
        idx = torch.nonzero(edges)
        rows = idx[:, 0]
        samples = idx[:, 1]
        if idx.size(0) == 0:  # most blocks: nothing to sort or gather
            return rows, samples, trigger.new_zeros(0)
        order = torch.argsort(samples * trigger.size(0) + rows)
        rows = rows[order]
        samples = samples[order]
        return rows, samples, trigger[rows, samples]

    @torch.jit.export
    def play(self, rows: Tensor, samples: Tensor, gains: Tensor, audio: Tensor, n: int) -> Tensor:
        """Start the given hits and render ``n`` samples of every voice.

        Args:
            rows, samples, gains: ``[H]`` hits sorted by sample (as ``find_hits`` returns them),
                ``samples`` within ``0..n-1``.
            audio: ``[H, length]`` the one-shot of each hit.
            n: block length.
        Returns:
            ``[B, n]`` the mix of all voices over the block.
        """
        batch = self.pos.size(0)
        out = torch.zeros(batch, n, device=self.gain.device)
        cursor = 0
        for i in range(int(rows.size(0))):
            t = int(samples[i])
            if t > cursor:
                self._render(out, cursor, t)
                cursor = t
            self._start(int(rows[i]), gains[i], audio[i])
        if n > cursor:
            self._render(out, cursor, n)
        return out

    def _start(self, row: int, gain: Tensor, audio: Tensor) -> None:
        big = 2**62
        live = (self.pos[row] < self.length) & (self.faded[row] < 0)
        while int(live.sum()) >= self.polyphony:
            oldest = int(torch.argmin(torch.where(live, self.order[row], torch.full_like(self.order[row], big))))
            if self.fade > 0:
                self.faded[row, oldest] = 0
            else:
                self.pos[row, oldest] = self.length
            live[oldest] = False
        fading = (self.pos[row] < self.length) & (self.faded[row] >= 0)
        while int(fading.sum()) > self.polyphony:
            furthest = int(torch.max(torch.where(fading, self.faded[row], torch.full_like(self.faded[row], -1))))
            tied = fading & (self.faded[row] == furthest)
            cut = int(torch.argmin(torch.where(tied, self.order[row], torch.full_like(self.order[row], big))))
            self.pos[row, cut] = self.length
            self.faded[row, cut] = -1
            fading[cut] = False
        slot = int(torch.argmax((self.pos[row] >= self.length).to(torch.int32)))
        self.audio[row, slot] = audio
        self.gain[row, slot] = gain
        self.pos[row, slot] = 0
        self.faded[row, slot] = -1
        self.order[row, slot] = self.serial[row]
        self.serial[row] += 1

    def _render(self, out: Tensor, start: int, stop: int) -> None:
        # Only sounding slots are gathered: most of them are usually silent.
        sounding = torch.nonzero(self.pos < self.length)
        span = stop - start
        if sounding.size(0) > 0:
            r = sounding[:, 0]
            v = sounding[:, 1]
            steps = torch.arange(span, device=out.device).unsqueeze(0)
            idx = self.pos[r, v].unsqueeze(1) + steps
            valid = idx < self.length
            vals = torch.gather(self.audio[r, v], 1, idx.clamp(max=self.length - 1))
            vals = vals * valid.to(vals.dtype) * self.gain[r, v].unsqueeze(1)
            faded = self.faded[r, v].unsqueeze(1)
            if bool((faded >= 0).any()):
                k = (faded + steps).to(vals.dtype)
                ramp = torch.clamp(1.0 - k / float(max(self.fade - 1, 1)), min=0.0)
                ramp = ramp * (k < float(self.fade)).to(vals.dtype)
                vals = vals * torch.where(faded >= 0, ramp, torch.ones_like(ramp))
            out[:, start:stop].index_add_(0, r, vals)
        self.pos = torch.clamp(self.pos + span, max=self.length)
        fading = self.faded >= 0
        self.faded = torch.where(fading, self.faded + span, self.faded)
        over = fading & (self.faded >= self.fade)
        self.pos = torch.where(over, torch.full_like(self.pos, self.length), self.pos)
        self.faded = torch.where(over, torch.full_like(self.faded, -1), self.faded)

    def forward(self, trigger: Tensor, audio: Tensor) -> Tensor:
        """Play a fixed one-shot at every edge: ``trigger [B, N]``, ``audio [length]`` -> ``[B, N]``.

        The instrument decodes one latent per hit and calls ``find_hits`` + ``play``; this
        entry point (the same one-shot for every hit) is what tests and hosts without a model use.
        """
        rows, samples, gains = self.find_hits(trigger)
        return self.play(rows, samples, gains, audio.unsqueeze(0).expand(rows.size(0), -1), trigger.size(1))
