"""The live terminal panel (rich): pads, knobs, voices, render time, callback load, xruns."""

from __future__ import annotations

from typing import Callable

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flowshot.realtime.engine import Engine


def build_panel(engine: Engine, stats: dict[str, float], title: str = "flowshot") -> Panel:
    """One frame of the panel from the engine state and the host's stats."""
    rate = engine.output_rate
    now = engine.frames_done
    pads = Table.grid(padding=(0, 1))
    for _ in range(4):
        pads.add_column(width=18)
    cells = []
    for i, p in enumerate(engine.pads):
        age = (now - engine.last_hit[i]) / rate if engine.last_hit[i] >= 0 else None
        lit = age is not None and age < 0.15
        note = engine.settings.first_note + i
        label = f"{i:2d} n{note} {p.label[:8]}"
        cells.append(Text(label, style="bold black on yellow" if lit else "dim" if age is None else ""))
    for row in range(0, len(cells), 4):
        pads.add_row(*cells[row : row + 4])
    knobs = Table(show_header=False, box=None, padding=(0, 1))
    for k, (label, v) in enumerate(zip(engine.knob_labels, engine.knobs)):
        r = engine.settings.knob_range
        filled = int(round((v + r) / (2 * r) * 16))
        bar = Text("#" * filled, style="cyan") + Text("." * (16 - filled), style="dim")
        knobs.add_row(Text(str(k)), Text(label[:14]), bar, Text(f"{v:+.2f}"))
    line = Text(
        f"voices {engine.active_voices}/{engine.settings.polyphony}  render {engine.render_ms:.1f} ms  "
        f"callback load {100 * stats.get('load_max', 0.0):.0f}%  xruns {int(stats.get('xruns', 0))}  "
        f"temperature {engine.temperature:.2f}  hits {engine.hits}"
    )
    return Panel(Group(pads, knobs, line), title=title)


class LiveUI:
    """Refreshes ``build_panel`` a few times a second until ``stop``."""

    def __init__(self, engine: Engine, stats: Callable[[], dict[str, float]], title: str = "flowshot"):
        self.engine = engine
        self.stats = stats
        self.title = title
        self._live: Live | None = None

    def __enter__(self) -> "LiveUI":
        self._live = Live(build_panel(self.engine, self.stats(), self.title), refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(build_panel(self.engine, self.stats(), self.title))

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
