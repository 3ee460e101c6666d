"""OSC control over real UDP: every address, path-escape refusals, bad input, a flood."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from flowshot.realtime.engine import Engine, EngineSettings
from flowshot.realtime.osc import OscControl, OscServer, contained_path, is_loopback

from test_engine import SR, ToyBackend, toy_audio, toy_stats


def message(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Client:
    """A UDP socket that sends OSC and reads the /flowshot/stats reply (which also syncs)."""

    def __init__(self, port: int):
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5.0)

    def send(self, address: str, *args: object) -> None:
        self.sock.sendto(message(address, *args), self.addr)

    def sync(self) -> list:
        """Every earlier message has been handled once the stats reply arrives (one server thread)."""
        self.send("/flowshot/stats")
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        assert msg.address == "/flowshot/stats"
        return list(msg.params)


@pytest.fixture()
def rig(tmp_path: Path):
    files = tmp_path / "files"
    files.mkdir()
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[], velocity_exponent=2.0))
    engine.render_pending()
    control = OscControl(engine, files, allow_writes=True, stats=lambda: {"hits": engine.hits, "queued": engine.queued})
    server = OscServer(control, "127.0.0.1", 0)
    server.start()
    client = Client(server.port)
    yield engine, control, client, files, tmp_path
    server.stop()


def test_triggers_knobs_temperature_randomize_morph(rig) -> None:
    engine, control, client, files, _ = rig
    client.send("/flowshot/pad/3/trigger", 0.5)
    client.send("/flowshot/note", 40, 127)
    client.send("/flowshot/knob/1", 2.5)
    client.send("/flowshot/knob/0", 1e9)  # clamped
    client.send("/flowshot/temperature", 0.25)
    client.send("/flowshot/pad/7/randomize", 42)
    client.send("/flowshot/pad/2/morph", 5, 0.75)
    client.sync()
    out = np.zeros(100, np.float32)
    engine.process(out)
    voices = engine.voices()
    assert [(p, g) for p, _, g, _ in voices] == [(3, 0.5**2), (4, 1.0)]
    assert engine.knobs[:2] == [3.0, 2.5] and engine.temperature == 0.25
    np.testing.assert_allclose(engine.pads[7].base, 0.25 * np.random.default_rng(42).standard_normal(4))
    assert engine.pads[2].morph_target == 5 and engine.pads[2].morph_amount == 0.75
    assert control.refused == 0


def test_load_wav_and_kit_round_trip_inside_files_dir(rig) -> None:
    engine, control, client, files, _ = rig
    audio = toy_audio(np.array([[0.5, 1.0, 0.0, 2.0]]))[0]
    (files / "sub").mkdir()
    sf.write(files / "sub" / "hit.wav", audio, SR)
    client.send("/flowshot/pad/4/load", "sub/hit.wav")
    client.send("/flowshot/knob/2", -1.0)
    client.send("/flowshot/kit/save", "kit.json")
    client.sync()
    assert engine.pads[4].label == "hit.wav" and (files / "kit.json").is_file()
    saved = (files / "kit.json").read_text()
    client.send("/flowshot/knob/2", 1.0)
    client.send("/flowshot/pad/4/randomize", 1)
    client.send("/flowshot/kit/load", str(files / "kit.json"))  # absolute but inside: allowed
    client.sync()
    assert engine.knobs[2] == -1.0 and engine.pads[4].label == "hit.wav"
    assert (files / "kit.json").read_text() == saved and control.refused == 0


def test_path_escapes_are_refused_over_udp(rig) -> None:
    engine, control, client, files, tmp = rig
    outside = tmp / "outside"
    outside.mkdir()
    sf.write(outside / "secret.wav", np.zeros(100, np.float32), SR)
    os.symlink(outside, files / "link")  # a symlink inside that points outside
    attempts = [
        ("/flowshot/kit/save", "../escaped.json"),
        ("/flowshot/kit/save", str(outside / "abs.json")),
        ("/flowshot/kit/save", "link/via_symlink.json"),
        ("/flowshot/kit/save", "sub/../../escaped2.json"),
        ("/flowshot/pad/0/load", "../outside/secret.wav"),
        ("/flowshot/pad/0/load", "link/secret.wav"),
        ("/flowshot/kit/load", "/etc/passwd"),
    ]
    before = engine.pads[0].base.copy()
    for address, path in attempts:
        client.send(address, path)
    client.sync()
    assert control.refused == len(attempts)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.wav"]
    assert not (tmp / "escaped.json").exists() and not (tmp / "escaped2.json").exists()
    np.testing.assert_array_equal(engine.pads[0].base, before)
    with pytest.raises(Exception, match="outside the files folder"):
        contained_path(files, "../x")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_remote_listener_refuses_writes(tmp_path: Path) -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    control = OscControl(engine, tmp_path, allow_writes=False)
    server = OscServer(control, "127.0.0.1", 0)
    server.start()
    try:
        c = Client(server.port)
        c.send("/flowshot/kit/save", "kit.json")
        c.sync()
        assert control.refused == 1 and not (tmp_path / "kit.json").exists()
    finally:
        server.stop()


def test_bad_messages_are_ignored_and_a_flood_keeps_working(rig, caplog: pytest.LogCaptureFixture) -> None:
    engine, control, client, files, _ = rig
    bad = [
        ("/flowshot/pad/99/trigger", 1.0), ("/flowshot/pad/x/trigger",), ("/flowshot/knob/1", "loud"),
        ("/flowshot/knob/77", 1.0), ("/nothing/here", 1), ("/flowshot/note", "C4"), ("/flowshot/pad/1/load", 5),
        ("/flowshot/pad/1/load", "missing.wav"), ("/flowshot/kit/load", "missing.json"), ("/flowshot/temperature",),
        ("/flowshot/pad/1/morph", 2), ("/flowshot/knob/0", float("nan")), ("/flowshot/pad/1/explode",),
    ]
    with caplog.at_level("WARNING", logger="flowshot.realtime"):
        for m in bad:
            client.send(*m)
        client.sync()
        assert control.refused == len(bad)
        t0 = time.monotonic()
        for i in range(1000):  # a flood: 1,000 notes in one second
            client.send("/flowshot/note", 36 + i % 16, 100)
            time.sleep(0.001)
        stats = client.sync()
        elapsed = time.monotonic() - t0
    assert engine.hits == 0 and stats[1] == 1000  # queued, not played: the audio thread plays them
    out = np.zeros(64, np.float32)
    engine.process(out)
    assert engine.hits == 1000 and engine.active_voices == 16 and engine.steals == 1000 - 16
    # the queue is bounded: a longer flood drops triggers (Python: the oldest, C: the newest) instead of growing
    for i in range(3000):
        engine.note_on(36, 100)
    assert engine.queued == engine.settings.queue_size
    assert elapsed < 5.0  # the server kept up with 1,000 notes/s
    # rate-limited: one log line per kind of problem, not one per message
    assert len(caplog.records) <= len(bad) + 2


def test_trigger_at_velocity_zero_starts_no_voice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Like a MIDI note-on at velocity 0 (a button's release): no voice, no steal, no choke."""
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[[1, 2]], polyphony=2))
    engine.render_pending()
    control = OscControl(engine, tmp_path)
    server = OscServer(control, "127.0.0.1", 0)
    server.start()
    try:
        c = Client(server.port)
        c.send("/flowshot/pad/2/trigger", 1.0)
        c.send("/flowshot/pad/5/trigger", 1.0)
        c.sync()
        engine.process(np.zeros(16, np.float32))
        with caplog.at_level("WARNING", logger="flowshot.realtime"):
            for v in (0.0, 0, -0.5, 0.0, 0.0):
                c.send("/flowshot/pad/1/trigger", v)  # pad 1 would choke pad 2 and steal a slot
            c.sync()
        engine.process(np.zeros(16, np.float32))
    finally:
        server.stop()
    assert [(p, fading) for p, _, _, fading in engine.voices()] == [(2, False), (5, False)]
    assert engine.hits == 2 and engine.steals == 0 and engine.last_hit[1] == -1
    assert control.refused == 0
    ignored = [r for r in caplog.records if "hits nothing" in r.getMessage()]
    assert len(ignored) == 1 and "/flowshot/pad/1/trigger" in ignored[0].getMessage()
