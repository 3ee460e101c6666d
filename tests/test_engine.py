"""Engine: voices, stealing, chokes, velocity, knobs, debounced re-render, morph, kits.

Most tests use ``ToyBackend``, an exactly known numpy "model" (decaying sines whose pitch
and decay follow the latent), so the expected output can be written down sample by sample.
One test runs the same checks on a real flowshot checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import load_model
from flowshot.model.config import AudioConfig
from flowshot.model.preprocess import preprocess
from flowshot.realtime.backends import Backend, LatentStats, load_backend
from flowshot.realtime.engine import Engine, EngineSettings, slerp
from flowshot.realtime.kit import load_kit, save_kit

SR, L, D = 8000, 400, 4


class ToyBackend(Backend):
    """A known, invertible stand-in for the model that counts every call."""

    name = "toy"

    def __init__(self, stats: LatentStats | None = None, has_inverse: bool = True):
        super().__init__(Path("toy"), SR, L, D, stats)
        self.has_inverse = has_inverse
        self.calls = {"render": 0, "base_to_latent": 0, "latent_to_base": 0, "encode": 0}
        self.rendered_rows = 0

    def render(self, z: np.ndarray) -> np.ndarray:
        self.calls["render"] += 1
        self.rendered_rows += len(z)
        return toy_audio(z)

    def base_to_latent(self, u: np.ndarray) -> np.ndarray:
        self.calls["base_to_latent"] += 1
        return 1.5 * np.asarray(u) + 0.25

    def latent_to_base(self, z: np.ndarray) -> np.ndarray:
        self.calls["latent_to_base"] += 1
        return (np.asarray(z) - 0.25) / 1.5

    def encode(self, audio: np.ndarray) -> np.ndarray:
        self.calls["encode"] += 1
        a = np.asarray(audio, dtype=np.float64)
        return np.array([a.mean() * 10, a.std(), np.abs(a).max(), np.argmax(np.abs(a)) / len(a)])


def toy_audio(z: np.ndarray) -> np.ndarray:
    t = np.arange(L)[None, :]
    z = np.asarray(z, dtype=np.float64)
    f = 200 + 50 * z[:, :1]
    tau = 40 + 10 * np.abs(z[:, 1:2])
    amp = 0.5 + 0.1 * np.tanh(z[:, 2:3])
    return (amp * np.exp(-t / tau) * np.sin(2 * np.pi * f * t / SR)).astype(np.float32)


def toy_stats(k: int = 3, pads: int = 16, classes: list[str] | None = None) -> LatentStats:
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return LatentStats(macro_directions=q[:k], macro_std=np.array([0.5, 1.0, 2.0][:k]), base_mean=np.zeros(D),
                       macro_labels=[f"m{i}" for i in range(k)], pad_base=rng.standard_normal((pads, D)),
                       pad_classes=classes or [f"c{i}" for i in range(pads)])


def play(engine: Engine, hits: list[tuple[int, int, float]], total: int, blocks: list[int]) -> np.ndarray:
    """Drive the engine like an audio callback: hits are (sample, pad, gain)."""
    out = np.zeros(total, np.float32)
    pos, b, i = 0, 0, 0
    hits = sorted(hits)
    while pos < total:
        n = min(blocks[b % len(blocks)], total - pos)
        while i < len(hits) and hits[i][0] < pos + n:
            engine.trigger(hits[i][1], hits[i][2], hits[i][0] - pos)
            i += 1
        engine.process(out[pos : pos + n])
        pos += n
        b += 1
    return out


def test_voices_match_shared_voicebank_reference() -> None:
    """Same hits -> the same mix as flowshot.export.voices.VoiceBank (the shared spec), incl.
    stealing with its fade-out."""
    from flowshot.export.voices import VoiceBank

    engine = Engine(ToyBackend(toy_stats()), EngineSettings(polyphony=3, choke_groups=[]))
    engine.render_pending()
    rng = np.random.default_rng(1)
    total = 4000
    samples = np.sort(rng.choice(np.arange(0, total - 10, 2), size=30, replace=False))  # >= 2 apart: distinct edges
    hits = [(int(s), int(rng.integers(16)), float(rng.uniform(0.1, 1.0))) for s in samples]
    ours = play(engine, hits, total, blocks=[64, 100, 37, 256])
    assert engine.steals > 0  # 30 hits of 400 samples over 4000 with 3 voices must steal

    bank = VoiceBank(L, polyphony=3, fade=engine._fade_len)  # stolen voices fade alike
    trig = torch.zeros(1, total)
    for s, _, g in hits:
        trig[0, s] = g
    rows, where, gains = bank.find_hits(trig)
    pad_of = {s: p for s, p, _ in hits}
    audio = torch.stack([torch.from_numpy(engine.pad_audio[pad_of[int(s)]]) for s in where])
    ref = bank.play(rows, where, gains, audio, total)[0].numpy()
    # float32 sums of the same terms in possibly different order: a few ulps of the peak.
    assert np.max(np.abs(ours - ref)) < 1e-6 * max(1.0, np.abs(ref).max())
    assert np.abs(ref).max() > 0.3


def test_trigger_path_never_calls_the_model() -> None:
    backend = ToyBackend(toy_stats())
    engine = Engine(backend, EngineSettings(choke_groups=[]))
    engine.render_pending()
    before = dict(backend.calls)
    out = np.zeros(128, np.float32)
    for i in range(500):
        engine.note_on(36 + i % 16, 100)
        if i % 50 == 49:
            engine.process(out)
    assert backend.calls == before
    # 50 hits per block, 16 voices: the oldest are stolen, 16 keep sounding.
    assert engine.hits == 500 and engine.active_voices == 16 and engine.steals == 500 - 16
    assert engine.note_on(35, 100) is False and engine.note_on(52, 100) is False
    assert engine.note_on(40, 0) is False  # velocity 0 = note off


def test_velocity_curve_sets_gain() -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(velocity_exponent=2.0, choke_groups=[]))
    engine.render_pending()
    out = np.zeros(L, np.float32)
    engine.note_on(38, 64)
    engine.process(out)
    gain = (64 / 127) ** 2
    np.testing.assert_allclose(out, gain * engine.pad_audio[2], rtol=1e-6, atol=1e-7)


def test_choke_group_fades_the_other_pad_without_click() -> None:
    s = EngineSettings(choke_groups=[[0, 1]], choke_fade_ms=5.0)
    engine = Engine(ToyBackend(toy_stats()), s)
    engine.render_pending()
    fade = int(round(5e-3 * SR))  # 40 samples
    out = play(engine, [(0, 1, 1.0), (100, 0, 1.0), (150, 2, 1.0)], 600, blocks=[32])
    open_hat, closed_hat, other = engine.pad_audio[1], engine.pad_audio[0], engine.pad_audio[2]
    expected = np.zeros(600, np.float32)
    expected[:100] += open_hat[:100]
    expected[100 : 100 + fade] += open_hat[100 : 100 + fade] * np.linspace(1, 0, fade, dtype=np.float32)
    expected[100 : 100 + L] += closed_hat
    expected[150 : 150 + L] += other[: 450]  # pad 2 is in no group: nothing cut
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # No click: the largest step of the faded open hat stays below its own largest step.
    faded = open_hat[99 : 100 + fade] * np.concatenate([[1.0], np.linspace(1, 0, fade)])
    assert np.max(np.abs(np.diff(faded))) <= np.max(np.abs(np.diff(open_hat))) + 1e-6


def test_default_choke_groups_closed_cuts_open_hat() -> None:
    classes = ["kick", "snare", "hat_closed", "hat_open"] + [f"x{i}" for i in range(12)]
    engine = Engine(ToyBackend(toy_stats(classes=classes)))
    assert engine.choke_groups == [[2, 3]]


def test_knobs_move_base_points_along_macro_directions() -> None:
    stats = toy_stats()
    backend = ToyBackend(stats)
    engine = Engine(backend, EngineSettings(choke_groups=[]))
    engine.render_pending()
    engine.set_knob(1, 1.5)
    engine.set_knob(2, -0.5)
    assert engine.set_knob(0, 99.0) == 3.0  # clamped to the knob range
    engine.render_pending()
    offset = 3.0 * 0.5 * stats.macro_directions[0] + 1.5 * 1.0 * stats.macro_directions[1] - 0.5 * 2.0 * stats.macro_directions[2]
    z = 1.5 * (stats.pad_base + offset) + 0.25
    np.testing.assert_allclose(engine.pad_latent, z, atol=1e-12)
    np.testing.assert_allclose(np.stack(engine.pad_audio), toy_audio(z), atol=1e-6)
    with pytest.raises(FlowshotError):
        engine.set_knob(3, 0.0)


def test_render_thread_debounces_and_sounding_voice_keeps_its_buffer() -> None:
    backend = ToyBackend(toy_stats())
    engine = Engine(backend, EngineSettings(choke_groups=[], debounce_ms=8.0))
    engine.start()
    try:
        assert backend.calls["render"] == 1 and backend.rendered_rows == 16  # all pads, one batched call
        old = engine.pad_audio[0]
        out = np.zeros(100, np.float32)
        engine.trigger(0, 1.0)
        engine.process(out)
        rows = backend.rendered_rows
        for i in range(50):  # a fast knob sweep: 50 moves within a few ms
            engine.set_knob(0, i / 25.0)
        assert engine.wait_rendered(2.0)
        rows = backend.rendered_rows - rows
        assert 16 <= rows <= 3 * 16, rows  # coalesced into one to three passes, not 50
        new = engine.pad_audio[0]
        assert not np.allclose(new[:L], old[:L])
        rest = np.zeros(L - 100, np.float32)
        engine.process(rest)  # the sounding voice continues the buffer it started with
        np.testing.assert_allclose(np.concatenate([out, rest]), old, atol=1e-7)
        engine.trigger(0, 1.0)  # the next hit plays the new render
        nxt = np.zeros(L, np.float32)
        engine.process(nxt)
        np.testing.assert_allclose(nxt, new, atol=1e-7)
    finally:
        engine.stop()


def test_morph_endpoints_equal_the_pads_and_slerp_is_between() -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    a, b = engine.pad_audio[0].copy(), engine.pad_audio[3].copy()
    engine.morph(0, 3, 1.0)
    engine.render_pending()
    np.testing.assert_array_equal(engine.pad_audio[0], b)
    engine.morph(0, 3, 0.0)
    engine.render_pending()
    np.testing.assert_array_equal(engine.pad_audio[0], a)
    engine.morph(0, 3, 0.5)
    engine.render_pending()
    mid = engine.pad_audio[0]
    assert np.abs(mid - a).max() > 1e-3 and np.abs(mid - b).max() > 1e-3
    u, v = engine.pads[0].base, engine.pads[3].base
    w = slerp(u, v, 0.5)
    np.testing.assert_allclose(np.linalg.norm(w), (np.linalg.norm(u) + np.linalg.norm(v)) / 2, rtol=1e-12)
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)  # noqa: E731
    np.testing.assert_allclose(cos(w, u), cos(w, v), rtol=1e-9)  # halfway on the arc


def test_randomize_is_seeded_and_uses_temperature() -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.set_temperature(0.5)
    engine.randomize_pad(4, seed=123)
    np.testing.assert_allclose(engine.pads[4].base, 0.5 * np.random.default_rng(123).standard_normal(D))
    assert engine.set_temperature(10) == 3.0


def test_randomize_draws_through_the_sampling_table() -> None:
    """With the checkpoint's base quantiles, a pad's random draw has each dimension's
    training distribution: inside the table's range, the noise's median at eps = 0."""
    table = np.sort(np.random.default_rng(0).exponential(1.0, (50, D)) + np.arange(D), axis=0)
    stats = dataclasses.replace(toy_stats(), base_quantiles=table)
    engine = Engine(ToyBackend(stats), EngineSettings(choke_groups=[]))
    engine.set_temperature(1.0)
    engine.randomize_pad(2, seed=7)
    np.testing.assert_allclose(engine.pads[2].base, stats.base_draw(np.random.default_rng(7).standard_normal(D)))
    assert np.all(engine.pads[2].base >= table[0]) and np.all(engine.pads[2].base <= table[-1])
    engine.set_temperature(0.0)
    engine.randomize_pad(2, seed=7)
    np.testing.assert_allclose(engine.pads[2].base, (table[24] + table[25]) / 2, rtol=1e-9)


def test_randomize_is_a_kernel_draw_when_training_points_are_stored() -> None:
    """With the training sounds' base points, a pad's random draw is one of them plus
    temperature x bandwidth x spread of noise (``LatentStats.random_base``, the twin of
    ``flowshot.model.latents.kernel_point``), as ``flowshot generate`` draws."""
    rng = np.random.default_rng(0)
    points, spread = rng.standard_normal((9, D)) * 3.0, np.array([0.5, 1.0, 2.0, 0.1][:D])
    stats = dataclasses.replace(toy_stats(), base_quantiles=np.sort(rng.standard_normal((20, D)), axis=0),
                                base_points=points, base_spread=spread, kernel_bandwidth=0.4)
    engine = Engine(ToyBackend(stats), EngineSettings(choke_groups=[]))
    engine.set_temperature(0.0)
    seen = set()
    for seed in range(40):
        engine.randomize_pad(1, seed=seed)
        match = np.flatnonzero(np.all(points == engine.pads[1].base, axis=1))
        assert len(match) == 1  # temperature 0: exactly a training point
        seen.add(int(match[0]))
    assert len(seen) >= 7  # and not always the same one
    engine.set_temperature(1.5)
    engine.randomize_pad(1, seed=11)
    g = np.random.default_rng(11)
    index = int(g.integers(0, len(points)))
    np.testing.assert_allclose(engine.pads[1].base, points[index] + 1.5 * 0.4 * spread * g.standard_normal(D))


def test_no_stats_falls_back_to_seeded_prior_and_axis_knobs() -> None:
    e1 = Engine(ToyBackend(None), EngineSettings(seed=5))
    e2 = Engine(ToyBackend(None), EngineSettings(seed=5))
    np.testing.assert_array_equal(np.stack([p.base for p in e1.pads]), np.stack([p.base for p in e2.pads]))
    assert e1.n_knobs == D and e1.knob_labels[0] == "axis 0"


def test_load_wav_encodes_into_pad(tmp_path: Path) -> None:
    backend = ToyBackend(toy_stats())
    engine = Engine(backend, EngineSettings(choke_groups=[]))
    wav = tmp_path / "hit.wav"
    audio = toy_audio(np.array([[1.0, 2.0, 0.5, 0.0]]))[0]
    # Stereo, 30 ms of silence before the hit, 12 dB quiet: the pad must get what the
    # encoder was trained on (mono, onset at the start, peak at -1 dBFS), as `vary` does.
    quiet_late = np.concatenate([np.zeros(int(0.03 * SR), np.float32), 0.25 * audio])
    sf.write(wav, np.stack([quiet_late, quiet_late], 1), SR, subtype="FLOAT")
    engine.load_wav(5, wav)
    prepared = preprocess(np.stack([quiet_late, quiet_late]), SR, AudioConfig(sample_rate=SR, length=L))
    z = backend.encode(prepared)
    np.testing.assert_allclose(engine.pads[5].base, (z - 0.25) / 1.5, atol=1e-6)
    assert abs(z[2] - 10 ** (-1 / 20)) < 1e-4  # peak-normalised
    # Trimmed to the onset (2 ms pre-roll = 16 samples kept), not 30 ms (240 samples) late.
    assert abs(np.argmax(np.abs(prepared)) - np.argmax(np.abs(audio))) <= 17
    onnx_like = Engine(ToyBackend(toy_stats(), has_inverse=False), EngineSettings(choke_groups=[]))
    onnx_like.load_wav(5, wav)  # no inverse flow: a fixed latent that knobs leave alone
    assert onnx_like.pads[5].base is None
    onnx_like.set_knob(0, 2.0)
    onnx_like.render_pending()
    np.testing.assert_allclose(onnx_like.pad_latent[5], z, atol=1e-6)
    # The model's recorded settings win over the defaults.
    loud = ToyBackend(toy_stats())
    loud.audio_settings = {"normalize": "loudness", "target_rms_db": -20.0, "unknown_key": 1}
    engine_loud = Engine(loud, EngineSettings(choke_groups=[]))
    engine_loud.load_wav(5, wav)
    rms = preprocess(quiet_late, SR, AudioConfig(sample_rate=SR, length=L, normalize="loudness", target_rms_db=-20.0))
    np.testing.assert_allclose(engine_loud.pads[5].base, (loud.encode(rms) - 0.25) / 1.5, atol=1e-6)
    with pytest.raises(FlowshotError, match="missing.wav"):
        engine.load_wav(1, tmp_path / "missing.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(L, np.float32), SR)
    with pytest.raises(FlowshotError, match="silent.wav: silent"):
        engine.load_wav(1, silent)


def test_kit_save_load_round_trip(tmp_path: Path) -> None:
    e1 = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[[1, 2]], velocity_exponent=1.7))
    e1.randomize_pad(3, seed=9)
    e1.morph(0, 3, 0.3)
    e1.set_knob(1, -1.25)
    e1.set_temperature(0.8)
    e1.render_pending()
    path = save_kit(e1, tmp_path / "kits" / "mine.json")
    e2 = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    load_kit(e2, path)
    e2.render_pending()
    np.testing.assert_array_equal(np.stack(e2.pad_audio), np.stack(e1.pad_audio))
    assert e2.knobs == e1.knobs and e2.choke_groups == [[1, 2]] and e2.temperature == 0.8
    assert e2.settings.velocity_exponent == 1.7 and e2.pads[0].morph_target == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"flowshot_kit": 1, "model": {"latent_dim": 99}, "pads": []}')
    with pytest.raises(FlowshotError, match="latent_dim 99"):
        load_kit(e2, bad)
    with pytest.raises(FlowshotError, match="does not exist"):
        load_kit(e2, tmp_path / "nope.json")


def test_real_checkpoint_pads_equal_model_decode(rt_checkpoint: Path) -> None:
    """The engine's pad buffers are exactly what the model decodes for the pad latents + knob offset."""
    backend = load_backend(rt_checkpoint)
    engine = Engine(backend, EngineSettings(choke_groups=[]))
    engine.render_pending()
    engine.set_knob(0, 1.0)
    engine.render_pending()
    model = load_model(rt_checkpoint).model
    u = np.stack([engine.pad_base_point(i) for i in range(16)]) + engine.knob_offset()
    with torch.no_grad():
        ref = model.render(model.base_to_latent(torch.tensor(u, dtype=torch.float32)))[:, 0].numpy()
    got = np.stack(engine.pad_audio)
    assert got.shape == (16, backend.length)
    assert np.max(np.abs(got - ref)) <= 1e-5 * max(1.0, np.abs(ref).max())
    # knob 0 at +1 std moves the base points by exactly macro_std[0] * direction[0]
    np.testing.assert_allclose(engine.knob_offset(), engine.macro_std[0] * engine.directions[0])


