"""Host wiring without audio or MIDI ports: the remote-write rule, MIDI maps and channels, CPU figures."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from rich.console import Console

from flowshot.errors import FlowshotError
from flowshot.realtime.cli import _add_subcommands, _build_engine, remote_writes_allowed
from flowshot.realtime.engine import Engine, EngineSettings
from flowshot.realtime.midi import MidiHandler, MidiMap, load_map
from flowshot.realtime.ui import CpuMeter, LiveUI, build_panel, process_cpu_seconds, stat_cpu_seconds

from test_engine import ToyBackend, toy_stats


# ---------------------------------------------------------------- CLI
@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("", False), ("studio.lan", False),
])
def test_file_writes_are_off_beyond_loopback_unless_allowed(host: str, local: bool) -> None:
    assert remote_writes_allowed(host, False) is local
    assert remote_writes_allowed(host, True) is True


def parse(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _add_subcommands(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["render-midi", "song.mid", "-o", "out.wav", "--model", "m.ts", *extra])


def test_velocity_curve_outside_the_kit_range_is_refused() -> None:
    # A kit saved from such an engine would not load again.
    with pytest.raises(FlowshotError, match=r"--velocity-curve 9\.0 is outside 0\.1\.\.4"):
        _build_engine(parse("--velocity-curve", "9"), None, ToyBackend(toy_stats()))
    engine = _build_engine(parse("--velocity-curve", "1.5"), None, ToyBackend(toy_stats()))
    assert engine.settings.velocity_exponent == 1.5


def test_gain_scales_every_pad_and_what_it_plays_or_is_refused_in_one_line() -> None:
    """--gain -6: each pad's live sound, and a hit's mix, at 10^(-6/20) of the same engine's at 0 dB."""
    with pytest.raises(FlowshotError, match=r"--gain 40 dB is outside -60\.\.24 dB"):
        _build_engine(parse("--gain", "40"), None, ToyBackend(toy_stats()))
    engines = [_build_engine(parse("--gain", g), None, ToyBackend(toy_stats())) for g in ("0", "-6")]
    mixes = []
    for engine in engines:
        engine.render_pending()
        engine.trigger(3, 0.8, 10)
        out = np.zeros(1024, np.float32)
        engine.process(out)
        mixes.append(out)
    ratio = np.float32(10 ** (-6 / 20))
    assert np.abs(mixes[0]).max() > 0.1
    for pad in range(16):
        np.testing.assert_allclose(engines[1].pad_audio[pad], ratio * engines[0].pad_audio[pad], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mixes[1], ratio * mixes[0], rtol=1e-5, atol=1e-8)



def play(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _add_subcommands(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["play", "--model", "m.ts", *extra])


def test_split_out_names_the_pads_or_is_refused_in_one_line() -> None:
    with pytest.raises(FlowshotError, match=r"--split-out: pad 16 does not exist; pads are 0\.\.15"):
        _build_engine(play("--split-out", "0,16"), None, ToyBackend(toy_stats()))
    with pytest.raises(FlowshotError, match=r"--split-out kick must be comma-separated pad numbers"):
        _build_engine(play("--split-out", "kick"), None, ToyBackend(toy_stats()))
    engine = _build_engine(play("--split-out", "0, 3"), None, ToyBackend(toy_stats()))
    assert engine.settings.split_pads == [0, 3] and engine.split
    assert not _build_engine(play(), None, ToyBackend(toy_stats())).split


def test_split_out_on_the_command_line_wins_over_the_kits(tmp_path: Path) -> None:
    from flowshot.realtime.kit import save_kit

    save_kit(Engine(ToyBackend(toy_stats()), EngineSettings(split_pads=[7])), tmp_path / "kit.json")
    kit = str(tmp_path / "kit.json")
    assert _build_engine(play("--kit", kit), None, ToyBackend(toy_stats())).split_pads == [7]
    assert _build_engine(play("--kit", kit, "--split-out", "3"), None, ToyBackend(toy_stats())).split_pads == [3]


# ---------------------------------------------------------------- MIDI map files
MAP_TOML = 'channel = 10\n[notes]\n"36" = 0\n"38" = 1\n[cc]\n"74" = 0\n"71" = 1\n'
MAP_JSON = '{"channel": 10, "notes": {"36": 0, "38": 1}, "cc": {"74": 0, "71": 1}}'


def test_load_map_reads_toml_and_json_alike(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MAP_TOML)
    (tmp_path / "m.json").write_text(MAP_JSON)
    want = MidiMap(notes={36: 0, 38: 1}, cc={74: 0, 71: 1}, channel=10)
    assert load_map(tmp_path / "m.toml") == want
    assert load_map(tmp_path / "m.json") == want
    (tmp_path / "empty.json").write_text("{}")
    assert load_map(tmp_path / "empty.json") == MidiMap()  # every key optional: the default map


@pytest.mark.parametrize("name, text, says", [
    ("syntax.toml", 'channel = \n[notes', "not valid TOML"),
    ("syntax.json", '{"notes": {"36": 0,}', "not valid JSON"),
    ("channel.json", '{"channel": 17}', "channel 17"),
    ("note.toml", '[notes]\n"200" = 0\n', "note 200 outside 0..127"),
    ("word.json", '{"cc": {"21": "knob one"}}', "bad entry"),
    ("infinite.json", '{"cc": {"21": Infinity}}', "bad entry"),
    ("list.json", "[1, 2]", "bad entry"),
])
def test_bad_map_file_gives_one_line_naming_the_file(tmp_path: Path, name: str, text: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FlowshotError) as err:
        load_map(path)
    message = str(err.value)
    assert str(path) in message and says in message and "\n" not in message


def test_missing_map_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FlowshotError, match="nope.toml does not exist"):
        load_map(tmp_path / "nope.toml")


