"""MIDI input: notes hit pads, control changes turn knobs.

Ports are polled from the audio callback (see ``MidiInput``) and parsed with mido. When a
JACK server runs, the port is a JACK MIDI port of the host's own JACK client
(``JackMidiInput``, not RtMidi's JACK backend); otherwise python-rtmidi on the platform's
default API (ALSA, CoreMIDI, WinMM).

Default map (override with ``--map FILE``, JSON or TOML):
- notes ``first_note`` .. ``first_note + 15`` (36..51, C1..D#2) -> pads 0..15;
- CC 21..28 -> knobs 0..7 (the knob row of many pad controllers), CC 1 (mod wheel) -> knob 0;
- CC value 64 is the knob's centre (0), 127 is +range, 1 is -range (range = 3 stds).
"""

from __future__ import annotations

import collections
import json
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import Engine
from flowshot.realtime.log import LogOnce

DEFAULT_CC = {**{21 + k: k for k in range(8)}, 1: 0}
PORT_NAME = "flowshot"
_SILENT = {"note_off", "clock", "active_sensing", "start", "stop", "continue", "songpos", "song_select"}


@dataclass
class MidiMap:
    """Which notes hit which pads and which CCs turn which knobs.

    Args:
        notes: MIDI note -> pad index (None: ``first_note + pad``, the engine's own mapping).
        cc: controller number -> knob index (0-based).
        channel: only this MIDI channel (1..16) is listened to; None = all.
    """

    notes: dict[int, int] | None = None
    cc: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_CC))
    channel: int | None = None


