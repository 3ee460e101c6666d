"""The host's master limiter (realtime/limiter.py): the ceiling holds, nothing under it
changes, the gain recovers at the release rate, and the host's CLI and engine use it.
The C mixer's copy is checked sample for sample in tests/test_cmix.py."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from rich.console import Console

from flowshot.errors import FlowshotError
from flowshot.realtime.cli import _build_engine, limiter_max_db
from flowshot.realtime.limiter import CEILING_DB, SNAP, Limiter, release_factor
from flowshot.realtime.ui import build_panel

from test_engine import ToyBackend, toy_stats
from test_host_cli import parse

SR = 48000


def panel_text(engine, stats: dict[str, float]) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(build_panel(engine, stats))
    return console.export_text()


def limiter(ceiling_db: float | None = -1.0, release_ms: float = 20.0) -> Limiter:
    lim = Limiter()
    lim.configure(ceiling_db, release_ms, SR)
    return lim


def test_under_the_ceiling_every_sample_passes_bit_for_bit() -> None:
    x = (0.89 * np.sin(np.arange(4800) * 0.05)).astype(np.float32)  # -1.01 dBFS peak, ceiling -1
    y = x.copy()
    lim = limiter()
    lim.apply(y, 0)
    np.testing.assert_array_equal(y, x)
    assert lim.frames_limited == 0 and lim.min_gain == 1.0


def test_off_leaves_overs_alone() -> None:
    x = np.full(100, 3.0, np.float32)
    limiter(None).apply(x, 0)
    assert np.all(x == 3.0)


def test_the_first_sample_over_lands_on_the_ceiling_and_none_passes_it() -> None:
    """Instant attack: no look-ahead, so no delay, and still no over."""
    c = 10 ** (-1.0 / 20)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SR) * np.linspace(0.1, 4.0, SR)).astype(np.float32)  # a crescendo far over
    y = x.copy()
    lim = limiter()
    lim.apply(y, 0)
    first = int(np.argmax(np.abs(x) > c))
    np.testing.assert_array_equal(y[:first], x[:first])
    assert y[first] == pytest.approx(math.copysign(c, x[first]), rel=1e-6)
    assert np.abs(y).max() <= c * (1 + 1e-7)
    assert np.all(np.sign(y) == np.sign(x))  # a gain, never a fold or an inversion
    assert lim.min_gain == pytest.approx(c / np.abs(x).max(), rel=1e-6)


def test_the_gain_recovers_with_the_release_time_constant() -> None:
    """After one sample at +6 dB over the ceiling, the gain reduction falls to 1/e of its
    depth in one release time, and the gain is exactly 1 again once within SNAP of it."""
    c = 10 ** (-1.0 / 20)
    release_ms = 20.0
    n = int(SR * release_ms / 1000)
    x = np.full(20 * n, 0.01, np.float32)  # quiet enough never to be limited itself
    x[0] = 2 * c
    y = x.copy()
    lim = limiter(-1.0, release_ms)
    lim.apply(y, 0)
    gain = y / x
    assert gain[0] == pytest.approx(0.5, rel=1e-6)
    assert 1 - gain[n] == pytest.approx(0.5 / math.e, rel=1e-3)
    r = release_factor(release_ms, SR)
    snapped = int(math.ceil(math.log(SNAP / 0.5) / math.log(r)))
    assert np.all(gain[snapped + 1 :] == 1.0) and gain[snapped - 2] < 1.0
    assert lim.gain[0] == 1.0


def test_the_state_carries_across_blocks_and_the_channels_are_apart() -> None:
    rng = np.random.default_rng(1)
    x = (2 * rng.standard_normal(3000)).astype(np.float32)
    whole = x.copy()
    limiter().apply(whole, 0)
    lim = limiter()
    pieces = x.copy()
    for a, b in [(0, 1), (1, 128), (128, 1000), (1000, 3000)]:
        lim.apply(pieces[a:b], 0)
    np.testing.assert_array_equal(pieces, whole)
    quiet = np.full(10, 0.1, np.float32)
    lim.apply(quiet, 1)  # the other output is its own: channel 0's reduction does not reach it
    assert np.all(quiet == np.float32(0.1)) and lim.gain[0] < 1.0


def test_the_host_limits_hits_that_meet_and_the_cli_sets_or_refuses_it() -> None:
    """Sixteen hits at once on the toy model sum to ~8 (+18 dBFS): the default engine keeps
    them under -0.3 dBFS; --no-limiter lets them through; --ceiling moves the ceiling."""
    with pytest.raises(FlowshotError, match=r"--ceiling 3 dBFS is outside -24\.\.0 dBFS"):
        _build_engine(parse("--ceiling", "3"), None, ToyBackend(toy_stats()))
    with pytest.raises(FlowshotError, match=r"--release 0\.5 ms is outside 1\.\.2000 ms"):
        _build_engine(parse("--release", "0.5"), None, ToyBackend(toy_stats()))
    peaks = {}
    for flags in [(), ("--no-limiter",), ("--ceiling", "-6")]:
        engine = _build_engine(parse(*flags), None, ToyBackend(toy_stats()))
        engine.render_pending()
        for pad in range(16):
            engine.trigger(pad, 1.0, 5)
        out = np.zeros(2048, np.float32)
        engine.process(out)
        peaks[flags] = np.abs(out).max()
        if flags == ():
            assert engine.frames_limited > 0 and engine.limiter_min_gain < 0.25
            deepest = limiter_max_db(engine)
            assert deepest == pytest.approx(-20 * math.log10(engine.limiter_min_gain)) and deepest > 12
            assert f"limiter {-deepest:.1f} dB" in panel_text(engine, {"limiter_max_db": deepest})
        if flags == ("--no-limiter",):
            assert "limiter off" in panel_text(engine, {})
    assert peaks[("--no-limiter",)] > 4.0
    assert peaks[()] == pytest.approx(10 ** (CEILING_DB / 20), rel=1e-6)
    assert peaks[("--ceiling", "-6")] == pytest.approx(10 ** (-6 / 20), rel=1e-6)
