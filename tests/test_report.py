"""`flowshot report`: the run described in pictures and numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from flowshot.cli import main
from flowshot.model.checkpoint import load_model
from flowshot.model.report import kl_per_dimension, level_db, pick_preview


def test_preview_takes_one_sound_per_class_before_repeating() -> None:
    classes = ["kick", "kick", "snare", "hat", "kick", "snare"]
    assert pick_preview(classes, 3) == [3, 0, 2]  # hat, kick, snare (sorted), first of each
    assert pick_preview(classes, 5) == [3, 0, 2, 1, 5]
    assert sorted(pick_preview(classes, 99)) == list(range(6))


def test_level_of_a_sine_is_its_textbook_value() -> None:
    t = torch.arange(8000) / 8000.0
    sine = 0.5 * torch.sin(2 * math.pi * 100 * t)[None]
    level = level_db(sine, 8000)
    assert abs(level["peak_db"] - 20 * math.log10(0.5)) < 0.01
    assert abs(level["rms_db"] - 20 * math.log10(0.5 / math.sqrt(2))) < 0.01


def test_rumble_share_sees_an_offset_under_the_envelope() -> None:
    """An offset of a tenth of the tone under the same envelope holds 1 / 51 of the energy
    (-17 dB), nearly all of it below 20 Hz (its spectrum is ~1 Hz wide); the tone alone has
    only the leakage of its abrupt start there."""
    sr = 8000
    t = torch.arange(sr) / sr
    env = torch.exp(-t / 0.2)
    tone = torch.sin(2 * math.pi * 200 * t) * env
    clean, offset = level_db(tone[None], sr), level_db((tone + 0.1 * env)[None], sr)
    assert -19 < offset["rumble_db"] < -14
    assert clean["rumble_db"] < -30 and offset["rumble_worst_db"] == offset["rumble_db"]


def test_onset_and_attack_of_a_delayed_burst() -> None:
    # A decaying burst that starts 3 ms late: the onset says 3 ms, the attack window
    # (12 ms) holds only 9 ms of it, so it reads lower than the same burst on time.
    sr = 8000
    t = torch.arange(sr) / sr
    burst = torch.sin(2 * math.pi * 500 * t) * torch.exp(-t / 0.05)
    late = torch.cat([torch.zeros(24), burst[:-24]])[None]
    on_time, delayed = level_db(burst[None], sr), level_db(late, sr)
    assert on_time["onset_ms"] < 0.5 and abs(delayed["onset_ms"] - 3.0) < 0.5
    expected = 10 * math.log10(float(burst[:96].pow(2).mean()) / float(late[0, :96].pow(2).mean()))
    assert abs((on_time["attack_db"] - delayed["attack_db"]) - expected) < 0.01 and expected > 0.5


def test_report_of_a_tiny_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(tiny_checkpoint.parent), "-o", str(out)]) == 0
    for name in ("grid.png", "curves.png", "kl_per_dim.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    r = json.loads((out / "report.json").read_text())
    loaded = load_model(tiny_checkpoint)
    d = loaded.config.model.latent_dim
    assert r["latent_dim"] == d and 0 <= r["active_units"] <= d
    # the grid's WAVs: 8 prior samples, and as many reconstructions as real sounds
    rows = {label: sorted(out.glob(f"{label}-*.wav")) for label in ("prior", "real", "recon")}
    assert len(rows["prior"]) == 8 and len(rows["real"]) == len(rows["recon"]) >= 1
    info = sf.info(str(rows["recon"][0]))
    assert info.samplerate == loaded.config.audio.sample_rate and info.frames == loaded.config.audio.length
    # the KL reported is the closed-form KL of the base posterior on the held-out sounds
    real = torch.stack([torch.as_tensor(sf.read(str(p), dtype="float32")[0]) for p in rows["real"]])
    kl = kl_per_dimension(loaded.model, real)
    with torch.no_grad():
        post = loaded.model.encode(real[:, None])
    ref = (0.5 * (post.mean.pow(2) + post.logvar.exp() - 1.0 - post.logvar)).mean(0)
    torch.testing.assert_close(torch.as_tensor(kl), ref, rtol=1e-4, atol=1e-6)


def test_crest_factor_and_peak_time_of_a_sine_and_of_noise() -> None:
    """A steady sine's peak is 3.01 dB over its RMS, Gaussian noise's about 12 dB over
    its (8,000 samples); a burst's peak time moves with the burst."""
    sr = 8000
    t = torch.arange(sr) / sr
    sine = torch.sin(2 * math.pi * 250 * t)[None]
    assert level_db(sine, sr)["crest_db"] == pytest.approx(20 * math.log10(math.sqrt(2)), abs=0.01)
    noise = torch.randn(8, sr, generator=torch.Generator().manual_seed(0))
    assert 10.5 < level_db(noise, sr)["crest_db"] < 13.5
    burst = torch.zeros(1, sr)
    burst[0, 400] = 1.0
    assert level_db(burst, sr)["peak_ms"] == pytest.approx(50.0)
