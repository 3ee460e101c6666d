"""Data loading on real files written with soundfile: formats, skips, trimming, cache, split."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from flowshot.errors import FlowshotError
from flowshot.model import data as data_mod
from flowshot.model.audio_io import AUDIO_EXTENSIONS, AudioReadError, read_audio, write_wav
from flowshot.model.augment import Augmenter
from flowshot.model.config import preset
from flowshot.model.data import OneShotDataset, class_from_path, load_examples
from flowshot.model.drums import DRUM_CLASSES

CFG = preset("tiny")  # 8 kHz, 2048 samples (256 ms)
SR, L = CFG.audio.sample_rate, CFG.audio.length


def _tone(hz: float, seconds: float, sr: int, decay_s: float = 0.08, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * hz * t) * np.exp(-t / decay_s)).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype=subtype)
    return path


def _load(sources: list, tmp_path: Path, cfg=CFG):
    return load_examples([str(s) for s in sources], cfg, cache_dir=tmp_path / "cache", progress=False)


def _peak_hz(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * sr / (8 * len(x)))


# ----------------------------------------------------------------------------- audio_io


def test_write_wav_is_atomic_and_round_trips(tmp_path: Path) -> None:
    x = _tone(440, 0.1, SR)
    out = write_wav(tmp_path / "sub" / "a.wav", x, SR)
    assert [p.name for p in out.parent.iterdir()] == ["a.wav"]  # no temp file left behind
    y, sr = read_audio(out)
    assert sr == SR and y.shape == (1, len(x))
    assert np.max(np.abs(y[0] - x)) < 1.0 / 32768 + 1e-7
    stereo = np.stack([x, -x])
    y2, _ = read_audio(write_wav(tmp_path / "s.wav", stereo, SR, subtype="FLOAT"))
    assert np.array_equal(y2, stereo)


def test_read_audio_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AudioReadError) as err:
        read_audio(bad)
    assert "bad.wav" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(AudioReadError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    assert {"wav", "flac", "ogg", "aiff"} <= AUDIO_EXTENSIONS


# ----------------------------------------------------------------------------- formats


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left, right = _tone(500, 0.2, SR), _tone(1500, 0.2, SR)
    es = _load([_write(tmp_path / "st.wav", np.stack([left, right], axis=1))], tmp_path)
    spec = np.abs(np.fft.rfft(es.audio[0].numpy()))
    f = np.fft.rfftfreq(L, 1 / SR)
    a500 = spec[np.abs(f - 500) < 20].max()
    a1500 = spec[np.abs(f - 1500) < 20].max()
    # Both channels are in the mix with the same weight (not just the left one).
    assert 0.9 < a500 / a1500 < 1.1


@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 0.03), ("PCM_16", 3e-4), ("PCM_24", 1e-5)])
def test_integer_formats_match_float(tmp_path: Path, subtype: str, tol: float) -> None:
    x = _tone(440, 0.2, SR)
    ref = _write(tmp_path / "ref.wav", x, subtype="FLOAT")
    other = _write(tmp_path / f"x_{subtype}.wav", x, subtype=subtype)
    es = _load([ref, other], tmp_path)
    assert len(es) == 2 and not es.skipped
    assert float(torch.max(torch.abs(es.audio[0] - es.audio[1]))) < tol


def test_96k_is_resampled_and_keeps_pitch(tmp_path: Path) -> None:
    x = _tone(1000, 0.2, 96000, decay_s=0.1)
    es = _load([_write(tmp_path / "hi.wav", x, sr=96000, subtype="PCM_24")], tmp_path)
    y = es.audio[0].numpy()
    assert abs(_peak_hz(y) - 1000.0) < 2.0
    # 0.2 s of sound at 8 kHz, the rest zero padding.
    nonzero = np.flatnonzero(np.abs(y) > 1e-4)
    assert abs(nonzero[-1] - 0.2 * SR) < 0.01 * SR


# ----------------------------------------------------------------------------- skips


def _bad_folder(root: Path) -> dict[str, str]:
    """Five unusable files; returns name -> expected reason keyword."""
    _write(root / "tiny.wav", _tone(440, 0.005, SR, decay_s=1.0))
    _write(root / "silent.wav", np.zeros(SR // 4, np.float32))
    nan = _tone(440, 0.1, SR)
    nan[100] = np.nan
    _write(root / "nan.wav", nan, subtype="FLOAT")
    (root / "corrupt.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    _write(root / "empty.wav", np.zeros((0, 1), np.float32))
    (root / "notes.txt").write_text("not audio, ignored without a skip")
    return {"tiny.wav": "too short", "silent.wav": "silent", "nan.wav": "nan", "corrupt.wav": "corrupt", "empty.wav": "empty"}


def test_bad_files_are_skipped_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _bad_folder(tmp_path / "data")
    _write(tmp_path / "data" / "good" / "kick_01.wav", _tone(60, 0.3, SR))
    _write(tmp_path / "data" / "good" / "snare.flac", _tone(200, 0.1, SR))
    es = _load([tmp_path / "data"], tmp_path)
    assert len(es) == 2 and es.classes == ["kick", "snare"]
    reasons = {Path(p).name: r for p, r in es.skipped}
    assert set(reasons) == set(expected)
    for name, keyword in expected.items():
        assert keyword in reasons[name].lower(), (name, reasons[name])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "2 examples" in err[0] and "7 audio files" in err[0] and "skipped 5" in err[0]


def test_all_bad_folder_is_a_flowshot_error(tmp_path: Path) -> None:
    _bad_folder(tmp_path / "bad")
    with pytest.raises(FlowshotError) as err:
        _load([tmp_path / "bad"], tmp_path)
    msg = str(err.value)
    assert "bad" in msg and "5 skipped" in msg and "\n" not in msg
    with pytest.raises(FlowshotError, match="not a file or folder"):
        _load([tmp_path / "nowhere"], tmp_path)
    with pytest.raises(FlowshotError, match="builtin:drums"):
        _load(["builtin:pianos"], tmp_path)


# ----------------------------------------------------------------------------- preprocessing


def test_leading_silence_is_trimmed_to_the_onset(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(int(0.3 * SR)) * 10 ** (-70 / 20)).astype(np.float32)
    x = np.concatenate([hiss, _tone(300, 0.15, SR, decay_s=0.05)])
    es = _load([_write(tmp_path / "late.wav", x, subtype="FLOAT")], tmp_path)
    y = np.abs(es.audio[0].numpy())
    onset = int(np.argmax(y >= 0.01 * y.max()))  # -40 dB: the trim threshold
    # The onset lands at the 2 ms pre-roll (16 samples at 8 kHz), give or take a sample.
    assert 14 <= onset <= 18, onset


def test_crop_fades_out_and_pad_does_not(tmp_path: Path) -> None:
    t = np.arange(SR) / SR
    steady = (0.5 * np.sin(2 * np.pi * 250 * t)).astype(np.float32)  # 1 s: cropped to 256 ms
    short = steady[: int(0.1 * SR)]  # 100 ms: padded
    es = _load([_write(tmp_path / "long.wav", steady, subtype="FLOAT"), _write(tmp_path / "short.wav", short, subtype="FLOAT")], tmp_path)
    long_x, short_x = es.audio[0].numpy(), es.audio[1].numpy()
    fade = int(CFG.audio.fade_out_ms * 1e-3 * SR)  # 80 samples
    gain = long_x[:100].max() / steady[:100].max()
    assert abs(long_x[-1]) < 1e-3 and np.max(np.abs(long_x[-5:])) < 0.02
    assert np.allclose(long_x[: L - fade], gain * steady[: L - fade], atol=1e-5)  # untouched before the fade
    assert np.max(np.abs(long_x[L - fade // 2 :])) < 0.75 * np.max(np.abs(long_x))
    n = len(short)
    g2 = short_x[:100].max() / short[:100].max()
    assert np.allclose(short_x[:n], g2 * short, atol=1e-5) and not short_x[n:].any()


def test_normalisation_hits_the_target(tmp_path: Path) -> None:
    x = _tone(440, 0.2, SR, amp=0.05)
    path = _write(tmp_path / "q.wav", x, subtype="FLOAT")
    es = _load([path], tmp_path)
    assert abs(20 * np.log10(float(es.audio[0].abs().max())) - CFG.audio.target_peak_db) < 1e-3
    loud_cfg = CFG.replace(**{"audio.normalize": "loudness"})
    y = _load([path], tmp_path, cfg=loud_cfg).audio[0].numpy().astype(np.float64)
    assert abs(20 * np.log10(np.sqrt(np.mean(y**2))) - loud_cfg.audio.target_rms_db) < 0.01
    spike = np.zeros(SR // 5, np.float32)
    spike[:3] = [0.9, -0.5, 0.2]  # RMS target would need a peak far above 0 dBFS
    z = _load([_write(tmp_path / "spike.wav", spike, subtype="FLOAT")], tmp_path, cfg=loud_cfg).audio[0]
    assert abs(20 * np.log10(float(z.abs().max())) - (-0.1)) < 1e-3


# ----------------------------------------------------------------------------- cache and split


def test_cache_hit_and_recompute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "kit"
    for i in range(6):
        _write(folder / f"hit_{i}.wav", _tone(100 + 50 * i, 0.2, SR))
    calls = Counter()
    real = data_mod.preprocess

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(data_mod, "preprocess", counting)
    first = _load([folder], tmp_path)
    assert calls["n"] == 6 and first.cache_hits == 0
    second = _load([folder], tmp_path)
    assert calls["n"] == 6 and second.cache_hits == 6
    assert torch.equal(first.audio, second.audio)
    _write(folder / "hit_2.wav", _tone(999, 0.2, SR))  # same name, new content
    third = _load([folder], tmp_path)
    assert calls["n"] == 7 and third.cache_hits == 5
    assert abs(_peak_hz(third.audio[2].numpy()) - 999) < 4
    _load([folder], tmp_path, cfg=CFG.replace(**{"audio.trim_db": 30.0}))  # a setting changed
    assert calls["n"] == 13
    current = tmp_path / "cache" / "examples" / data_mod._settings_key(CFG.audio)[:16]
    damaged = sorted(current.rglob("*.npy"))[0]
    damaged.write_bytes(b"not an array")  # a damaged cache entry is recomputed, not fatal
    fourth = _load([folder], tmp_path)
    assert calls["n"] == 14 and fourth.cache_hits == 5
    assert torch.equal(fourth.audio, third.audio)
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave no temp files


def test_split_is_stable_when_files_are_added(tmp_path: Path) -> None:
    folder = tmp_path / "kit"
    for i in range(30):
        _write(folder / f"a_{i:02d}.wav", _tone(80 + 13 * i, 0.1, SR))
    cfg = CFG.replace(**{"train.val_fraction": 0.25})
    before = _load([folder], tmp_path, cfg)
    val_before = {before.names[i] for i in before.val_index()}
    assert 2 <= len(val_before) <= 16
    assert sorted(before.train_index() + before.val_index()) == list(range(30))
    for i in range(30):
        _write(folder / f"b_{i:02d}.wav", _tone(1000 + 17 * i, 0.1, SR))
    after = _load([folder], tmp_path, cfg)
    val_after = {after.names[i] for i in after.val_index()}
    assert {n for n in val_after if "/a_" in n} == val_before


def test_at_least_one_val_example(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{i}.wav", _tone(200 + 100 * i, 0.1, SR)) for i in range(2)]
    es = _load(paths, tmp_path, CFG.replace(**{"train.val_fraction": 0.0}))
    assert len(es.val_index()) == 1 and len(es.train_index()) == 1
    one = _load(paths[:1], tmp_path)
    assert one.train_index() == [0] and one.val_index() == []


def test_builtin_drums_deterministic_and_complete(tmp_path: Path) -> None:
    cfg = CFG.replace(**{"train.builtin_size": 48})
    a = load_examples(["builtin:drums"], cfg, cache_dir=tmp_path / "c1", progress=False)
    b = load_examples(["builtin:drums"], cfg, cache_dir=tmp_path / "c2", progress=False)
    c = load_examples(["builtin:drums"], cfg.replace(**{"train.seed": 1}), cache_dir=tmp_path / "c1", progress=False)
    cached = load_examples(["builtin:drums"], cfg, cache_dir=tmp_path / "c1", progress=False)
    assert a.audio.shape == (48, L) and torch.equal(a.audio, b.audio) and torch.equal(a.audio, cached.audio)
    assert cached.cache_hits == 1 and a.cache_hits == 0
    assert not torch.equal(a.audio, c.audio)
    # Another initialisation seed on the very same sounds: what repeat runs need.
    same = load_examples(["builtin:drums"], cfg.replace(**{"train.seed": 1, "train.builtin_seed": 0}),
                         cache_dir=tmp_path / "c3", progress=False)
    assert torch.equal(a.audio, same.audio) and same.classes == a.classes
    assert Counter(a.classes) == {k: 6 for k in DRUM_CLASSES}
    assert a.names[5] == "builtin:drums/5" and len(set(a.hashes)) == 48
    peaks = a.audio.abs().amax(dim=1)
    assert torch.allclose(peaks, torch.full_like(peaks, 10 ** (CFG.audio.target_peak_db / 20)), atol=1e-5)


def test_builtin_split_follows_identity_not_samples(tmp_path: Path) -> None:
    # Samples differ in their last bits between machines and releases, and entirely between
    # sample rates; the held-out sounds must not, or results stop being comparable.
    cfg = CFG.replace(**{"train.builtin_size": 96, "train.builtin_seed": 0})
    a = load_examples(["builtin:drums"], cfg, cache_dir=tmp_path, progress=False)
    other_rate = cfg.replace(**{"audio.sample_rate": 11025, "audio.length": 4096})
    b = load_examples(["builtin:drums"], other_rate, cache_dir=tmp_path, progress=False)
    assert not torch.equal(a.audio[:, :4096], b.audio)
    assert a.val_index() == b.val_index() and 3 <= len(a.val_index()) <= 20
    c = load_examples(["builtin:drums"], cfg.replace(**{"train.builtin_seed": 1}), cache_dir=tmp_path, progress=False)
    assert c.val_index() != a.val_index()  # another set of sounds, another draw


def test_duplicate_files_and_mixed_sources(tmp_path: Path) -> None:
    x = _tone(300, 0.1, SR)
    p1 = _write(tmp_path / "a" / "clap.wav", x)
    shutil.copy(p1, tmp_path / "a" / "clap_copy.wav")
    es = _load([tmp_path / "a", "builtin:drums"], tmp_path, CFG.replace(**{"train.builtin_size": 8}))
    assert len(es) == 9 and es.names[0].endswith("clap.wav") and es.names[1] == "builtin:drums/0"  # source order
    assert es.skipped == [(str(tmp_path / "a" / "clap_copy.wav"), f"duplicate of {p1}")]


@pytest.mark.parametrize(
    "path,cls",
    [
        ("kit/Kick_01.wav", "kick"),
        ("kit/BD_03.aiff", "kick"),
        ("kit/SnareRim-1.wav", "rim"),
        ("kit/EE_Hat_Op_Dirty.flac", "hat_open"),
        ("kit/hhclosed_02.flac", "hat_closed"),
        ("kit/HH2_06.aiff", "hat"),
        ("kit/PearlTom2-Soft.wav", "tom"),
        ("kit/bottom.wav", "kit"),
        ("Snares/take 3.wav", "snare"),
        ("MyKit/weird_noise.wav", "mykit"),
        ("kit/RideBow-2.wav", "ride"),
        ("kit/China-1.wav", "cymbal"),
        ("kit/HandClap-Soft.wav", "clap"),
        ("kit/Conga hi.wav", "perc"),
    ],
)
def test_class_from_path(path: str, cls: str) -> None:
    assert class_from_path(path) == cls


def test_dataset_items_and_worker_seeding(tmp_path: Path) -> None:
    cfg = CFG.replace(**{"train.builtin_size": 8})
    es = load_examples(["builtin:drums"], cfg, cache_dir=tmp_path, progress=False)
    plain = OneShotDataset(es, [3, 5])
    assert len(plain) == 2 and plain[1].shape == (1, L) and plain[1].dtype == torch.float32
    assert torch.equal(plain[1][0], es.audio[5])
    aug = OneShotDataset(es, [0, 0, 0, 0], Augmenter(cfg.augment, SR, L))
    torch.manual_seed(0)
    first = torch.stack([aug[i] for i in range(4)])
    assert first.shape == (4, 2, L)  # what the encoder hears, the reconstruction target
    torch.manual_seed(0)
    again = torch.stack([aug[i] for i in range(4)])
    assert torch.equal(first, again)  # reproducible under a fixed torch seed
    loader = torch.utils.data.DataLoader(aug, batch_size=1, num_workers=2)
    items = torch.cat(list(loader))
    # Two workers, same source item: four different augmentations.
    assert len({tuple(np.round(x.numpy().ravel()[:64], 6)) for x in items}) == 4