def load_map(path: str | Path) -> MidiMap:
    """Read a map file: ``{"notes": {"36": 0, ...}, "cc": {"21": 0, ...}, "channel": 10}``.

    JSON or TOML (by suffix ``.toml``); every key is optional.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except FileNotFoundError:
        raise FlowshotError(f"MIDI map {path} does not exist; pass an existing --map file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FlowshotError(f"MIDI map {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({err})") from None
    try:
        m = MidiMap()
        if "notes" in data:
            m.notes = {_midi_int(k, "note"): int(v) for k, v in data["notes"].items()}
        if "cc" in data:
            m.cc = {_midi_int(k, "cc"): int(v) for k, v in data["cc"].items()}
        if data.get("channel") is not None:
            m.channel = int(data["channel"])
            if not 1 <= m.channel <= 16:
                raise ValueError(f"channel {m.channel} (1..16)")
    except (AttributeError, TypeError, ValueError, OverflowError) as err:  # int(Infinity) overflows
        raise FlowshotError(f"MIDI map {path} has a bad entry ({err}); use {{\"notes\": {{\"36\": 0}}, \"cc\": {{\"21\": 0}}}}") from None
    return m


def _midi_int(key: Any, what: str) -> int:
    v = int(key)
    if not 0 <= v <= 127:
        raise ValueError(f"{what} {v} outside 0..127")
    return v


def cc_to_knob(value: int, knob_range: float) -> float:
    """CC 0..127 -> knob value: 64 -> 0, 127 -> +range, 1 -> -range (0 clamps to -range)."""
    return max(-knob_range, min(knob_range, (value - 64) / 63.0 * knob_range))


class MidiHandler:
    """Turns mido messages into engine calls (used by the live port and by ``render-midi``)."""

    def __init__(self, engine: Engine, mapping: MidiMap | None = None, log: LogOnce | None = None):
        self.engine = engine
        self.map = mapping or MidiMap()
        self.log = log or LogOnce()
        self.received = 0

    def pad_for_note(self, note: int) -> int | None:
        if self.map.notes is not None:
            pad = self.map.notes.get(note)
            return pad if pad is not None and 0 <= pad < self.engine.n_pads else None
        return self.engine.pad_for_note(note)

    def note_pad(self, channel: int, note: int) -> int | None:
        """The pad a note-on on ``channel`` (0-based) hits; None when the map ignores it."""
        if self.map.channel is not None and channel != self.map.channel - 1:
            return None
        return self.pad_for_note(note)

    def handle(self, msg: Any, offset: int = 0) -> None:
        """Apply one mido message; ``offset`` = sample position inside the next block."""
        self.received += 1
        if self.map.channel is not None and getattr(msg, "channel", self.map.channel - 1) != self.map.channel - 1:
            return
        if msg.type == "note_on" and msg.velocity > 0:
            pad = self.pad_for_note(msg.note)
            if pad is None:
                self.log(f"note{msg.note}", f"MIDI note {msg.note} has no pad (pads answer notes of the map); ignored")
                return
            self.engine.trigger(pad, self.engine.velocity_gain(msg.velocity), offset)
        elif msg.type == "control_change":
            knob = self.map.cc.get(msg.control)
            if knob is None or knob >= self.engine.n_knobs:
                self.log(f"cc{msg.control}", f"MIDI CC {msg.control} is not mapped to a knob; ignored")
                return
            self.engine.set_knob(knob, cc_to_knob(msg.value, self.engine.settings.knob_range))
        elif msg.type == "note_on" or msg.type in _SILENT:
            return
        else:
            self.log(msg.type, f"MIDI {msg.type} messages are not used; ignored")

    def __call__(self, msg: Any) -> None:
        try:
            self.handle(msg)
        except Exception as err:  # a bad message must never kill the MIDI thread
            self.log("error", f"MIDI message {msg!r} failed: {err}")


class MidiInput:
    """An open MIDI input, read by polling rather than by callback; base of the two ports.

    ``pump``, called at the start of every audio callback (which holds the GIL anyway),
    drains what the port has received: note-ons start in that same block, everything else
    (CCs, notes without a pad, messages to log) goes to a control thread that may take
    locks and log. Subclasses provide ``pump``, handing each message's bytes to ``_take``.

    Args:
        handler: what applies the messages (the same one ``render-midi`` uses).
        queue_size: messages the port and the control queue keep before dropping the oldest.
        control_interval: seconds between the control thread's looks at its queue.
    """

    def __init__(self, handler: MidiHandler, queue_size: int = 4096, control_interval: float = 0.003):
        self.handler = handler
        self._control: collections.deque = collections.deque(maxlen=queue_size)
        self._interval = control_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._control_loop, name="flowshot-midi", daemon=True)
        self._thread.start()

    def pump(self) -> None:
        """Drain the port; call from the audio callback, before mixing the block.

        No lock, no logging, no blocking: see ``_take``.
        """
        raise NotImplementedError

    def connect(self) -> None:
        """Connect to the source port once audio runs (where the port needs it)."""

    def _close_port(self) -> None:
        """Release the port (where it is not released with the audio output)."""

    def _take(self, data: Any, offset: int) -> None:
        """One message's bytes: a note-on with a pad is a hit ``offset`` frames into this
        block; anything else goes to the control thread's queue."""
        if len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0:
            pad = self.handler.note_pad(data[0] & 0x0F, data[1])
            if pad is not None:
                self.handler.received += 1
                engine = self.handler.engine
                engine.trigger(pad, engine.velocity_gain(data[2]), offset)
                return
        self._control.append(data)

    def _drain(self) -> None:
        """Move messages read elsewhere (the C callback's ring) into the control queue."""

    def _control_loop(self) -> None:
        import mido

        queue = self._control
        while not self._stop.wait(self._interval):
            self._drain()
            while queue:
                data = queue.popleft()
                try:
                    msg = mido.Message.from_bytes(data)
                except (ValueError, TypeError):
                    self.handler.log("bytes", f"MIDI bytes {list(data)} are not a valid message; ignored")
                    continue
                self.handler(msg)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._close_port()


def _pick_port(name: str, names: list[str]) -> int:
    """Index of the port called ``name`` (exactly, else a unique case-blind part of it)."""
    match = [i for i, n in enumerate(names) if n == name] or \
            [i for i, n in enumerate(names) if name.lower() in n.lower()]
    if len(match) != 1:
        listing = ", ".join(repr(n) for n in names) or "none"
        what = "matches several ports" if match else "is not a MIDI port"
        raise FlowshotError(f"--midi {name!r} {what}; ports: {listing} (or give --midi alone for a virtual port)")
    return match[0]


