"""`realtime render-midi`: a MIDI file through the engine, checked sample by sample."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from flowshot.realtime.backends import load_backend
from flowshot.realtime.cli import main
from flowshot.realtime.engine import Engine, EngineSettings
from flowshot.realtime.limiter import CEILING_DB, RELEASE_MS, Limiter
from flowshot.realtime.midi import cc_to_knob

from test_engine import checkpoint_for_tests


@pytest.fixture(scope="module")
def rt_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_for_tests(request, tmp_path_factory)


TPB, TEMPO = 480, 400000  # 150 bpm: a beat is 0.4 s


def write_song(path: Path) -> list[tuple[float, str, int, int]]:
    """Notes and one CC at tick positions; returns (seconds, kind, number, value)."""
    mid = mido.MidiFile(ticks_per_beat=TPB)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
    events = [(0, "note", 36, 127), (120, "note", 38, 64), (125, "note", 36, 100), (300, "note", 51, 30),
              (700, "cc", 21, 127), (701, "note", 36, 127), (900, "note", 20, 127), (1000, "note", 42, 90)]
    last = 0
    out = []
    for tick, kind, num, val in events:
        dt = tick - last
        last = tick
        if kind == "note":
            tr.append(mido.Message("note_on", note=num, velocity=val, time=dt))
        else:
            tr.append(mido.Message("control_change", control=num, value=val, time=dt))
        out.append((tick * TEMPO / TPB / 1e6, kind, num, val))
    tr.append(mido.Message("note_off", note=42, velocity=0, time=10))
    mid.save(str(path))
    return out


@pytest.mark.parametrize("rate", [None, 16000])
def test_render_midi_places_pad_renders_at_exact_samples(rt_checkpoint: Path, tmp_path: Path, rate: int | None) -> None:
    song = tmp_path / "song.mid"
    events = write_song(song)
    out = tmp_path / "out.wav"
    argv = ["render-midi", str(song), "-o", str(out), "--model", str(rt_checkpoint), "--velocity-curve", "1.5",
            "--block", "100"]
    if rate:
        argv += ["--samplerate", str(rate)]
    assert main(argv) == 0
    got, sr = sf.read(out, dtype="float32")

    # Reference: an independent engine gives the pad renders before and after the CC.
    backend = load_backend(rt_checkpoint)
    sr_expected = rate or backend.sample_rate
    assert sr == sr_expected
    ref = Engine(backend, EngineSettings(velocity_exponent=1.5, choke_groups=[]), output_rate=sr_expected)
    ref.render_pending()
    before = [a.copy() for a in ref.pad_audio]
    ref.set_knob(0, cc_to_knob(127, ref.settings.knob_range))
    ref.render_pending()
    after = [a.copy() for a in ref.pad_audio]
    length = len(before[0])
    last = int(round(1010 * TEMPO / TPB / 1e6 * sr))  # the trailing note_off ends the song
    expected = np.zeros(last + length, np.float32)
    assert len(got) == len(expected)
    knob_moved = False
    for t, kind, num, val in events:
        if kind == "cc":
            knob_moved = True
            continue
        if not 36 <= num <= 51:
            continue  # note 20 has no pad
        at = int(round(t * sr))
        buf = (after if knob_moved else before)[num - 36]
        n = min(length, len(expected) - at)
        expected[at : at + n] += (val / 127) ** 1.5 * buf[:n]
    # The master limiter of the engine's defaults, over the whole song at once: its state
    # carries from block to block, so block size does not matter to it.
    if np.abs(expected).max() > 10 ** (CEILING_DB / 20):
        limiter = Limiter()
        limiter.configure(CEILING_DB, RELEASE_MS, sr_expected)
        limiter.apply(expected, 0)
        assert limiter.frames_limited > 0
    # Same float32 products summed in the same order: equal to a few ulps.
    assert np.max(np.abs(got - expected)) <= 1e-6 * max(1.0, np.abs(expected).max())
    assert np.abs(expected).max() > 1e-3
    first = int(round(events[1][0] * sr))
    assert np.any(got[first : first + 5] != expected[first - 1 : first + 4])  # onsets are exact


def test_render_midi_is_deterministic_across_block_sizes(rt_checkpoint: Path, tmp_path: Path) -> None:
    song = tmp_path / "song.mid"
    write_song(song)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert main(["render-midi", str(song), "-o", str(a), "--model", str(rt_checkpoint)]) == 0
    assert main(["render-midi", str(song), "-o", str(b), "--model", str(rt_checkpoint), "--block", "37"]) == 0
    np.testing.assert_array_equal(sf.read(a)[0], sf.read(b)[0])  # block size does not matter


def test_render_midi_split_out_writes_the_split_pads_on_a_second_channel(rt_checkpoint: Path, tmp_path: Path) -> None:
    """--split-out 2 (note 38): the second channel holds that pad's hit alone, the first the
    others, and the two add up to the one-channel render."""
    song = tmp_path / "song.mid"
    events = write_song(song)
    mono, split = tmp_path / "mono.wav", tmp_path / "split.wav"
    assert main(["render-midi", str(song), "-o", str(mono), "--model", str(rt_checkpoint)]) == 0
    assert main(["render-midi", str(song), "-o", str(split), "--model", str(rt_checkpoint), "--split-out", "2"]) == 0
    one, _ = sf.read(mono, dtype="float32")
    two, _ = sf.read(split, dtype="float32")
    assert two.shape == (len(one), 2)
    np.testing.assert_allclose(two[:, 0] + two[:, 1], one, atol=1e-6)
    rate = sf.info(mono).samplerate
    at = next(int(round(t * rate)) for t, kind, num, _ in events
              if kind == "note" and num == 38)
    assert not np.any(two[:at, 1]) and np.abs(two[at:, 1]).max() > 1e-3  # pad 2 alone, from its note on
    assert np.abs(two[:at, 0]).max() > 1e-3


def test_render_midi_bad_input_is_one_line(rt_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    assert main(["render-midi", str(junk), "-o", str(tmp_path / "x.wav"), "--model", str(rt_checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk.mid" in err and "MIDI" in err and "\n" not in err
    assert main(["render-midi", str(junk), "-o", str(tmp_path / "x.wav"), "--model", str(tmp_path / "no.ckpt")]) == 2
    assert "no.ckpt" in capsys.readouterr().err


def test_render_midi_is_the_same_with_either_mixer(rt_checkpoint: Path, tmp_path: Path) -> None:
    """`--mixer c` and `--mixer python` write the same WAV, sample for sample (a choke
    group and a split pad included): the C mixer is the Python one's rules."""
    from flowshot.realtime import cmix

    if not cmix.available():
        pytest.skip(f"C mixer not built: {cmix.why_unavailable()}")
    song = tmp_path / "song.mid"
    write_song(song)
    wavs = []
    for mixer in ("c", "python"):
        out = tmp_path / f"{mixer}.wav"
        assert main(["render-midi", str(song), "-o", str(out), "--model", str(rt_checkpoint), "--block", "37",
                     "--choke", "0,2", "--split-out", "15", "--mixer", mixer]) == 0
        wavs.append(sf.read(str(out), dtype="float32")[0])
    assert wavs[0].shape == wavs[1].shape and np.abs(wavs[0]).max() > 0.01
    np.testing.assert_array_equal(wavs[0], wavs[1])
