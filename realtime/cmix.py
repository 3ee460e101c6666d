"""``CVoices``: the voice mixer of ``realtime/_cmix.c`` behind ``PyVoices``' interface.

Every array the C side reads or writes is a numpy array held here, so it lives as long as
the mixer; the C state holds their addresses. On JACK (``attach_jack``) the C library is
the client's process callback: it reads the cycle's MIDI, starts the hits of note-ons
through a note-to-pad table and a velocity table built here, hands every other message to
Python through a ring (``pop_control``) and mixes, with no GIL and no Python in the
real-time thread. Elsewhere ``process`` runs the same mixing from a Python callback.
"""

from __future__ import annotations

import ctypes
from ctypes import c_double, c_float, c_int32, c_int64, c_uint8, c_void_p
from typing import Any, Callable

import numpy as np

from flowshot.realtime import limiter

_lib = None
_why = ""


def _load():
    global _lib, _why
    if _lib is None and not _why:
        try:
            from flowshot.realtime import _cmix

            lib = ctypes.PyDLL(_cmix.__file__)  # PyDLL: calls keep the GIL, so Python producers take turns
        except (ImportError, OSError) as err:
            _why = str(err)
            return None
        lib.fs_state_size.restype = ctypes.c_size_t
        lib.fs_push.argtypes = [c_void_p, c_int32, c_float, c_int32]
        lib.fs_push.restype = ctypes.c_int
        lib.fs_set_pad.argtypes = [c_void_p, c_int32, c_void_p, c_int64]
        lib.fs_process.argtypes = [c_void_p, c_void_p, c_void_p, c_int64]
        lib.fs_ctl_pop.argtypes = [c_void_p, c_void_p]
        lib.fs_ctl_pop.restype = ctypes.c_int
        lib.fs_jack_attach.argtypes = [c_void_p]
        lib.fs_jack_attach.restype = ctypes.c_int
        if lib.fs_state_size() != ctypes.sizeof(_State):
            _why = f"_cmix's state is {lib.fs_state_size()} bytes, cmix.py expects {ctypes.sizeof(_State)}: rebuild"
            return None
        _lib = lib
    return _lib


def available() -> bool:
    """True when the C mixer was built and loads."""
    return _load() is not None


def why_unavailable() -> str:
    _load()
    return _why or "loaded"


class _State(ctypes.Structure):
    # The C struct fs_state, field for field (fs_state_size checks the layout).
    _fields_ = [(n, c_int32) for n in ("n_pads", "n_slots", "polyphony", "fade_len", "ring_size", "ctl_size")] + \
        [(n, c_void_p) for n in ("ramp", "pad_seq", "pad_buf", "pad_len", "pad_group", "pad_split", "pad_generation",
                                 "pad_wanted", "stale_from", "last_hit", "v_active", "v_pad", "v_pos", "v_len",
                                 "v_age", "v_fade", "v_gain", "v_buf", "ring_pad", "ring_offset", "ring_gain")] + \
        [(n, c_int64) for n in ("ring_head", "ring_tail", "ring_dropped", "age", "frames_done", "hits", "steals",
                                "stale_hits", "stale_frames", "stale_frames_max")] + \
        [("client", c_void_p), ("out_port", c_void_p * 2), ("midi_port", c_void_p), ("n_out", c_int32),
         ("split", c_int32), ("note_pad", c_void_p), ("vel_gain", c_void_p), ("ctl", c_void_p)] + \
        [(n, c_int64) for n in ("ctl_head", "ctl_tail", "ctl_dropped", "midi_notes", "midi_skipped", "callbacks",
                                "callback_ns", "callback_max_ns", "start_late_max")] + \
        [("lim_ceiling", c_double), ("lim_release", c_double), ("lim_snap", c_double), ("lim_gain", c_double * 2),
         ("lim_min_gain", c_double), ("lim_frames", c_int64)]


