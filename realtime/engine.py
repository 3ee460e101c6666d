"""The instrument: 16 pads of pre-rendered one-shots, voices that mix them, and the latent controls.

Threads and what they may do:
- control threads (MIDI, OSC, UI, offline driver) call ``trigger``/``note_on`` (queued for
  the audio thread in the voice mixer, ``flowshot.realtime.voices``: never blocks) and the
  latent controls (``set_knob``, ``randomize_pad``, ``morph``, ...), which change pad state
  under ``_lock`` and wake the render thread;
- the render thread (``start``) renders the changed pads one per model call: the pad hit
  last first (so the pad being played answers a knob within a few ms), then the one that
  has waited longest (pads hit in the last seconds counted a little longer), starting over
  whenever a newer change arrives, and hands each new buffer to the mixer
  (``set_pad_audio``: one atomic swap, of a reference or, in C, under a sequence lock).
  Given a second, ``background`` backend there are two render threads: the lead one
  renders only the pad hit last, the other the rest, so a knob move never waits behind
  another pad's render;
- the audio callback (``process``, or on JACK the C mixer's own callback) only mixes: no
  model call, no lock, no array allocation.
  A voice keeps the buffer it started with, so re-renders never click a sounding hit, and a
  voice that is stolen or choked fades out over ``choke_fade_ms`` instead of stopping dead.
  Nor does it free buffers: a replaced pad buffer is kept by the render thread until every
  voice that could hold it has ended, so its memory is released there, not in the callback.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.backends import Backend
from flowshot.realtime.limiter import CEILING_DB, RELEASE_MS
from flowshot.realtime.voices import MAX_BLOCK, make_voices

RESPONSE_LOG = 256  # change-to-sound times kept for the stats (a ring)
RESPONSE_PARTS = ("change", "call", "model")  # the columns of that ring (``Engine.response_times``)
# A pad hit in the last RECENT_S counts as having waited RECENT_BONUS_S longer than it has:
# the pads being played stay fresher, and one not played lately still waits at most that
# much longer than its turn (a strict "played pads first" left a crash cymbal hit for the
# first time in a sweep playing a render from before the sweep began).
RECENT_S = 2.0
RECENT_BONUS_S = 0.05
LEAD_POLL_S = 0.005  # how often the lead render thread looks for a newly hit pending pad


@dataclass
class EngineSettings:
    """How pads, voices and controls behave.

    Args:
        n_pads: number of pads.
        first_note: MIDI note of pad 0; pad i answers note ``first_note + i``.
        polyphony: voices that may sound at once; a new hit beyond it steals the oldest,
            which fades out over ``choke_fade_ms`` (a hard cut would click).
        velocity_exponent: gain = (velocity / 127) ** exponent; 2 (the default) is the
            General MIDI / DLS curve, 40 log10(velocity / 127) dB; 1 is linear.
        choke_groups: lists of pads; a hit on one pad fades out sounding voices of the
            OTHER pads of its group (closed hat cuts open hat). None = group the pads whose
            class is ``hat_closed``/``hat_open`` when the model's stats name them.
        choke_fade_ms: length of the fade of a choked or stolen voice (long enough not to click).
        knob_range: knob values are clamped to [-knob_range, knob_range] (in macro stds).
        temperature: how far new random draws stray (``randomize_pad``; ``LatentStats.random_base``).
        seed: seed of the prior draws that fill pads the stats do not cover.
        debounce_ms: the render thread waits this long for more changes before rendering;
            0 (the default) renders at once, and the changes that arrive during a render
            are coalesced into the next one anyway.
        queue_size: pending triggers kept at most (a flood drops the oldest, or with the C
            mixer the newest; never blocks).
        split_pads: pads that sound only on the second output channel (the others on the
            first), like a sampler's separate output: a click or cue kept out of the main
            mix, a kick sent to its own mixer channel. None or empty: one mix on every channel.
        hold_background: with a background backend that can be held (a worker process),
            stop it while the lead backend answers a change, so the played pad renders with
            the CPU to itself; the other pads' renders wait that long.
        mixer: "auto" (the C mixer where it was built, else Python), "c" or "python"
            (``flowshot.realtime.voices``; same rules, the C one plays on JACK without the GIL).
        gain_db: every pad's sound is scaled by this (dB) as it goes live. A model plays
            its one-shots at its data's level, -1 dBFS at the peak, so two full-velocity
            hits that meet can sum over 0 dBFS; -6 leaves room for about two.
        ceiling_db: the master limiter holds each output under this, dBFS (None: no
            limiter). No look-ahead, so no latency: the gain drops on the sample that would
            cross it and recovers over ``limiter_release_ms`` (``realtime/limiter.py``);
            a mix under the ceiling passes bit for bit.
        limiter_release_ms: the limiter's recovery time constant.
    """

    n_pads: int = 16
    first_note: int = 36
    polyphony: int = 16
    velocity_exponent: float = 2.0
    choke_groups: list[list[int]] | None = None
    choke_fade_ms: float = 5.0
    knob_range: float = 3.0
    temperature: float = 1.0
    seed: int = 0
    debounce_ms: float = 0.0
    queue_size: int = 1024
    split_pads: list[int] | None = None
    hold_background: bool = True
    mixer: str = "auto"
    gain_db: float = 0.0
    ceiling_db: float | None = CEILING_DB
    limiter_release_ms: float = RELEASE_MS


@dataclass
class Pad:
    """One pad's sound source.

    ``base`` is its point in the prior's base space (knobs and morphs act there). A pad
    loaded from a WAV on a backend without the inverse flow (ONNX) has only ``latent``,
    which knobs and morphs leave alone.
    """

    base: np.ndarray | None
    latent: np.ndarray | None = None
    label: str = ""
    source: str = ""
    morph_target: int | None = None
    morph_amount: float = 0.0


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of vectors a, b [D] (norms interpolated linearly).

    Base points are Gaussian, so the straight line between two of them passes through
    atypically short vectors; slerp keeps the path on typical radii. t=0 -> a, t=1 -> b exactly.
    """
    if t <= 0.0:
        return a.copy()
    if t >= 1.0:
        return b.copy()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return (1 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = math.acos(float(np.clip(ua @ ub, -1.0, 1.0)))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    direction = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
    return direction * ((1 - t) * na + t * nb)


class Engine:
    """Pads, voices and latent controls around one ``Backend``.

    Args:
        backend: the model (see ``flowshot.realtime.backends``).
        settings: pad/voice/control settings.
        output_rate: rate of the audio device; pads are resampled to it once per render
            (None = the model's rate).
        background: a second instance of the same model for the pads not played last
            (the host gives it a lower-priority worker process). None: ``backend`` renders
            every pad, one at a time, so a knob move may wait for another pad's render.
    """

    def __init__(self, backend: Backend, settings: EngineSettings | None = None, output_rate: int | None = None,
                 background: Backend | None = None):
        self.backend = backend
        self.background = background
        self.settings = s = settings or EngineSettings()
        self._hold_background = s.hold_background and hasattr(background, "hold")
        if s.n_pads < 1 or s.polyphony < 1:
            raise FlowshotError(f"n_pads ({s.n_pads}) and polyphony ({s.polyphony}) must be at least 1")
        self.output_rate = int(output_rate or backend.sample_rate)
        self.temperature = float(s.temperature)
        d = backend.latent_dim
        stats = backend.stats
        if stats is not None and len(stats.macro_directions):
            self.directions = np.asarray(stats.macro_directions, dtype=np.float64)
            self.macro_std = np.asarray(stats.macro_std, dtype=np.float64)
            self.knob_labels = list(stats.macro_labels) or [f"macro {k + 1}" for k in range(len(self.directions))]
        else:
            # No statistics in the file: the prior's base space is N(0, I), so its first
            # axes are valid (if arbitrary) directions with unit spread.
            k = min(8, d)
            self.directions = np.eye(d)[:k]
            self.macro_std = np.ones(k)
            self.knob_labels = [f"axis {i}" for i in range(k)]
        if len(self.knob_labels) < len(self.directions):
            self.knob_labels += [f"macro {i + 1}" for i in range(len(self.knob_labels), len(self.directions))]
        self.knobs = [0.0] * len(self.directions)
        self.pads: list[Pad] = self._initial_pads(s.n_pads)
        if s.choke_groups is None:
            self.choke_groups = self._default_chokes()
        else:
            self.choke_groups = [list(g) for g in s.choke_groups]
        self._fade_len = max(1, int(round(s.choke_fade_ms * 1e-3 * self.output_rate)))
        self.mix = make_voices(s.mixer, s.n_pads, s.polyphony, self._fade_len, s.queue_size)
        self._pad_group = self._group_index()
        self.mix.set_groups(self._pad_group)
        self.mix.set_limiter(s.ceiling_db, s.limiter_release_ms, self.output_rate)
        self.set_split_pads(s.split_pads or [])

        self._lock = threading.Lock()  # control threads vs render thread; never the audio thread
        self._dirty: set[int] = set(range(s.n_pads))
        self._generation = 1  # bumped by every change; ``_rendered`` = the generation on screen
        self._rendered = 0
        # Generation of the render each pad plays: with two render threads an older render
        # of a pad can finish after a newer one and must not replace it. The voices read
        # these three when a hit starts (how stale its render is), so they are the mixer's.
        self._pad_generation = self.mix.pad_generation
        self._pad_wanted = self.mix.pad_wanted  # generation of the last change to each pad
        # Frame since which each stale pad has been behind its latest change (a render that
        # lands still behind restarts it at the frame it was taken: an upper bound by up
        # to one render's time).
        self._stale_from = self.mix.stale_from
        self._wakes = [threading.Event() for _ in range(1 if background is None else 2)]  # one per render thread
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._silence = np.zeros(1, np.float32)
        self.pad_audio: list[np.ndarray] = [self._silence] * s.n_pads  # the mixer starts with silence too
        self._retired: collections.deque = collections.deque()  # (frame replaced at, old pad buffer)
        self.pad_latent = np.zeros((s.n_pads, d))
        self.render_count = 0
        self.render_ms = 0.0
        self.render_errors = 0
        # Seconds from a change (knob, randomise, ...) to the first re-rendered pad being
        # live, a ring written by the render thread; ``response_times()`` reads it.
        # Columns (RESPONSE_PARTS): the whole time, its model call's share, and of that the
        # model's own time in its worker.
        self._response = np.zeros((RESPONSE_LOG, len(RESPONSE_PARTS)))
        self._responses = 0
        self._changed_at: float | None = None
        self._in_flight = 0  # pads taken for the renders under way
        self.on_render_error = None  # optional callable(str) set by the host for logging


    # ------------------------------------------------------------------ setup
    @property
    def n_pads(self) -> int:
        return self.settings.n_pads

    @property
    def n_knobs(self) -> int:
        return len(self.knobs)

    def _prior_draw(self, seed: int, temperature: float) -> np.ndarray:
        rng = np.random.default_rng(seed)
        stats = self.backend.stats
        if stats is None:
            return rng.standard_normal(self.backend.latent_dim) * temperature
        return stats.random_base(rng, temperature)

    def _initial_pads(self, n: int) -> list[Pad]:
        stats = self.backend.stats
        bases = None
        labels: list[str] = []
        if stats is not None:
            labels = list(stats.pad_classes)
            if stats.pad_base is not None and len(stats.pad_base):
                bases = np.asarray(stats.pad_base, dtype=np.float64)
            elif stats.pad_latents is not None and len(stats.pad_latents) and self.backend.has_inverse:
                bases = self.backend.latent_to_base(stats.pad_latents)
        pads = []
        for i in range(n):
            if bases is not None and i < len(bases):
                label = labels[i] if i < len(labels) else f"cluster {i}"
                pads.append(Pad(base=bases[i].copy(), label=label, source=f"stats:{i}"))
            else:
                seed = self.settings.seed * 1000 + i
                pads.append(Pad(base=self._prior_draw(seed, self.temperature), label="random", source=f"random:{seed}"))
        return pads

    def _default_chokes(self) -> list[list[int]]:
        closed = [i for i, p in enumerate(self.pads) if p.label == "hat_closed"]
        opened = [i for i, p in enumerate(self.pads) if p.label == "hat_open"]
        return [closed + opened] if closed and opened else []

    def _group_index(self) -> list[int]:
        index = [-1] * self.n_pads
        for g, pads in enumerate(self.choke_groups):
            for p in pads:
                if not 0 <= p < self.n_pads:
                    raise FlowshotError(f"choke group {pads} names pad {p}; pads are 0..{self.n_pads - 1}")
                index[p] = g
        return index

    def set_choke_groups(self, groups: list[list[int]]) -> None:
        """Replace the choke groups (lists of pad indices)."""
        self.choke_groups = [list(map(int, g)) for g in groups]
        self._pad_group = self._group_index()
        self.mix.set_groups(self._pad_group)

    def set_split_pads(self, pads: list[int]) -> None:
        """Send these pads to the second output channel alone (empty: one mix everywhere).

        The audio thread reads the per-pad list once per block: it is replaced whole, never
        edited in place, so a block sees the old routing or the new one.
        """
        pads = sorted({self._check_pad(p) for p in pads})
        self._pad_split = [i in pads for i in range(self.n_pads)]
        self.mix.set_split(self._pad_split)
        self.split = bool(pads)

    @property
    def split_pads(self) -> list[int]:
        return [i for i, on in enumerate(self._pad_split) if on]

    # ------------------------------------------------------------------ triggers (any thread)
    def pad_for_note(self, note: int) -> int | None:
        """MIDI note -> pad index, or None when no pad answers it."""
        pad = int(note) - self.settings.first_note
        return pad if 0 <= pad < self.n_pads else None

    def velocity_gain(self, velocity: float) -> float:
        """MIDI velocity 0..127 -> linear gain through the velocity curve."""
        v = min(max(float(velocity), 0.0), 127.0) / 127.0
        return v ** self.settings.velocity_exponent

    def set_velocity_exponent(self, exponent: float) -> None:
        """Change the velocity curve (the C mixer's JACK callback reads it as a table)."""
        self.settings.velocity_exponent = float(exponent)
        self.mix.set_velocity_table([self.velocity_gain(v) for v in range(128)])

    def note_on(self, note: int, velocity: float, offset: int = 0) -> bool:
        """Queue a hit for a MIDI note (velocity 0..127); False when no pad answers."""
        pad = self.pad_for_note(note)
        if pad is None or velocity <= 0:
            return False
        self.mix.trigger(pad, self.velocity_gain(velocity), int(offset))
        return True

    def trigger(self, pad: int, gain: float = 1.0, offset: int = 0) -> None:
        """Queue a hit of ``pad`` with linear ``gain``, ``offset`` samples into the next block."""
        if not 0 <= pad < self.n_pads:
            raise FlowshotError(f"pad {pad} does not exist; pads are 0..{self.n_pads - 1}")
        self.mix.trigger(int(pad), float(gain), int(offset))

    # ------------------------------------------------------------------ audio thread
    def process(self, out: np.ndarray, split: np.ndarray | None = None) -> None:
        """Mix every sounding voice into ``out`` [frames] (float32, overwritten).

        With ``split`` [frames] (overwritten too), the voices of the split pads (``split_pads``) go
        there instead of into ``out``; without it every voice goes into ``out``. Queued hits
        start at their offset inside this block (0 for live input). Called by the audio
        callback: no model call, no lock, no array allocation.
        """
        self.mix.process(out, split)

    # The voices' counters and readers (UI, stats, tests).
    frames_done = property(lambda self: self.mix.frames_done)
    last_hit = property(lambda self: self.mix.last_hit)  # frame of each pad's last hit, -1 never
    hits = property(lambda self: self.mix.hits)
    steals = property(lambda self: self.mix.steals)
    stale_hits = property(lambda self: self.mix.stale_hits)
    stale_frames = property(lambda self: self.mix.stale_frames)  # summed over the stale hits
    stale_frames_max = property(lambda self: self.mix.stale_frames_max)
    frames_limited = property(lambda self: self.mix.frames_limited)  # samples the master limiter turned down
    limiter_min_gain = property(lambda self: self.mix.limiter_min_gain)  # its deepest gain, 1 = never acted
    queued = property(lambda self: self.mix.queued)  # hits waiting for the next block

    @property
    def active_voices(self) -> int:
        """Voices that count against the polyphony (sounding, not fading out)."""
        return self.mix.active_voices

    def voices(self) -> list[tuple[int, int, float, bool]]:
        """Sounding voices as (pad, playhead, gain, fading), oldest first (for tests and the UI)."""
        return self.mix.voices()

    # ------------------------------------------------------------------ latent controls (control threads)
    def _changed(self, pads: list[int] | range) -> None:
        self._dirty.update(pads)
        self._generation += 1
        for i in pads:
            if self._pad_generation[i] >= self._pad_wanted[i]:
                self._stale_from[i] = self.frames_done  # it was up to date until now
            self._pad_wanted[i] = self._generation
        if self._changed_at is None:
            self._changed_at = time.perf_counter()
        for wake in self._wakes:
            wake.set()

    def _check_pad(self, pad: int) -> int:
        if not 0 <= int(pad) < self.n_pads:
            raise FlowshotError(f"pad {pad} does not exist; pads are 0..{self.n_pads - 1}")
        return int(pad)

    def set_knob(self, k: int, value: float) -> float:
        """Set macro knob ``k`` (0-based) to ``value`` macro stds (clamped); returns the value used."""
        if not 0 <= k < self.n_knobs:
            raise FlowshotError(f"knob {k} does not exist; knobs are 0..{self.n_knobs - 1}")
        r = self.settings.knob_range
        value = min(max(float(value), -r), r)
        if not math.isfinite(value):
            raise FlowshotError(f"knob value {value} is not a finite number")
        with self._lock:
            if self.knobs[k] == value:
                return value
            self.knobs[k] = value
            self._changed(range(self.n_pads))
        return value

    def set_temperature(self, t: float) -> float:
        """Temperature of later ``randomize_pad`` draws (clamped to 0..3)."""
        t = float(t)
        if not math.isfinite(t):
            raise FlowshotError(f"temperature {t} is not a finite number")
        self.temperature = min(max(t, 0.0), 3.0)
        return self.temperature

    def randomize_pad(self, pad: int, seed: int | None = None) -> int:
        """Give ``pad`` a new prior draw at the current temperature; returns the seed used."""
        pad = self._check_pad(pad)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        base = self._prior_draw(int(seed), self.temperature)
        with self._lock:
            self.pads[pad] = Pad(base=base, label="random", source=f"random:{seed}@{self.temperature:g}")
            self._changed(self._dependants(pad))
        return int(seed)

    def set_pad(self, pad: int, base: np.ndarray | None = None, latent: np.ndarray | None = None,
                label: str = "", source: str = "") -> None:
        """Give ``pad`` a base point [D] (preferred) or a fixed latent [D]."""
        pad = self._check_pad(pad)
        d = self.backend.latent_dim
        vec = base if base is not None else latent
        arr = np.asarray(vec, dtype=np.float64).reshape(-1)
        if arr.shape != (d,) or not np.all(np.isfinite(arr)):
            raise FlowshotError(f"pad {pad}: a latent must be {d} finite numbers, got shape {arr.shape}")
        with self._lock:
            self.pads[pad] = Pad(base=arr if base is not None else None, latent=arr if base is None else None,
                                 label=label, source=source)
            self._changed(self._dependants(pad))

    def load_wav(self, pad: int, path: str | Path) -> None:
        """Encode a sound file into ``pad``, prepared like the training data (``read_example``)."""
        pad = self._check_pad(pad)
        audio = read_example(Path(path), self.backend)
        z = self.backend.encode(audio)
        name = Path(path).name
        if self.backend.has_inverse:
            self.set_pad(pad, base=self.backend.latent_to_base(z[None])[0], label=name, source=f"wav:{name}")
        else:
            self.set_pad(pad, latent=z, label=name, source=f"wav:{name}")

    def morph(self, pad: int, target: int, amount: float) -> None:
        """Make ``pad`` sound ``amount`` (0..1) of the way from its own point to ``target``'s (slerp in base space)."""
        pad, target = self._check_pad(pad), self._check_pad(target)
        amount = float(amount)
        if not math.isfinite(amount):
            raise FlowshotError(f"morph amount {amount} is not a finite number")
        if self.pads[pad].base is None or self.pads[target].base is None:
            raise FlowshotError(f"pads {pad} and {target} need base points to morph (a WAV pad on ONNX has none)")
        with self._lock:
            p = self.pads[pad]
            p.morph_target = None if target == pad else target
            p.morph_amount = min(max(amount, 0.0), 1.0)
            self._changed([pad])

    def _dependants(self, pad: int) -> list[int]:
        """``pad`` and every pad morphing towards it."""
        return [pad] + [i for i, p in enumerate(self.pads) if p.morph_target == pad and i != pad]

    def knob_offset(self) -> np.ndarray:
        """Base-space offset [D] of the current knobs: sum_k knob_k * std_k * direction_k."""
        w = np.asarray(self.knobs) * self.macro_std
        return w @ self.directions if len(w) else np.zeros(self.backend.latent_dim)

    def pad_base_point(self, pad: int) -> np.ndarray | None:
        """Pad's base point after morphing, before knobs (None for a fixed-latent pad)."""
        p = self.pads[pad]
        if p.base is None:
            return None
        if p.morph_target is not None and self.pads[p.morph_target].base is not None:
            return slerp(p.base, self.pads[p.morph_target].base, p.morph_amount)
        return p.base

    # ------------------------------------------------------------------ rendering
    def render_pending(self, limit: int | None = None, lane: str = "all") -> list[int]:
        """Render changed pads now in one batched model call; returns the pads rendered.

        The pad hit last goes first, then the one that has waited longest since its change
        (pads hit in the last ``RECENT_S`` count ``RECENT_BONUS_S`` longer); ``limit`` renders
        only that many of them (None: all), the others stay pending. Longest-waiting, not
        most recently hit: under a knob sweep every change starts the order over, and a
        most-recently-hit order never reached the pads hit longest ago, often the next ones
        played (in the real-time benchmark every hit played a render 0.65 to 0.77 s behind
        the knob). ``lane`` picks among them for one of two render threads: "lead" takes
        only the pad hit last (the lead pad) through ``backend``, and only to answer a
        change; "rest" every other one, and the lead pad once answered, through
        ``background``; "all" (one thread) takes any.
        """
        if lane not in ("all", "lead", "rest"):
            raise ValueError(f"lane {lane!r} is not all, lead or rest")
        with self._lock:
            hit = self.last_hit
            lead = max(range(self.n_pads), key=lambda i: (hit[i], -i))
            # The lead lane answers changes: it takes the lead pad only while a change is
            # still unanswered (_changed_at set). A pending pad hit after that goes to the
            # rest lane, so the lead worker is idle when the next change comes instead of
            # mid-render (a call cannot be interrupted): the worst knob-to-sound time in
            # the real-time benchmark fell from 18-23 ms to 11-13 (docs/benchmarks.md).
            answer = self._changed_at is not None
            if lane == "lead":
                pads = [lead] if lead in self._dirty and answer else []
            else:
                recent = self.frames_done - RECENT_S * self.output_rate
                bonus = RECENT_BONUS_S * self.output_rate

                def waited(i: int) -> tuple:
                    played = hit[i] >= 0 and hit[i] >= recent
                    return (i != lead, self._stale_from[i] - (bonus if played else 0), -hit[i], i)

                pads = sorted((i for i in self._dirty if not (lane == "rest" and i == lead and answer)), key=waited)
            generation = self._generation
            if not pads:
                if not self._dirty and not self._in_flight:
                    self._rendered = generation
                return []
            pads = pads[:limit] if limit else pads
            # The change-to-sound time is the played pad's: the rest lane times a change
            # only when it left the lead pad alone.
            timed = lane != "rest" or lead not in self._dirty
            self._dirty.difference_update(pads)
            self._in_flight += len(pads)
            taken_at = self.frames_done
            changed_at = None
            if timed:
                changed_at, self._changed_at = self._changed_at, None
            offset = self.knob_offset()
            bases, fixed = [], []
            for i in pads:
                u = self.pad_base_point(i)
                if u is None:
                    fixed.append((i, self.pads[i].latent.copy()))
                else:
                    bases.append((i, u + offset))
        backend = self.background if lane == "rest" and self.background is not None else self.backend
        # The lead's answer to a change renders with the background worker stopped: beside a
        # background render its worst case was 8-12 ms, held 7-8 (docs/benchmarks.md).
        hold = self.background.hold if lane == "lead" and self._hold_background else contextlib.nullcontext
        t0 = time.perf_counter()
        try:
            order = [i for i, _ in bases] + [i for i, _ in fixed]
            zs, audio = [], []
            with hold():
                if bases:
                    zb, ab = backend.render_bases(np.stack([u for _, u in bases]))
                    zs.append(zb)
                    audio += ab
                if fixed:
                    zf = np.stack([lat for _, lat in fixed])
                    zs.append(zf)
                    audio += backend.render_pads(zf)
            z = np.concatenate(zs)
            # A worker process reports its own time; in-process, the call is the model.
            compute = getattr(backend, "last_compute_s", None) if len(zs) == 1 else None
            if compute is None:
                compute = time.perf_counter() - t0
        except Exception:
            with self._lock:
                self._in_flight -= len(pads)
                self._dirty.update(pads)  # try again at the next change
                if self._changed_at is None:
                    self._changed_at = changed_at
            self.render_errors += 1
            raise
        if self.output_rate != backend.render_rate:
            import soxr

            audio = [soxr.resample(buf, backend.render_rate, self.output_rate).astype(np.float32) for buf in audio]
        with self._lock:
            for j, i in enumerate(order):
                if generation <= self._pad_generation[i]:
                    continue  # the other thread already put a newer render of this pad on
                self._pad_generation[i] = generation
                self._stale_from[i] = taken_at  # only read while the pad is still behind
                self.pad_latent[i] = z[j]
                self.set_pad_audio(i, audio[j])
                if changed_at is not None:
                    landed = time.perf_counter()
                    self._response[self._responses % RESPONSE_LOG] = (landed - changed_at, landed - t0, compute)
                    self._responses += 1
                    changed_at = None
            self._in_flight -= len(pads)
            self.render_ms = (time.perf_counter() - t0) * 1e3
            self.render_count += 1
            if not self._dirty and not self._in_flight:
                self._rendered = self._generation
        return order

    @property
    def pending_pads(self) -> int:
        """Pads whose latent or knobs changed and that still play their old render."""
        return len(self._dirty) + self._in_flight

    def response_times(self, part: str = "change") -> np.ndarray:
        """Seconds from a change to its first re-rendered pad sounding, the last ``RESPONSE_LOG``.

        ``part``: "change", the whole time; "call", of it, from that render's model call
        starting to its pad being live (the rest is waiting for the call to start);
        "model", of that, the model's own time in its worker process (the rest of the call
        is the hand-off: pipe, shared memory, the host's GIL and lock).
        """
        if part not in RESPONSE_PARTS:
            raise ValueError(f"part {part!r} is not {', '.join(RESPONSE_PARTS)}")
        n = min(self._responses, RESPONSE_LOG)
        return self._response[:n, RESPONSE_PARTS.index(part)].copy()

    def set_pad_audio(self, pad: int, buf: np.ndarray) -> None:
        """Make ``buf`` (float32 [frames] at the output rate) what later hits of ``pad`` play;
        voices already playing keep the old buffer."""
        buf = np.ascontiguousarray(buf, dtype=np.float32)
        if self.settings.gain_db != 0.0:
            buf = buf * np.float32(10.0 ** (self.settings.gain_db / 20.0))
        self._retire(self.pad_audio[pad])
        self.pad_audio[pad] = buf
        self.mix.set_pad(pad, buf)

    def _retire(self, buf: np.ndarray) -> None:
        """Keep a replaced pad buffer until no voice can still hold it, then let it go here.

        A voice that took ``buf`` started at most one block after the swap and ends (and
        drops it) ``len(buf)`` frames later; four of the largest blocks cover the rest.
        When the audio is not running the frame count stands still, so the list is capped
        beyond ``64 * n_pads`` buffers: then the oldest no sounding voice plays go.
        The C mixer's voices hold bare pointers: see ``_may_free``.
        """
        now = self.frames_done
        retired = self._retired
        retired.append((now, buf))
        cap = 64 * self.n_pads
        while retired and (now - retired[0][0] > len(retired[0][1]) + 4 * MAX_BLOCK
                           or len(retired) > cap and self._may_free(*retired[0], now)):
            retired.popleft()

    def _may_free(self, swapped: int, buf: np.ndarray, now: int) -> bool:
        """A capped list's oldest buffer may go: a Python voice keeps its own reference, a C
        voice only a pointer, so there no voice may play it and none may start on it."""
        return not self.mix.native or (now - swapped > 2 * MAX_BLOCK and not self.mix.holds(buf))

    def start(self) -> None:
        """Render all pads now, then keep re-rendering changed pads in background threads."""
        self.render_pending()
        self._stop = False
        lanes = ["all"] if self.background is None else ["lead", "rest"]
        self._threads = [threading.Thread(target=self._render_loop, args=(lane, wake), name=f"flowshot-render-{lane}",
                                          daemon=True) for lane, wake in zip(lanes, self._wakes)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop = True
        for wake in self._wakes:
            wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def _render_loop(self, lane: str, wake: threading.Event) -> None:
        debounce = self.settings.debounce_ms * 1e-3
        while not self._stop:
            # A hit can make a pad that is still waiting the lead pad, which the rest lane
            # then leaves alone; hits come from the audio thread, which may not wake anyone,
            # so the lead lane looks again every few ms while pads are pending.
            wake.wait(LEAD_POLL_S if lane == "lead" and self._dirty else None)
            if self._stop:
                break
            if debounce > 0:
                time.sleep(debounce)  # let a burst of messages settle into one render
            wake.clear()
            try:
                # One pad per call, in ``render_pending``'s order: a model call cannot be
                # interrupted, so a change waits at most one pad's render for its turn
                # (a batch of 4 would make it wait three times longer; batching saves
                # little per pad on one thread). A newer change starts the round over.
                while self.render_pending(limit=1, lane=lane) and not wake.is_set():
                    pass
            except Exception as err:  # a failing model must not kill the instrument
                if self.on_render_error is not None:
                    self.on_render_error(f"render failed: {type(err).__name__}: {err}")

    def wait_rendered(self, timeout: float = 5.0) -> bool:
        """Block until no change is pending (tests and offline use)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._rendered >= self._generation:
                return True
            time.sleep(0.002)
        return False


def read_example(path: Path, backend: Backend) -> np.ndarray:
    """A sound file as the encoder was trained to hear it: float32 [L] at the model rate.

    The training data's own preprocessing (``flowshot.model.preprocess``: mono, resampled,
    leading silence trimmed to the onset, cropped with a fade or padded, normalised) with
    the model's recorded settings; files exported before the settings were recorded get
    the defaults. Without it a file with a little silence before the hit, or a quiet one,
    encodes to a different sound than it is.
    """
    from dataclasses import fields

    from flowshot.model.audio_io import read_audio
    from flowshot.model.config import AudioConfig
    from flowshot.model.preprocess import SkipFile, preprocess

    known = {f.name for f in fields(AudioConfig)}
    settings = {k: v for k, v in backend.audio_settings.items() if k in known}
    settings.update(sample_rate=backend.sample_rate, length=backend.length)
    audio, sr = read_audio(path)  # AudioReadError (a FlowshotError) names the file and why
    try:
        return preprocess(audio, sr, AudioConfig(**settings))
    except SkipFile as err:
        raise FlowshotError(f"{path}: {err}; give a sound file with an audible hit") from None
