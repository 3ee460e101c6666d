"""Trigger edges and polyphonic one-shot voices: the ONE definition of how a hit plays.

Shared by the nn~ instrument (scripted into the ``.ts``) and the real-time host, and pinned
by ``tests/test_voices.py``. The semantics:

- A hit starts at a rising edge of the trigger signal: sample ``n`` with ``trig[n] > 0`` and
  ``trig[n-1] <= 0`` (the sample before the first one ever seen, or after a reset, counts as
  0). The value ``trig[n]`` is the hit's gain (velocity). A held gate is one hit.
- The hit's one-shot (``length`` samples, already rendered) plays from sample ``n`` exactly:
  ``out[n + k] += gain * audio[k]`` for ``0 <= k < length``.
- A hit never cuts earlier sounds; up to ``polyphony`` voices overlap. When a hit arrives
  with ``polyphony`` voices still sounding, the voice that started first (the oldest) is cut
  at that sample (hard cut: it contributes nothing from sample ``n`` on) and its slot reused.
  Lowering ``polyphony`` takes effect at the next hit (oldest voices are cut until one is free).
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
        max_voices: slots allocated per batch row (the upper bound of ``polyphony``).
    """

    def __init__(self, length: int, polyphony: int = 8, max_voices: int = MAX_VOICES) -> None:
        super().__init__()
        if not 1 <= polyphony <= max_voices:
            raise ValueError(f"polyphony must be in 1..{max_voices}, got {polyphony}")
        self.length = int(length)
        self.max_voices = int(max_voices)
        self.polyphony = int(polyphony)
        # Batch 0 until the first call: the batch size is only known then.
        self.register_buffer("audio", torch.zeros(0, max_voices, self.length))
        self.register_buffer("gain", torch.zeros(0, max_voices))
        self.register_buffer("pos", torch.zeros(0, max_voices, dtype=torch.long))
        self.register_buffer("order", torch.zeros(0, max_voices, dtype=torch.long))
        self.register_buffer("serial", torch.zeros(0, dtype=torch.long))
        self.register_buffer("prev_trigger", torch.zeros(0))

    @torch.jit.export
    def reset(self, batch: int) -> None:
        """Silence every voice and forget the previous trigger sample, for ``batch`` rows."""
        device = self.gain.device
        self.audio = torch.zeros(batch, self.max_voices, self.length, device=device)
        self.gain = torch.zeros(batch, self.max_voices, device=device)
        # A playhead at ``length`` marks a free slot.
        self.pos = torch.full((batch, self.max_voices), self.length, dtype=torch.long, device=device)
        self.order = torch.zeros(batch, self.max_voices, dtype=torch.long, device=device)
        self.serial = torch.zeros(batch, dtype=torch.long, device=device)
        self.prev_trigger = torch.zeros(batch, device=device)

    @torch.jit.export
    def set_length(self, length: int) -> None:
        """A new one-shot length (e.g. after a sample-rate change); silences every voice."""
        self.length = length
        self.reset(self.pos.size(0))

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
        """Number of sounding voices per batch row, ``[B]`` (long)."""
        return (self.pos < self.length).sum(1)

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
        pos = self.pos[row]
        active = pos < self.length
        big = 2**62
        while int(active.sum()) >= self.polyphony:
            oldest = int(torch.argmin(torch.where(active, self.order[row], torch.full_like(pos, big))))
            self.pos[row, oldest] = self.length
            active = self.pos[row] < self.length
        slot = int(torch.argmax((~active).to(torch.int32)))
        self.audio[row, slot] = audio
        self.gain[row, slot] = gain
        self.pos[row, slot] = 0
        self.order[row, slot] = self.serial[row]
        self.serial[row] += 1

    def _render(self, out: Tensor, start: int, stop: int) -> None:
        # Only sounding slots are gathered: most of the 32 are usually silent.
        sounding = torch.nonzero(self.pos < self.length)
        span = stop - start
        if sounding.size(0) > 0:
            r = sounding[:, 0]
            v = sounding[:, 1]
            idx = self.pos[r, v].unsqueeze(1) + torch.arange(span, device=out.device).unsqueeze(0)
            valid = idx < self.length
            vals = torch.gather(self.audio[r, v], 1, idx.clamp(max=self.length - 1))
            vals = vals * valid.to(vals.dtype) * self.gain[r, v].unsqueeze(1)
            out[:, start:stop].index_add_(0, r, vals)
        self.pos = torch.clamp(self.pos + span, max=self.length)

    def forward(self, trigger: Tensor, audio: Tensor) -> Tensor:
        """Play a fixed one-shot at every edge: ``trigger [B, N]``, ``audio [length]`` -> ``[B, N]``.

        The instrument decodes one latent per hit and calls ``find_hits`` + ``play``; this
        entry point (the same one-shot for every hit) is what tests and hosts without a model use.
        """
        rows, samples, gains = self.find_hits(trigger)
        return self.play(rows, samples, gains, audio.unsqueeze(0).expand(rows.size(0), -1), trigger.size(1))
