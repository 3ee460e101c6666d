"""The live terminal panel (rich): pads, knobs, voices, render time, callback load, xruns, CPU."""

from __future__ import annotations

import os
import time
from typing import Callable

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flowshot.realtime.engine import Engine


def process_cpu_seconds(pid: int | None = None) -> float | None:
    """CPU seconds (user + system, all threads) used by process ``pid`` (None: this one).

    None when the process is gone or /proc is unreadable (not Linux).
    """
    if pid is None or pid == os.getpid():
        return time.process_time()
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return stat_cpu_seconds(f.read().decode("ascii", "replace"))
    except (OSError, ValueError, IndexError):
        return None


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    # The name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    rest = stat[stat.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """A process's CPU use between readings, in % of one core (200 = two cores busy).

    Read at the panel's refresh, never in the audio callback. /proc counts in 10 ms ticks,
    so a new figure is taken only every ``min_interval`` seconds; in between the last one
    is returned (a 0.12 s refresh would otherwise jitter by ~8 %).

    Args:
        pid: the process to watch (None: this one).
        min_interval: shortest wall time a figure is computed over.
    """

    def __init__(self, pid: int | None = None, min_interval: float = 0.5):
        self.pid = pid
        self.min_interval = min_interval
        self._wall = time.monotonic()
        self._cpu = process_cpu_seconds(pid)
        self.percent: float | None = None

    def read(self) -> float | None:
        """The latest figure; None before the first ``min_interval`` or once the process is gone."""
        wall = time.monotonic()
        if wall - self._wall < self.min_interval:
            return self.percent
        cpu = process_cpu_seconds(self.pid)
        if cpu is None or self._cpu is None:
            self.percent = None
        else:
            self.percent = 100.0 * (cpu - self._cpu) / (wall - self._wall)
        self._wall, self._cpu = wall, cpu
        return self.percent


def _cpu_text(cpu: dict[str, float | None] | None) -> str:
    if not cpu:
        return "cpu --"
    return "cpu " + "  ".join(f"{name} {'--' if v is None else f'{v:.0f}%'}" for name, v in cpu.items())


def _limiter_text(engine: Engine, stats: dict[str, float]) -> str:
    if engine.settings.ceiling_db is None:
        return "limiter off"
    deepest = stats.get("limiter_max_db", 0.0)
    return f"limiter {-deepest:.1f} dB" if deepest > 0 else "limiter idle"


def build_panel(engine: Engine, stats: dict[str, float], title: str = "flowshot",
                cpu: dict[str, float | None] | None = None) -> Panel:
    """One frame of the panel from the engine state and the host's stats.

    ``cpu`` maps a process's name to its CPU use in % of one core (None: not known yet).
    """
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
        f"knob->sound {stats.get('response_ms_median', 0.0):.1f} ms  "
        f"callback load {100 * stats.get('load_max', 0.0):.0f}%  xruns {int(stats.get('xruns', 0))}  "
        f"temperature {engine.temperature:.2f}  hits {engine.hits}  {_limiter_text(engine, stats)}"
    )
    return Panel(Group(pads, knobs, line, Text(_cpu_text(cpu))), title=title)


class LiveUI:
    """Refreshes ``build_panel`` a few times a second until ``stop``.

    Args:
        worker_pids: the model's worker processes, whose CPU is shown next to the host's.
    """

    def __init__(self, engine: Engine, stats: Callable[[], dict[str, float]], title: str = "flowshot",
                 worker_pids: list[int] | None = None):
        self.engine = engine
        self.stats = stats
        self.title = title
        self.meters = {"host": CpuMeter()}
        for n, pid in enumerate(worker_pids or []):
            self.meters["model" if n == 0 else f"model {n + 1}"] = CpuMeter(pid)
        self._live: Live | None = None

    def _panel(self) -> Panel:
        cpu = {name: m.read() for name, m in self.meters.items()}
        return build_panel(self.engine, self.stats(), self.title, cpu)

    def __enter__(self) -> "LiveUI":
        self._live = Live(self._panel(), refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._panel())

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