def test_broken_model_files_are_refused_in_one_line(tmp_path: Path) -> None:
    bad_ts = tmp_path / "broken.ts"
    bad_ts.write_bytes(b"not a zip at all")
    with pytest.raises(FlowshotError, match="not a loadable TorchScript") as err:
        load_backend(bad_ts)
    assert "\n" not in str(err.value)
    (tmp_path / "onnxdir").mkdir()
    with pytest.raises(FlowshotError, match="lacks decoder.onnx|lacks encoder.onnx"):
        load_backend(tmp_path / "onnxdir")
    with pytest.raises(FlowshotError, match="does not exist"):
        load_backend(tmp_path / "nothing.ckpt")


@pytest.fixture(scope="module")
def rt_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_for_tests(request, tmp_path_factory)


def checkpoint_for_tests(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared ``tiny_checkpoint`` (trained), or while it does not exist, a random-init tiny one."""
    try:
        return Path(request.getfixturevalue("tiny_checkpoint"))
    except pytest.FixtureLookupError:
        from flowshot.model.checkpoint import flowshot_meta
        from flowshot.model.config import tiny
        from flowshot.model.vae import FlowVAE

        torch.manual_seed(0)
        cfg = tiny()
        model = FlowVAE(cfg).eval()
        path = tmp_path_factory.mktemp("ckpt") / "random.ckpt"
        state = {"model." + k: v for k, v in model.state_dict().items()}
        torch.save({"state_dict": state, "flowshot": flowshot_meta(cfg, ["builtin:drums"], ["kick"], 0, None)}, path)
        return path


def test_ckpt_ts_and_onnx_backends_agree(rt_checkpoint: Path, tmp_path: Path) -> None:
    """One interface, three files: the same base points give the same pads on every backend."""
    from flowshot.cli import main

    ts, onnx_dir = tmp_path / "kit_model.ts", tmp_path / "onnx"
    assert main(["export", "ts", str(rt_checkpoint), "-o", str(ts)]) == 0
    assert main(["export", "onnx", str(rt_checkpoint), "-o", str(onnx_dir)]) == 0
    b_ckpt, b_ts, b_onnx = load_backend(rt_checkpoint), load_backend(ts), load_backend(onnx_dir, "onnx")
    assert b_ts.stats is not None and b_onnx.stats is not None  # exports carry the latent statistics
    np.testing.assert_allclose(b_ts.stats.pad_base, b_onnx.stats.pad_base, atol=1e-6)
    assert b_ts.stats.macro_labels == b_onnx.stats.macro_labels and len(b_ts.stats.macro_labels) == 8
    assert not b_onnx.has_inverse and b_ts.has_inverse
    # Every file carries the training data's preprocessing settings, for files loaded into pads.
    want = dataclasses.asdict(load_model(rt_checkpoint).config.audio)
    assert b_ckpt.audio_settings == b_ts.audio_settings == b_onnx.audio_settings == want
    e_ts = Engine(b_ts, EngineSettings(choke_groups=[]))
    e_onnx = Engine(b_onnx, EngineSettings(choke_groups=[]))
    for e in (e_ts, e_onnx):
        e.set_knob(0, 1.5)
        e.render_pending()
    a_ts, a_onnx = np.stack(e_ts.pad_audio), np.stack(e_onnx.pad_audio)
    peak = np.abs(a_ts).max()
    assert np.max(np.abs(a_ts - a_onnx)) <= 1e-4 * max(1.0, peak)  # onnxruntime vs TorchScript kernels
    z = b_ts.base_to_latent(b_ts.stats.pad_base)
    np.testing.assert_allclose(b_ckpt.render(z), b_ts.render(z), atol=1e-5 * max(1.0, peak))
    np.testing.assert_allclose(b_ts.latent_to_base(z), b_ts.stats.pad_base, atol=1e-4)  # inverse flow
    x = a_ts[3]
    e1, e2, e3 = b_ckpt.encode(x), b_ts.encode(x), b_onnx.encode(x)
    assert np.max(np.abs(e1 - e2)) < 1e-4 and np.max(np.abs(e2 - e3)) < 1e-4


def test_replaced_pad_buffers_are_freed_by_the_render_thread_not_the_callback() -> None:
    """A re-render keeps the old buffer alive until every voice that could hold it has ended,
    and an ended voice drops its reference, so the callback never frees pad memory."""
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    old = engine.pad_audio[0]
    engine.trigger(0)
    out = np.zeros(64, np.float32)
    engine.process(out)
    assert engine.voices()[0][0] == 0
    engine.set_knob(0, 2.0)
    engine.render_pending()
    assert engine.pad_audio[0] is not old
    assert any(buf is old for _, buf in engine._retired)  # still held off the audio thread
    while engine.active_voices:
        engine.process(out)
    assert not engine.mix.holds(old)  # the ended voice let go of it
    block = np.zeros(16384, np.float32)
    for _ in range(6):  # past the grace period: len(buf) + 4 blocks of 16384
        engine.process(block)
    engine.set_knob(0, -2.0)
    engine.render_pending()
    assert all(buf is not old for _, buf in engine._retired)


def test_pad_buffers_are_separate_arrays() -> None:
    """Each pad owns its buffer: a voice holding one pad's audio keeps no other pad's alive."""
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    assert all(a.base is None and a.flags.c_contiguous and a.dtype == np.float32 for a in engine.pad_audio)


def test_blocks_beyond_the_scratch_buffer_mix_whole_voices() -> None:
    """Blocks larger than MAX_BLOCK (e.g. an offline render's) mix every sample of a long voice."""
    from flowshot.realtime.engine import MAX_BLOCK

    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[], ceiling_db=None))
    engine.render_pending()
    long = np.random.default_rng(3).standard_normal(4 * MAX_BLOCK).astype(np.float32)
    engine.set_pad_audio(2, long)
    engine.trigger(2, 0.5)
    out = np.zeros(2 * MAX_BLOCK + 123, np.float32)
    engine.process(out)
    rest = np.zeros(MAX_BLOCK, np.float32)
    engine.process(rest)
    np.testing.assert_allclose(np.concatenate([out, rest]), 0.5 * long[: len(out) + len(rest)], atol=1e-7)