class CVoices:
    """The C voice mixer; same arguments and readers as ``PyVoices``."""

    native = True

    def __init__(self, n_pads: int, polyphony: int, fade_len: int, queue_size: int, control_size: int = 4096):
        lib = _load()
        if lib is None:
            raise RuntimeError(f"the C mixer is not available: {_why}")
        self._lib = lib
        self.n_pads, self.polyphony, self.fade_len = int(n_pads), int(polyphony), max(1, int(fade_len))
        n = 2 * self.polyphony
        self._silence = np.zeros(1, np.float32)
        self._ramp = np.linspace(1.0, 0.0, self.fade_len, dtype=np.float32)
        self._pad_seq = np.zeros(n_pads, np.uint64)
        self._pad_buf = np.full(n_pads, self._silence.ctypes.data, np.uint64)
        self._pad_len = np.ones(n_pads, np.int64)
        self._pad_group = np.full(n_pads, -1, np.int32)
        self._pad_split = np.zeros(n_pads, np.uint8)
        self.pad_generation = np.zeros(n_pads, np.int64)
        self.pad_wanted = np.ones(n_pads, np.int64)
        self.stale_from = np.zeros(n_pads, np.int64)
        self.last_hit = np.full(n_pads, -1, np.int64)
        self._v_active = np.zeros(n, np.uint8)
        self._v_pad = np.zeros(n, np.int32)
        self._v_pos = np.zeros(n, np.int64)
        self._v_len = np.zeros(n, np.int64)
        self._v_age = np.zeros(n, np.int64)
        self._v_fade = np.full(n, -1, np.int64)
        self._v_gain = np.zeros(n, np.float32)
        self._v_buf = np.zeros(n, np.uint64)
        self._ring_pad = np.zeros(queue_size, np.int32)
        self._ring_offset = np.zeros(queue_size, np.int32)
        self._ring_gain = np.zeros(queue_size, np.float32)
        self._note_pad = np.full(16 * 128, -1, np.int16)
        self._vel_gain = np.zeros(128, np.float32)
        self._ctl = np.zeros(control_size * 4, np.uint8)
        s = self._s = _State()
        s.n_pads, s.n_slots, s.polyphony, s.fade_len = self.n_pads, n, self.polyphony, self.fade_len
        s.ring_size, s.ctl_size = int(queue_size), int(control_size)
        s.lim_gain[0] = s.lim_gain[1] = s.lim_min_gain = 1.0
        s.lim_snap = limiter.SNAP
        for name, kind in _State._fields_:  # each pointer field -> the array of that name above
            if kind is c_void_p and name not in ("client", "midi_port"):
                setattr(s, name, vars(self).get("_" + name, vars(self).get(name)).ctypes.data)
        self._ptr = ctypes.addressof(s)
        self._jack_refs: list[Any] = []

    # ------------------------------------------------------------------ control threads
    def set_limiter(self, ceiling_db: float | None, release_ms: float, sample_rate: float) -> None:
        # Set before the stream starts: the callback reads these two doubles unguarded.
        self._s.lim_ceiling = limiter.ceiling_gain(ceiling_db)
        self._s.lim_release = limiter.release_factor(release_ms, sample_rate)

    def set_groups(self, group_of_pad: list[int]) -> None:
        self._pad_group[:] = group_of_pad

    def set_split(self, split_of_pad: list[bool]) -> None:
        self._pad_split[:] = split_of_pad
        self._s.split = int(any(split_of_pad))

    def set_velocity_table(self, gains: list[float]) -> None:
        """Gain of each MIDI velocity 0..127 for the notes the JACK callback starts."""
        self._vel_gain[:] = gains

    def set_pad(self, pad: int, buf: np.ndarray) -> None:
        """Publish ``pad``'s new buffer; the caller keeps it alive while voices may play it."""
        if buf.dtype != np.float32 or not buf.flags.c_contiguous or buf.ndim != 1:
            raise ValueError("a pad buffer must be a contiguous 1-D float32 array")
        self._lib.fs_set_pad(self._ptr, int(pad), buf.ctypes.data, len(buf))

    def trigger(self, pad: int, gain: float, offset: int) -> None:
        self._lib.fs_push(self._ptr, int(pad), float(gain), int(offset))

    @property
    def queued(self) -> int:
        return int(self._s.ring_head - self._s.ring_tail)

    @property
    def dropped(self) -> int:
        """Hits dropped because the queue was full."""
        return int(self._s.ring_dropped)

    # ------------------------------------------------------------------ audio thread (off JACK)
    def process(self, out: np.ndarray, split: np.ndarray | None = None) -> None:
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError("out must be a contiguous float32 array")
        if split is not None and (split.dtype != np.float32 or not split.flags.c_contiguous or len(split) < len(out)):
            raise ValueError("split must be a contiguous float32 array as long as out")
        self._lib.fs_process(self._ptr, out.ctypes.data, None if split is None else split.ctypes.data, len(out))

    # ------------------------------------------------------------------ JACK
    def attach_jack(self, client: Any, out_ports: list[Any], midi_port: Any | None,
                    note_pad: Callable[[int, int], int | None] | None, velocity_gain: Callable[[int], float]) -> None:
        """Make the C mixer ``client``'s process callback (a ``jack.Client``, not yet active).

        ``out_ports`` (1 or 2 ``jack`` audio ports), ``midi_port`` (a ``jack`` MIDI input or
        None); ``note_pad(channel, note)`` and ``velocity_gain(velocity)`` fill the tables
        the callback reads note-ons through.
        """
        import jack

        ffi = jack._ffi
        s = self._s
        s.client = int(ffi.cast("uintptr_t", client._ptr))
        for c, port in enumerate(out_ports[:2]):
            s.out_port[c] = int(ffi.cast("uintptr_t", port._ptr))
        s.n_out = min(2, len(out_ports))
        s.midi_port = int(ffi.cast("uintptr_t", midi_port._ptr)) if midi_port is not None else None
        if note_pad is not None:
            for ch in range(16):
                for note in range(128):
                    pad = note_pad(ch, note)
                    self._note_pad[ch * 128 + note] = -1 if pad is None else pad
        self.set_velocity_table([velocity_gain(v) for v in range(128)])
        self._jack_refs = [client, out_ports, midi_port]
        err = self._lib.fs_jack_attach(self._ptr)
        if err != 0:
            from flowshot.errors import FlowshotError

            raise FlowshotError(f"could not make the C mixer the JACK process callback (error {err}); "
                                "try --mixer python")

    def pop_control(self) -> list[bytes]:
        """The MIDI messages the callback left for Python (CCs, notes without a pad, ...)."""
        buf = (c_uint8 * 3)()
        out = []
        while True:
            n = self._lib.fs_ctl_pop(self._ptr, buf)
            if n == 0:
                return out
            out.append(bytes(buf[:n]))

    # ------------------------------------------------------------------ counters and readers
    frames_done = property(lambda self: int(self._s.frames_done))
    hits = property(lambda self: int(self._s.hits))
    steals = property(lambda self: int(self._s.steals))
    stale_hits = property(lambda self: int(self._s.stale_hits))
    stale_frames = property(lambda self: int(self._s.stale_frames))
    stale_frames_max = property(lambda self: int(self._s.stale_frames_max))
    callbacks = property(lambda self: int(self._s.callbacks))
    callback_ms = property(lambda self: self._s.callback_ns * 1e-6)
    callback_max_ms = property(lambda self: self._s.callback_max_ns * 1e-6)
    start_late_max = property(lambda self: int(self._s.start_late_max))
    midi_notes = property(lambda self: int(self._s.midi_notes))
    frames_limited = property(lambda self: int(self._s.lim_frames))
    limiter_min_gain = property(lambda self: float(self._s.lim_min_gain))

    def holds(self, buf: np.ndarray) -> bool:
        """True while a sounding voice plays ``buf``."""
        p = buf.ctypes.data
        return bool(np.any((self._v_active != 0) & (self._v_buf == p)))

    @property
    def active_voices(self) -> int:
        return int(np.sum((self._v_active != 0) & (self._v_fade < 0)))

    def voices(self) -> list[tuple[int, int, float, bool]]:
        live = sorted(np.flatnonzero(self._v_active), key=lambda v: self._v_age[v])
        return [(int(self._v_pad[v]), int(self._v_pos[v]), float(self._v_gain[v]), bool(self._v_fade[v] >= 0))
                for v in live]