# ---------------------------------------------------------------- MIDI channel filter
def midi_engine() -> Engine:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[], velocity_exponent=1.0))
    engine.render_pending()  # voices of unrendered pads end at once
    return engine


def played(engine: Engine) -> list[tuple[int, float]]:
    engine.process(np.zeros(16, np.float32))
    return [(pad, gain) for pad, _, gain, _ in engine.voices()]


def test_channel_filter_ignores_notes_and_ccs_on_other_channels() -> None:
    engine = midi_engine()
    handler = MidiHandler(engine, MidiMap(channel=10))  # channel 10 is 9 on the wire
    handler.handle(mido.Message("note_on", channel=0, note=36, velocity=127))
    handler.handle(mido.Message("control_change", channel=3, control=21, value=127))
    handler.handle(mido.Message("clock"))  # no channel: must not be mistaken for one
    assert played(engine) == [] and engine.knobs[0] == 0.0
    handler.handle(mido.Message("note_on", channel=9, note=37, velocity=127))
    handler.handle(mido.Message("control_change", channel=9, control=21, value=127))
    assert played(engine) == [(1, 1.0)] and engine.knobs[0] == engine.settings.knob_range
    # The fast path the live port takes for note-ons applies the same filter.
    assert handler.note_pad(9, 38) == 2 and handler.note_pad(0, 38) is None


def test_without_a_channel_every_channel_plays() -> None:
    engine = midi_engine()
    handler = MidiHandler(engine)
    for ch in (0, 9, 15):
        handler.handle(mido.Message("note_on", channel=ch, note=36 + ch, velocity=127))
    assert [pad for pad, _ in played(engine)] == [0, 9, 15]


# ---------------------------------------------------------------- CPU figures
def cpu_seconds_by_os_times() -> float:
    t = os.times()
    return t.user + t.system


def test_cpu_meter_reads_a_busy_loop_and_an_idle_sleep() -> None:
    """The reference is what the kernel charged this process (os.times, not the meter's clock).

    The test machine may be shared, so a busy loop need not get a whole core: the meter must
    agree with the reference, and is near 100 % when the loop did have the core to itself.
    """
    meter = CpuMeter(min_interval=0.0)
    cpu0, wall0 = cpu_seconds_by_os_times(), time.monotonic()
    while time.monotonic() - wall0 < 0.3:
        pass
    busy = meter.read()
    expected = 100 * (cpu_seconds_by_os_times() - cpu0) / (time.monotonic() - wall0)
    assert busy is not None and abs(busy - expected) < 10  # os.times counts 10 ms ticks
    if expected > 90:
        assert busy > 50
    time.sleep(0.3)
    idle = meter.read()
    assert idle is not None and 0 <= idle < 20


def test_cpu_of_another_process_is_read_from_proc() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.2\n"
         "while time.process_time() < end: pass\nprint(time.process_time(), flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        own = float(child.stdout.readline())  # the child now waits on stdin, using no CPU
        seen = process_cpu_seconds(child.pid)
    finally:
        child.communicate("")
    assert seen is not None and abs(seen - own) < 0.05
    assert process_cpu_seconds(child.pid) is None  # exited and reaped: no figure, no error
    assert CpuMeter(child.pid, min_interval=0.0).read() is None


def test_proc_stat_line_with_a_tricky_name() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 900 0 0 0 250 50 7 7 20 0 3 0 100 1000 200\n"
    assert stat_cpu_seconds(line) == pytest.approx(300 / tick)


def test_panel_shows_host_and_model_cpu() -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))

    def text(panel) -> str:
        console = Console(record=True, width=140, file=io.StringIO())
        console.print(panel)
        return console.export_text()

    assert "cpu host 37%  model 81%" in text(build_panel(engine, {}, cpu={"host": 37.2, "model": 80.6}))
    assert "cpu host 5%  model --" in text(build_panel(engine, {}, cpu={"host": 5.0, "model": None}))
    ui = LiveUI(engine, lambda: {}, worker_pids=[os.getpid()])
    assert list(ui.meters) == ["host", "model"]
    assert list(LiveUI(engine, lambda: {}, worker_pids=[os.getpid(), os.getppid()]).meters) == ["host", "model", "model 2"]
    assert "cpu host --  model --" in text(ui._panel())  # no figure before the first interval
    assert list(LiveUI(engine, lambda: {}).meters) == ["host"]