class JackMidiInput(MidiInput):
    """A MIDI input port of the host's own JACK client (``flowshot:flowshot``).

    ``pump`` runs in that client's process callback, before the block is mixed: it reads
    the cycle's events where JACK keeps them, so each note starts at its own frame of the
    block. An event longer than 3 bytes (sysex, never used) is skipped before its bytes
    are copied: RtMidi's JACK input copied whatever size it was handed and crashed on
    bursts (see ``realtime/jack_io.py``).

    Args:
        handler: what applies the messages.
        jack_client: the host's ``jack_io.JackClient`` (not yet activated).
        name: None/"" only opens the port; otherwise the name (or a unique part of it)
            of a JACK MIDI output to connect to once the client runs (``connect``).
        queue_size: messages the control queue keeps before dropping the oldest.
    """

    def __init__(self, handler: MidiHandler, jack_client: Any, name: str | None = None, queue_size: int = 4096):
        self._client = jack_client.client
        self._source = None
        if name:
            sources = jack_client.midi_sources()
            self._source = sources[_pick_port(name, sources)]
        self.port = self._client.midi_inports.register(PORT_NAME)
        self.name = self._source or self.port.name
        self._mix: Any = None  # the C mixer, when its callback reads the port instead of ``pump``
        self._notes_seen = 0
        super().__init__(handler, queue_size)

    def read_by(self, mix: Any) -> None:
        """Let the C mixer's JACK callback read the port (``cmix.CVoices.attach_jack``): it
        starts the note-ons itself and leaves every other message to ``_drain``."""
        self._mix = mix

    def _drain(self) -> None:
        mix = self._mix
        if mix is None:
            return
        self._control.extend(mix.pop_control())
        notes = mix.midi_notes
        self.handler.received += notes - self._notes_seen
        self._notes_seen = notes

    def connect(self) -> None:
        """Connect the ``--midi NAME`` source; call once the client is active."""
        if self._source is not None:
            try:
                self._client.connect(self._source, self.port)
            except Exception as err:
                raise FlowshotError(f"cannot connect --midi {self._source!r} ({err}); check the port") from None

    def pump(self) -> None:
        for offset, buffer in self.port.incoming_midi_events():
            if len(buffer) > 3:  # sysex (never used), or a size no note or CC has
                continue
            data = bytes(buffer)
            if data and data[0] < 0xF0:  # system common and real-time messages are never used
                self._take(data, offset)


class RtMidiInput(MidiInput):
    """A python-rtmidi input on the platform's default API (ALSA, CoreMIDI, WinMM).

    Polled, not by callback: with a callback rtmidi would call into Python on its own MIDI
    thread; without one it only queues the bytes and ``pump`` reads them.
    """

    def __init__(self, handler: MidiHandler, name: str | None = None, queue_size: int = 4096):
        import rtmidi

        try:
            self._in = rtmidi.MidiIn(rtmidi.API_UNSPECIFIED, PORT_NAME, queue_size_limit=queue_size)
            self._in.ignore_types(sysex=True, timing=True, active_sense=True)
            if not name:
                self._in.open_virtual_port(PORT_NAME)
                self.name = PORT_NAME
            else:
                names = self._in.get_ports()
                index = _pick_port(name, names)
                self._in.open_port(index, PORT_NAME)
                self.name = names[index]
        except FlowshotError:
            self._in.delete()
            raise
        except Exception as err:
            raise FlowshotError(f"cannot open MIDI input ({err}); check --midi (without an ALSA sequencer, start a JACK server)") from None
        super().__init__(handler, queue_size)

    def pump(self) -> None:
        while (item := self._in.get_message()) is not None:
            self._take(item[0], 0)

    def _close_port(self) -> None:
        self._in.close_port()
        self._in.delete()
