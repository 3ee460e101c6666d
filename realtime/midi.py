"""MIDI input: notes hit pads, control changes turn knobs.

Uses mido's rtmidi backend. There is no ALSA sequencer on many machines (containers, CI), so
when a JACK server runs the JACK MIDI API is used (``mido.backends.rtmidi/UNIX_JACK``);
otherwise the platform default.

Default map (override with ``--map FILE``, JSON or TOML):
- notes ``first_note`` .. ``first_note + 15`` (36..51, C1..D#2) -> pads 0..15;
- CC 21..28 -> knobs 0..7 (the knob row of many pad controllers), CC 1 (mod wheel) -> knob 0;
- CC value 64 is the knob's centre (0), 127 is +range, 1 is -range (range = 3 stds).
"""

from __future__ import annotations

import json
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
    except (AttributeError, TypeError, ValueError) as err:
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


def jack_server_running() -> bool:
    """True when PortAudio sees a JACK server (it never starts one itself)."""
    try:
        import sounddevice as sd

        return any(a["name"].startswith("JACK") and a["devices"] for a in sd.query_hostapis())
    except Exception:
        return False


def midi_backend():
    import mido

    api = "/UNIX_JACK" if jack_server_running() else ""
    return mido.Backend("mido.backends.rtmidi" + api, load=True)


class MidiInput:
    """An open MIDI input feeding a ``MidiHandler``.

    Args:
        handler: what receives the messages.
        name: None/"" opens a virtual input port named ``flowshot``; otherwise the name (or
            a unique part of it) of an existing output port to listen to.
    """

    def __init__(self, handler: MidiHandler, name: str | None = None):
        self.handler = handler
        backend = midi_backend()
        try:
            if not name:
                self.port = backend.open_input(PORT_NAME, virtual=True, client_name=PORT_NAME, callback=handler)
            else:
                names = backend.get_input_names()
                match = [n for n in names if n == name] or [n for n in names if name.lower() in n.lower()]
                if len(match) != 1:
                    listing = ", ".join(repr(n) for n in names) or "none"
                    what = "matches several ports" if match else "is not a MIDI port"
                    raise FlowshotError(f"--midi {name!r} {what}; ports: {listing} (or give --midi alone for a virtual port)")
                self.port = backend.open_input(match[0], callback=handler)
        except FlowshotError:
            raise
        except Exception as err:
            raise FlowshotError(f"cannot open MIDI input ({err}); start a JACK server or check --midi") from None
        self.name = self.port.name

    def close(self) -> None:
        self.port.close()