def test_knob_move_renders_the_played_pad_first_and_times_it() -> None:
    """After a knob move the pads re-render one per model call (one pad answers a knob
    several times sooner than a batch of 16), the pad hit last first, then the one hit
    before it; the change-to-sound time is logged."""

    class Recording(ToyBackend):
        def render(self, z: np.ndarray) -> np.ndarray:
            self.batches.append(len(z))
            return super().render(z)

    backend = Recording(toy_stats())
    backend.batches = []
    engine = Engine(backend, EngineSettings(choke_groups=[]))
    order: list[int] = []
    render_pending = engine.render_pending

    def recorded(limit: int | None = None, lane: str = "all") -> list[int]:
        done = render_pending(limit, lane)
        order.extend(done)
        return done

    engine.render_pending = recorded
    engine.start()
    try:
        out = np.zeros(64, np.float32)
        for pad in (9, 5):  # 5 is hit last
            engine.trigger(pad, 1.0)
            engine.process(out)
        backend.batches.clear()
        order.clear()
        old5, old9 = engine.pad_audio[5], engine.pad_audio[9]
        engine.set_knob(0, 1.5)
        assert engine.wait_rendered(2.0)
        assert backend.batches == [1] * 16, backend.batches
        assert order[:2] == [5, 9] and sorted(order) == list(range(16)), order
        assert not np.allclose(engine.pad_audio[5], old5) and not np.allclose(engine.pad_audio[9], old9)
        times = engine.response_times()
        assert len(times) == 1 and 0 < times[0] < 1.0
    finally:
        engine.stop()


