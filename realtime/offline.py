"""``render-midi``: the live engine driven by a MIDI file instead of a sound card.

The same pads, voices and knob code run block by block; each note starts at its exact
sample (``round(time * rate)``), and a control change re-renders the pads at its exact
sample before any later note, so the output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import Engine
from flowshot.realtime.midi import MidiHandler


def midi_events(path: str | Path, sample_rate: int) -> list[tuple[int, object]]:
    """(sample position, mido message) for every channel message of a MIDI file, in order."""
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except FileNotFoundError:
        raise FlowshotError(f"MIDI file {path} does not exist; give a .mid file") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise FlowshotError(f"{path} is not a readable standard MIDI file ({type(err).__name__}: {err})") from None
    events = []
    t = 0.0
    for msg in mid:  # iterating a MidiFile yields tempo-aware delta times in seconds
        t += msg.time
        if not msg.is_meta:
            events.append((int(round(t * sample_rate)), msg))
    return events


def render_midi(engine: Engine, handler: MidiHandler, events: list[tuple[int, object]],
                block: int = 256, tail: int | None = None, progress=None) -> np.ndarray:
    """Play ``events`` through ``engine`` offline.

    Args:
        engine: a fresh engine (its pads are rendered first).
        handler: maps messages to the engine (the same code as live MIDI).
        events: (sample, message) pairs, sorted by sample.
        block: frames per ``engine.process`` call.
        tail: frames after the last event (None = one one-shot at the output rate).
        progress: optional callable(done_frames, total_frames).
    Returns:
        mono audio [T] float32 at ``engine.output_rate``; with split pads (``engine.split``)
        [2, T]: the other pads, then the split pads (as ``play`` sends them to its channels).
    """
    engine.render_pending()
    if tail is None:
        tail = int(np.ceil(engine.backend.length * engine.output_rate / engine.backend.sample_rate))
    total = (events[-1][0] if events else 0) + tail
    out = np.zeros(total, np.float32)
    side = np.zeros(total, np.float32) if engine.split else None

    def mix(start: int, end: int) -> None:
        engine.process(out[start:end], None if side is None else side[start:end])

    i = 0
    for b in range(0, total, block):
        e = min(b + block, total)
        cursor = b
        while i < len(events) and events[i][0] < e:
            at, msg = events[i]
            at = max(at, b)
            if msg.type == "note_on":
                handler.handle(msg, offset=at - cursor)
            else:
                # A control change must take effect at its sample: mix up to it, then re-render.
                if at > cursor:
                    mix(cursor, at)
                    cursor = at
                handler.handle(msg)
                engine.render_pending()
            i += 1
        if e > cursor:
            mix(cursor, e)
        if progress is not None:
            progress(e, total)
    return out if side is None else np.stack([out, side])
