"""The C voice mixer (realtime/_cmix.c) against the Python one (realtime/voices.py), the spec.

Both get the same random stream of hits, block sizes, re-renders, choke groups and split
routing; their output must be equal sample for sample (same float32 operations in the same
order), and so must every counter the engine and the UI read.
"""

from __future__ import annotations

import numpy as np
import pytest

from flowshot.realtime import cmix
from flowshot.realtime.voices import PyVoices, make_voices

pytestmark = pytest.mark.skipif(not cmix.available(), reason=f"C mixer not built: {cmix.why_unavailable()}")

N_PADS = 6


def counters(v) -> tuple:
    return (v.frames_done, v.hits, v.steals, v.stale_hits, v.stale_frames, v.stale_frames_max, v.active_voices,
            v.queued, list(v.last_hit), v.frames_limited, v.limiter_min_gain)


def run_both(seed: int, polyphony: int, fade: int, blocks: int = 400,
             limiter: tuple[float, float] | None = None) -> tuple[int, int]:
    """``limiter``: (ceiling dBFS, release ms) at 48 kHz, else none."""
    rng = np.random.default_rng(seed)
    py = PyVoices(N_PADS, polyphony, fade, queue_size=64)
    c = cmix.CVoices(N_PADS, polyphony, fade, queue_size=64)
    if limiter is not None:
        for v in (py, c):
            v.set_limiter(limiter[0], limiter[1], 48000)
    keep = []  # every buffer stays alive: a C voice holds only a pointer

    def new_buffer() -> np.ndarray:
        buf = rng.standard_normal(int(rng.integers(1, 600))).astype(np.float32)
        keep.append(buf)
        return buf

    for v in (py, c):
        v.set_groups([0, 0, 1, 1, -1, -1])
    for pad in range(N_PADS):
        buf = new_buffer()
        py.set_pad(pad, buf)
        c.set_pad(pad, buf)
    split_blocks = recovered = 0
    for _ in range(blocks):
        frames = int(rng.choice([1, 7, 64, 128, 300]))
        for _ in range(int(rng.integers(0, 5))):
            hit = (int(rng.integers(N_PADS)), float(rng.uniform(0.05, 1.0)), int(rng.integers(-5, frames + 5)))
            py.trigger(*hit)
            c.trigger(*hit)
        if rng.random() < 0.1:  # a re-render lands under sounding voices
            pad, buf = int(rng.integers(N_PADS)), new_buffer()
            py.set_pad(pad, buf)
            c.set_pad(pad, buf)
        if rng.random() < 0.05:  # a knob move: every pad behind, stale from now
            for v in (py, c):
                v.pad_wanted[:] += 1
                v.stale_from[:] = v.frames_done
        if rng.random() < 0.05:  # a render catches one pad up
            pad = int(rng.integers(N_PADS))
            for v in (py, c):
                v.pad_generation[pad] = v.pad_wanted[pad]
        if rng.random() < 0.03:
            routing = [bool(x) for x in rng.integers(0, 2, N_PADS)]
            py.set_split(routing)
            c.set_split(routing)
        use_split = rng.random() < 0.5
        split_blocks += use_split
        outs = [np.full(frames, np.nan, np.float32) for _ in range(2)]
        splits = [np.full(frames, np.nan, np.float32) for _ in range(2)] if use_split else [None, None]
        py.process(outs[0], splits[0])
        c.process(outs[1], splits[1])
        np.testing.assert_array_equal(outs[1], outs[0])
        if use_split:
            np.testing.assert_array_equal(splits[1], splits[0])
        assert counters(c) == counters(py)
        got, want = c.voices(), py.voices()
        assert [v[:2] + v[3:] for v in got] == [v[:2] + v[3:] for v in want]
        np.testing.assert_allclose([v[2] for v in got], [v[2] for v in want], rtol=1e-7)
        if limiter is not None:
            ceiling = 10 ** (limiter[0] / 20)
            assert np.abs(outs[0]).max(initial=0.0) <= ceiling * (1 + 1e-6)
            recovered += py.limiter.gain[0] == 1.0
    if limiter is not None:
        assert py.frames_limited > 1000 and py.limiter_min_gain < 0.5  # it really limited, deeply
        assert 0 < recovered < blocks  # and let go again between bursts
    return py.steals, split_blocks


@pytest.mark.parametrize("seed, polyphony, fade", [(0, 3, 40), (1, 1, 1), (2, 4, 250), (3, 16, 240)])
def test_c_mixer_plays_what_the_python_one_plays(seed: int, polyphony: int, fade: int) -> None:
    steals, split_blocks = run_both(seed, polyphony, fade)
    if polyphony <= 4:
        assert steals > 10  # the stream really exercised stealing and its fades
    assert split_blocks > 100


@pytest.mark.parametrize("seed, ceiling_db, release_ms", [(4, -0.3, 10.0), (5, -6.0, 2.0)])
def test_c_mixers_limiter_matches_the_python_one(seed: int, ceiling_db: float, release_ms: float) -> None:
    # Unit-variance noise buffers summed: most blocks cross the ceiling; with a 2 ms release
    # the gain also recovers all the way (the snap to 1) between hits.
    run_both(seed, 4, 40, limiter=(ceiling_db, release_ms))


def test_c_mixer_queue_drops_the_newest_hits_when_full() -> None:
    c = cmix.CVoices(4, 2, 10, queue_size=8)
    buf = np.ones(100, np.float32)
    c.set_pad(1, buf)
    for i in range(20):
        c.trigger(1, 0.5, i)
    assert c.queued == 8 and c.dropped == 12
    out = np.zeros(32, np.float32)
    c.process(out)
    assert c.hits == 8 and c.queued == 0 and c.steals == 6
    c.trigger(1, 0.5, 0)  # room again
    assert c.queued == 1


def test_c_mixer_refuses_buffers_it_cannot_read() -> None:
    c = cmix.CVoices(2, 2, 10, queue_size=8)
    with pytest.raises(ValueError):
        c.set_pad(0, np.ones(10, np.float64))
    with pytest.raises(ValueError):
        c.set_pad(0, np.ones((2, 10), np.float32)[:, 0])
    with pytest.raises(ValueError):
        c.process(np.zeros(10, np.float64))


def test_mixer_choice() -> None:
    assert make_voices("auto", 2, 2, 10, 8).native
    assert not make_voices("python", 2, 2, 10, 8).native
    with pytest.raises(Exception, match="not auto, c or python"):
        make_voices("rust", 2, 2, 10, 8)
