"""The voices: hits of pre-rendered pad buffers mixed into audio blocks.

Two implementations of one set of rules, picked by ``make_voices``:

- ``PyVoices`` (here, the spec): plain Python, for the sounddevice stream, the offline
  engine where no C mixer was built, and as the reference the C one is tested against;
- ``CVoices`` (``realtime/cmix.py`` over ``realtime/_cmix.c``): the same in C, whose JACK
  process callback runs no Python at all.

Rules (``flowshot.export.voices.VoiceBank``'s, shared with the nn~ export): a hit starts at
its frame in the block; at most ``polyphony`` voices sound, a hit beyond that steals the
oldest, which fades out over ``fade_len`` frames in a slot of its own; a hit of a pad in
a choke group fades out the group's other pads; at most ``polyphony`` voices fade at once
(beyond that the one furthest into its fade is cut). A voice keeps the buffer it started
with, so a pad re-rendered under a sounding hit never clicks. Last, each output passes the
master limiter (``realtime/limiter.py``; off until ``set_limiter``).

Per-pad bookkeeping the engine writes and the voices read when a hit starts
(``pad_generation``, ``pad_wanted``, ``stale_from``: how far behind its latest change a
hit's render is) and ``last_hit`` (written here) are int64 arrays both kinds share.
"""

from __future__ import annotations

import collections

import numpy as np

from flowshot.realtime.limiter import Limiter

MAX_BLOCK = 16384  # the largest audio block the host expects (larger ones still work)