def test_response_time_splits_into_the_wait_and_the_model_call() -> None:
    """A change waits 50 ms before its render starts and the render takes 30: the response
    is both, and its model-call part is the 30 alone. A backend that reports its model's
    own time (a worker process does) gives that as the model part."""

    class Slow(ToyBackend):
        last_compute_s = 0.012

        def render(self, z: np.ndarray) -> np.ndarray:
            time.sleep(0.03)
            return super().render(z)

    engine = Engine(Slow(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    engine.set_knob(0, 1.0)
    time.sleep(0.05)
    engine.render_pending(limit=1)
    (total,), (call,), (model,) = (engine.response_times(part) for part in ("change", "call", "model"))
    assert 0.03 <= call < 0.03 + 0.02  # the sleep, plus the toy's own work
    assert total - call >= 0.05 and total < 1.0
    assert model == Slow.last_compute_s
    with pytest.raises(ValueError, match="wait"):
        engine.response_times("wait")


def test_pending_pads_count_the_render_under_way() -> None:
    """``pending_pads`` (the host's stats) stays above 0 until the last changed pad is live."""

    class Slow(ToyBackend):
        def render(self, z: np.ndarray) -> np.ndarray:
            seen.append(engine.pending_pads)
            return super().render(z)

    seen: list[int] = []
    engine = Engine(Slow(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    seen.clear()
    engine.set_knob(0, 1.0)
    assert engine.pending_pads == 16
    while engine.render_pending(limit=4):
        pass
    assert seen == [16, 12, 8, 4] and engine.pending_pads == 0


class Recorder(ToyBackend):
    """A ToyBackend that records the latents of every pad it renders, in order."""

    def __init__(self, stats: LatentStats):
        super().__init__(stats)
        self.latents: list[np.ndarray] = []

    def render(self, z: np.ndarray) -> np.ndarray:
        self.latents += list(np.asarray(z))
        return super().render(z)


class HeldOnce(Recorder):
    """A Recorder whose first render waits for ``release`` (``started`` is set when it
    begins): the pads of that render stay pending while the test acts."""

    def __init__(self, stats: LatentStats):
        super().__init__(stats)
        self.started, self.release = threading.Event(), threading.Event()

    def render(self, z: np.ndarray) -> np.ndarray:
        if not self.started.is_set():
            self.started.set()
            self.release.wait(5.0)
        return super().render(z)


def held_two_lanes(stats: LatentStats) -> tuple[Recorder, HeldOnce, Engine]:
    """A started two-lane engine whose background backend holds its first render."""
    lead, rest = Recorder(stats), HeldOnce(stats)
    engine = Engine(lead, EngineSettings(choke_groups=[]), background=rest)
    engine.start()
    return lead, rest, engine


def expected_pads(stats: LatentStats, knobs: list[float]) -> np.ndarray:
    """The toy's latents [16, D] for the stats' pads at these knob values."""
    offset = sum(v * s * d for v, s, d in zip(knobs, stats.macro_std, stats.macro_directions))
    return 1.5 * (stats.pad_base + offset) + 0.25


def test_two_render_threads_lead_renders_only_the_pad_hit_last() -> None:
    """With a background backend the pad hit last re-renders on the lead backend alone
    and the other 15 on the background one; the pads end exactly where one thread would
    have put them, and the change-to-sound time is logged once."""
    stats = toy_stats()
    lead, rest = Recorder(stats), Recorder(stats)
    engine = Engine(lead, EngineSettings(choke_groups=[]), background=rest)
    engine.start()
    try:
        assert len(lead.latents) == 16 and not rest.latents  # the first render is one call on the lead
        out = np.zeros(64, np.float32)
        for pad in (9, 5):  # 5 is hit last
            engine.trigger(pad, 1.0)
            engine.process(out)
        lead.latents.clear()
        engine.set_knob(0, 1.5)
        assert engine.wait_rendered(2.0)
        z = expected_pads(stats, [1.5, 0.0, 0.0])
        np.testing.assert_allclose(np.stack(lead.latents), z[[5]], atol=1e-12)
        done = np.stack(rest.latents)
        assert len(done) == 15
        np.testing.assert_allclose(done[0], z[9], atol=1e-12)  # the one hit before goes first there
        np.testing.assert_allclose(engine.pad_latent, z, atol=1e-12)
        np.testing.assert_allclose(np.stack(engine.pad_audio), toy_audio(z), atol=1e-6)
        assert len(engine.response_times()) == 1 and engine.pending_pads == 0
    finally:
        engine.stop()


def test_the_lead_worker_answers_changes_and_leaves_later_hits_to_the_other() -> None:
    """The lead backend renders the pad hit last once per change; a pending pad hit after
    that change goes to the background backend, so the lead is free when the next change
    comes. The next change then goes to the lead again, for the pad hit last."""
    stats = toy_stats()
    lead, rest, engine = held_two_lanes(stats)
    held, release = rest.started, rest.release
    try:
        out = np.zeros(64, np.float32)
        engine.trigger(5, 1.0)
        engine.process(out)
        lead.latents.clear()
        engine.set_knob(0, 1.5)
        z = expected_pads(stats, [1.5, 0.0, 0.0])
        assert held.wait(2.0)
        deadline = time.monotonic() + 2.0
        while len(lead.latents) < 1 and time.monotonic() < deadline:
            time.sleep(0.002)
        np.testing.assert_allclose(np.stack(lead.latents), z[[5]], atol=1e-12)  # the change's answer
        engine.trigger(7, 1.0)  # pending, and now the pad hit last
        engine.process(out)
        time.sleep(0.1)  # 20 of the lead thread's polls
        assert len(lead.latents) == 1  # left to the background backend
        release.set()
        assert engine.wait_rendered(2.0)
        assert any(np.allclose(x, z[7]) for x in rest.latents)
        lead.latents.clear()
        engine.set_knob(1, -1.0)
        assert engine.wait_rendered(2.0)
        np.testing.assert_allclose(np.stack(lead.latents), expected_pads(stats, [1.5, -1.0, 0.0])[[7]], atol=1e-12)
        np.testing.assert_allclose(engine.pad_latent, expected_pads(stats, [1.5, -1.0, 0.0]), atol=1e-12)
    finally:
        release.set()
        engine.stop()


class Holdable(Recorder):
    """A Recorder that can be held like a worker process; it notes how deep it is held and
    which thread began each hold."""

    def __init__(self, stats: LatentStats):
        super().__init__(stats)
        self.depth, self.held_by = 0, []

    @contextlib.contextmanager
    def hold(self):
        self.depth += 1
        self.held_by.append(threading.current_thread().name)
        try:
            yield
        finally:
            self.depth -= 1


class WatchesHold(Recorder):
    """The lead backend: notes whether the background one is held while it renders."""

    def __init__(self, stats: LatentStats, other: Holdable):
        super().__init__(stats)
        self.other, self.held_at_render = other, []

    def render(self, z: np.ndarray) -> np.ndarray:
        self.held_at_render.append(self.other.depth)
        return super().render(z)


@pytest.mark.parametrize("hold", [True, False])
def test_the_background_is_held_while_the_lead_answers_a_change(hold: bool) -> None:
    """With ``hold_background`` the background backend is held for exactly the lead's
    renders that answer a change, never for its own; without it, never."""
    stats = toy_stats()
    rest = Holdable(stats)
    lead = WatchesHold(stats, rest)
    engine = Engine(lead, EngineSettings(choke_groups=[], hold_background=hold), background=rest)
    engine.start()
    try:
        out = np.zeros(64, np.float32)
        engine.trigger(5, 1.0)
        engine.process(out)
        lead.held_at_render.clear()
        for k, v in enumerate((1.0, -0.5)):
            engine.set_knob(k, v)
            assert engine.wait_rendered(2.0)
        assert len(lead.held_at_render) == 2 and len(rest.latents) >= 30
        assert lead.held_at_render == ([1, 1] if hold else [0, 0])
        assert rest.held_by == (["flowshot-render-lead"] * 2 if hold else []) and rest.depth == 0
    finally:
        engine.stop()


def test_an_older_render_finishing_late_never_replaces_a_newer_one() -> None:
    """The background thread is still rendering pad 0 for the first knob value when the
    pad is hit and the knob moves again; the lead thread puts the newer render on, and
    the older one, finishing after it, is dropped."""
    stats = toy_stats()
    lead, rest, engine = held_two_lanes(stats)
    started, release = rest.started, rest.release
    try:
        out = np.zeros(64, np.float32)
        engine.trigger(3, 1.0)  # pad 3 leads; the background takes pad 0 (never hit, lowest) first
        engine.process(out)
        engine.set_knob(0, 1.0)
        assert started.wait(2.0)
        engine.trigger(0, 1.0)  # now pad 0 leads, while its first-knob render is held
        engine.process(out)
        engine.set_knob(0, -2.0)
        z_new = expected_pads(stats, [-2.0, 0.0, 0.0])
        deadline = time.monotonic() + 2.0
        while not np.allclose(engine.pad_latent[0], z_new[0]) and time.monotonic() < deadline:
            time.sleep(0.005)
        np.testing.assert_allclose(engine.pad_latent[0], z_new[0], atol=1e-12)  # the lead did it
        release.set()
        assert engine.wait_rendered(2.0)
        old = expected_pads(stats, [1.0, 0.0, 0.0])[0]
        assert any(np.allclose(x, old) for x in rest.latents)  # the held render did finish ...
        np.testing.assert_allclose(engine.pad_latent, z_new, atol=1e-12)  # ... and was dropped
        np.testing.assert_allclose(engine.pad_audio[0], toy_audio(z_new[[0]])[0], atol=1e-6)
    finally:
        release.set()
        engine.stop()


def test_hits_of_a_pad_not_yet_re_rendered_are_counted_stale() -> None:
    """A hit of a pad whose re-render has not landed counts as stale, with how many frames
    it lags its change; hits of up-to-date pads do not."""
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    out = np.zeros(64, np.float32)
    engine.trigger(0, 1.0)
    engine.process(out)
    engine.randomize_pad(1, seed=3)  # another pad's change leaves pad 0 fresh
    engine.trigger(0, 1.0)
    engine.process(out)
    assert engine.stale_hits == 0 and engine.frames_done == 128
    engine.set_knob(0, 1.0)  # at frame 128
    engine.render_pending(limit=15)  # most recently hit first: pad 0 is fresh again, pad 15 waits
    assert engine._dirty == {15}
    for _ in range(3):
        engine.process(out)
    engine.trigger(0, 1.0)
    engine.trigger(15, 1.0)
    engine.process(out)  # both start at frame 320
    assert engine.stale_hits == 1 and engine.hits == 4
    assert engine.stale_frames == engine.stale_frames_max == 320 - 128
    engine.set_knob(0, 2.0)  # at frame 384: pad 15 was still behind, its lag keeps counting
    engine.render_pending()
    engine.trigger(5, 1.0)
    engine.trigger(15, 1.0)
    engine.process(out)
    assert engine.stale_hits == 1


def test_after_the_pad_hit_last_the_longest_waiting_pad_renders_first() -> None:
    """Under a sweep every knob move starts the order over; the pad hit last goes first,
    then the played pad that has waited longest, not the one hit most recently (which
    never reached the pads hit longest ago), then pads not played lately."""
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    out = np.zeros(64, np.float32)
    for pad in (2, 7, 9):  # 9 is hit last
        engine.trigger(pad, 1.0)
        engine.process(out)
    engine.set_knob(0, 1.0)
    assert engine.render_pending(limit=2) == [9, 7]  # 2 waits on
    engine.process(out)
    engine.set_knob(0, 2.0)
    assert engine.render_pending(limit=3) == [9, 2, 7]  # 2 has waited since the first move
    assert engine.render_pending() == [i for i in range(16) if i not in (2, 7, 9)]


def test_a_pad_not_played_lately_waits_at_most_the_bonus_longer() -> None:
    """Played pads count as having waited ``RECENT_BONUS_S`` longer, no more: a pad not
    played lately that has waited longer than that goes before them."""
    from flowshot.realtime.engine import RECENT_BONUS_S

    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    engine.render_pending()
    out = np.zeros(64, np.float32)
    for pad in (2, 7):
        engine.trigger(pad, 1.0)
        engine.process(out)
    engine.set_knob(0, 1.0)
    assert engine.render_pending(limit=2) == [7, 2]
    bonus_blocks = int(RECENT_BONUS_S * engine.output_rate / 64)
    for _ in range(bonus_blocks - 1):  # less than the bonus: the played pads still go first
        engine.process(out)
    engine.set_knob(0, 2.0)
    assert engine.render_pending(limit=3) == [7, 2, 0]
    for _ in range(bonus_blocks + 2):  # pads 1.. have now waited longer than 2 plus its bonus
        engine.process(out)
    engine.set_knob(0, 3.0)
    assert engine.render_pending(limit=3) == [7, 1, 3]


def test_split_pads_sound_on_the_second_buffer_only() -> None:
    """With split pads, their voices go to the second buffer and the others to the first;
    the two add up to the one mix, and without a second buffer everything stays in it."""
    settings = EngineSettings(choke_groups=[], split_pads=[2, 5])
    split_engine = Engine(ToyBackend(toy_stats()), settings)
    mono_engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[]))
    one_buffer = Engine(ToyBackend(toy_stats()), settings)
    for e in (split_engine, mono_engine, one_buffer):
        e.render_pending()
        for pad, offset in ((0, 3), (2, 10), (5, 40), (7, 41)):
            e.trigger(pad, 0.8, offset)
    out, side = np.zeros(256, np.float32), np.zeros(256, np.float32)
    mono, single = np.zeros(256, np.float32), np.zeros(256, np.float32)
    split_engine.process(out, side)
    mono_engine.process(mono)
    one_buffer.process(single)
    pads = split_engine.pad_audio
    expected_side = np.zeros(256, np.float32)
    for pad, offset in ((2, 10), (5, 40)):
        n = min(256 - offset, len(pads[pad]))
        expected_side[offset : offset + n] += 0.8 * pads[pad][:n]
    np.testing.assert_allclose(side, expected_side, atol=1e-6)
    assert np.any(side) and np.any(out)
    np.testing.assert_allclose(out + side, mono, atol=1e-6)
    np.testing.assert_allclose(single, mono, atol=1e-6)
    with pytest.raises(FlowshotError, match="pad 16 does not exist"):
        Engine(ToyBackend(toy_stats()), EngineSettings(split_pads=[16]))