class PyVoices:
    """The voice mixer in Python.

    Args:
        n_pads: pads (buffers) the hits name.
        polyphony: voices that may sound at once.
        fade_len: frames of a stolen or choked voice's fade-out.
        queue_size: hits queued between two blocks before the oldest are dropped.
    """

    native = False

    def __init__(self, n_pads: int, polyphony: int, fade_len: int, queue_size: int):
        self.n_pads, self.polyphony, self.fade_len = int(n_pads), int(polyphony), max(1, int(fade_len))
        self.pad_generation = np.zeros(n_pads, np.int64)
        self.pad_wanted = np.ones(n_pads, np.int64)
        self.stale_from = np.zeros(n_pads, np.int64)
        self.last_hit = np.full(n_pads, -1, np.int64)  # frame of each pad's last hit
        self._silence = np.zeros(1, np.float32)
        self._pad_buf: list[np.ndarray] = [self._silence] * n_pads
        self._pad_group = [-1] * n_pads
        self._pad_split = [False] * n_pads
        # Plain Python lists: faster than numpy scalars in a per-block loop. Twice
        # ``polyphony`` slots, so a stolen voice can fade out in a slot of its own.
        n = 2 * self.polyphony
        self._v_active = [False] * n
        self._v_buf: list[np.ndarray] = [self._silence] * n
        self._v_pad = [0] * n
        self._v_pos = [0] * n
        self._v_gain = [0.0] * n
        self._v_age = [0] * n
        self._v_fade = [-1] * n  # samples into the fade, -1 = not fading
        self._age = 0
        self._ramp = np.linspace(1.0, 0.0, self.fade_len, dtype=np.float32)
        self._tmp = np.zeros(MAX_BLOCK, np.float32)
        self._queue: collections.deque = collections.deque(maxlen=queue_size)
        self.frames_done = 0
        self.hits = 0
        self.steals = 0
        self.stale_hits = 0
        self.stale_frames = 0  # summed over the stale hits
        self.stale_frames_max = 0
        self.limiter = Limiter()

    # ------------------------------------------------------------------ control threads
    def set_limiter(self, ceiling_db: float | None, release_ms: float, sample_rate: float) -> None:
        """Hold each output under ``ceiling_db`` dBFS (None: no limiter, the default);
        ``realtime/limiter.py``."""
        self.limiter.configure(ceiling_db, release_ms, sample_rate)

    def set_groups(self, group_of_pad: list[int]) -> None:
        """Choke group of each pad (-1: none); replaced whole, never edited in place."""
        self._pad_group = list(group_of_pad)

    def set_split(self, split_of_pad: list[bool]) -> None:
        """Pads whose voices go to the second output; replaced whole, so a block sees one routing."""
        self._pad_split = list(split_of_pad)

    def set_velocity_table(self, gains: list[float]) -> None:
        """Gain of each MIDI velocity 0..127 for notes the mixer reads itself (none here)."""

    def set_pad(self, pad: int, buf: np.ndarray) -> None:
        """The buffer later hits of ``pad`` play (float32, contiguous; the caller keeps it alive)."""
        self._pad_buf[pad] = buf  # atomic swap: voices already playing keep the old one

    def trigger(self, pad: int, gain: float, offset: int) -> None:
        """Queue a hit ``offset`` frames into the next block (any thread, never blocks)."""
        self._queue.append((pad, gain, offset))

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ audio thread
    def process(self, out: np.ndarray, split: np.ndarray | None = None) -> None:
        """Mix every sounding voice into ``out`` [frames] (and the split pads' into ``split``), both overwritten."""
        frames = len(out)
        out.fill(0.0)
        if split is not None:
            split.fill(0.0)
        q = self._queue
        start = 0
        while q:
            try:
                pad, gain, offset = q.popleft()
            except IndexError:
                break
            at = min(max(offset, start), frames)
            if at > start:
                self._mix(out, split, start, at)
                start = at
            self._start_voice(pad, gain)
        if start < frames:
            self._mix(out, split, start, frames)
        self.limiter.apply(out, 0)
        if split is not None:
            self.limiter.apply(split, 1)
        self.frames_done += frames

    def _start_voice(self, pad: int, gain: float) -> None:
        group = self._pad_group[pad]
        active, fade = self._v_active, self._v_fade
        slots = range(len(active))
        if group >= 0:
            for v in slots:
                if active[v] and fade[v] < 0 and self._v_pad[v] != pad and self._pad_group[self._v_pad[v]] == group:
                    fade[v] = 0
        live = 0
        oldest = -1
        for v in slots:
            if active[v] and fade[v] < 0:
                live += 1
                if oldest < 0 or self._v_age[v] < self._v_age[oldest]:
                    oldest = v
        if live >= self.polyphony:
            fade[oldest] = 0  # stolen: it fades out in its slot
            self.steals += 1
        # At most ``polyphony`` voices fade at once; beyond that the one furthest into its
        # fade (ties: the oldest) is cut. Then at most 2 * polyphony - 1 slots are taken.
        age = self._v_age
        while True:
            count, cut = 0, -1
            for v in slots:
                if active[v] and fade[v] >= 0:
                    count += 1
                    if cut < 0 or fade[v] > fade[cut] or (fade[v] == fade[cut] and age[v] < age[cut]):
                        cut = v
            if count <= self.polyphony:
                break
            active[cut] = False
            fade[cut] = -1
            self._v_buf[cut] = self._silence
        slot = active.index(False)
        self._age += 1
        active[slot] = True
        self._v_buf[slot] = self._pad_buf[pad]  # the voice keeps this buffer even if the pad re-renders
        self._v_pad[slot] = pad
        self._v_pos[slot] = 0
        self._v_gain[slot] = gain
        self._v_age[slot] = self._age
        fade[slot] = -1
        self.last_hit[pad] = self.frames_done
        self.hits += 1
        if self.pad_generation[pad] < self.pad_wanted[pad]:
            # It plays a render from before the pad's last change, this far behind it.
            self.stale_hits += 1
            lag = self.frames_done - int(self.stale_from[pad])
            self.stale_frames += lag
            if lag > self.stale_frames_max:
                self.stale_frames_max = lag

    def _mix(self, out: np.ndarray, split: np.ndarray | None, a: int, b: int) -> None:
        """Add every active voice to out[a:b] (or split[a:b]) and advance it."""
        step = len(self._tmp)
        while b - a > step:  # blocks beyond MAX_BLOCK: in pieces the scratch buffer holds
            self._mix_span(out, split, a, a + step)
            a += step
        self._mix_span(out, split, a, b)

    def _mix_span(self, out: np.ndarray, split: np.ndarray | None, a: int, b: int) -> None:
        tmp = self._tmp
        to_split = self._pad_split
        for v in range(len(self._v_active)):
            if not self._v_active[v]:
                continue
            buf = self._v_buf[v]
            pos = self._v_pos[v]
            n = min(b - a, len(buf) - pos)
            fade = self._v_fade[v]
            if fade >= 0:
                n = min(n, self.fade_len - fade)
            if n > 0:
                t = tmp[:n]
                np.multiply(buf[pos : pos + n], self._v_gain[v], out=t)
                if fade >= 0:
                    np.multiply(t, self._ramp[fade : fade + n], out=t)
                    self._v_fade[v] = fade + n
                dest = split if split is not None and to_split[self._v_pad[v]] else out
                seg = dest[a : a + n]
                np.add(seg, t, out=seg)
                self._v_pos[v] = pos + n
            if self._v_pos[v] >= len(buf) or (fade >= 0 and self._v_fade[v] >= self.fade_len):
                self._v_active[v] = False
                self._v_buf[v] = self._silence  # drop the reference: see ``Engine._retire``

    # ------------------------------------------------------------------ readers (UI, tests)
    frames_limited = property(lambda self: self.limiter.frames_limited)
    limiter_min_gain = property(lambda self: self.limiter.min_gain)

    def holds(self, buf: np.ndarray) -> bool:
        """True while a sounding voice plays ``buf``."""
        return any(a and b is buf for a, b in zip(self._v_active, self._v_buf))

    @property
    def active_voices(self) -> int:
        """Voices that count against the polyphony (sounding, not fading out)."""
        return sum(1 for v in range(len(self._v_active)) if self._v_active[v] and self._v_fade[v] < 0)

    def voices(self) -> list[tuple[int, int, float, bool]]:
        """Sounding voices as (pad, playhead, gain, fading), oldest first."""
        live = [v for v in range(len(self._v_active)) if self._v_active[v]]
        live.sort(key=lambda v: self._v_age[v])
        return [(self._v_pad[v], self._v_pos[v], self._v_gain[v], self._v_fade[v] >= 0) for v in live]


def make_voices(kind: str, n_pads: int, polyphony: int, fade_len: int, queue_size: int):
    """``kind`` "c", "python" or "auto" (C where it was built, else Python)."""
    from flowshot.errors import FlowshotError

    if kind not in ("auto", "c", "python"):
        raise FlowshotError(f"mixer {kind!r} is not auto, c or python")
    if kind != "python":
        from flowshot.realtime import cmix

        if cmix.available():
            return cmix.CVoices(n_pads, polyphony, fade_len, queue_size)
        if kind == "c":
            raise FlowshotError(f"the C mixer is not built ({cmix.why_unavailable()}); reinstall flowshot with a C "
                                "compiler, or use --mixer python")
    return PyVoices(n_pads, polyphony, fade_len, queue_size)
