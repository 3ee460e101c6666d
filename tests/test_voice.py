"""The harmonic voice (model/voice.py) and the pitch tracker that teaches it (model/pitch.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from flowshot.export.onnx import VOICE_TOLERANCE
from flowshot.model.checkpoint import load_model
from flowshot.model.config import preset
from flowshot.model.pitch import pitch_distance, track_pitch
from flowshot.model.vae import FlowVAE
from flowshot.model.voice import HarmonicVoice
import bench_scripts
from test_export_ts import assert_exports_render_as_pytorch, random_checkpoint

SR = 16000


def _gliding_voice(start_hz: float, end_hz: float, seconds: float, harmonics: int = 12) -> tuple[Tensor, np.ndarray]:
    """A sawtooth-like voice whose pitch glides exponentially: (audio [1,1,L], pitch per sample)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f = start_hz * (end_hz / start_hz) ** (t / seconds)
    phi = 2 * np.pi * np.cumsum(f) / SR
    y = sum(np.sin(k * phi) / k for k in range(1, harmonics + 1)) * np.exp(-t / 0.6)
    return torch.from_numpy(0.3 * y).float().reshape(1, 1, -1), f


def test_tracker_follows_a_gliding_voice_and_leaves_noise_and_silence_unvoiced() -> None:
    """YIN against the pitch the voice was made with: a 90 to 260 Hz glide over 0.8 s is
    read within a few cents on nearly every frame; white noise and silence are unvoiced."""
    voice, f = _gliding_voice(90.0, 260.0, 0.8)
    hop = 160
    silence = torch.zeros(1, 1, 4000)
    x = torch.cat([voice, silence], dim=-1)
    frames = x.shape[-1] // hop + 1
    pitch, voiced = track_pitch(x, SR, hop, frames, 50.0, 500.0)
    inside = voice.shape[-1] // hop
    truth = torch.from_numpy(f[np.arange(inside) * hop]).float()
    ok = voiced[0, :inside] > 0
    cents = 1200 * torch.log2(pitch[0, :inside][ok] / truth[ok]).abs()
    assert float(ok.float().mean()) > 0.9
    assert float(cents.median()) < 8.0 and float(cents.max()) < 30.0, cents
    assert float(voiced[0, inside + 20:].sum()) == 0.0  # silence after the voice
    noise = 0.3 * torch.randn(4, 1, 8000, generator=torch.Generator().manual_seed(0))
    _, noisy = track_pitch(noise, SR, hop, 51, 50.0, 500.0)
    assert float(noisy.mean()) < 0.05


def test_pitch_distance_is_the_log_ratio_on_voiced_frames() -> None:
    """Right pitch about 0, an octave low about (ln 2)^2 and a gradient that raises it; a
    target with no voiced frame costs nothing."""
    voice, f = _gliding_voice(150.0, 150.0, 0.5)
    frames = voice.shape[-1] // 160 + 1
    right = pitch_distance(torch.full((1, frames), 150.0), voice, SR, 160, 50.0, 500.0)
    pitch = torch.full((1, frames), 75.0, requires_grad=True)
    octave = pitch_distance(pitch, voice, SR, 160, 50.0, 500.0)
    octave.backward()
    assert float(right) < 1e-3 * math.log(2) ** 2
    assert float(octave.detach()) == pytest.approx(math.log(2) ** 2, rel=0.02)
    assert float(pitch.grad.sum()) < 0
    noise = 0.3 * torch.randn(1, 1, voice.shape[-1], generator=torch.Generator().manual_seed(1))
    assert float(pitch_distance(torch.full((1, frames), 75.0), noise, SR, 160, 50.0, 500.0)) < 0.05


def _random_voice(harmonics: int = 8, hop: int = 80, length: int = 4000) -> HarmonicVoice:
    torch.manual_seed(0)
    voice = HarmonicVoice(16, harmonics, SR, length, hop, 60.0, 900.0, channels=16)
    with torch.no_grad():
        voice.nets[0].out.bias[1] = 1.0  # loud enough to see
    return voice


def test_voice_is_the_harmonic_sum_of_its_interpolated_controls() -> None:
    """The output against a float64 numpy synthesis written out from the definition: pitch
    and levels interpolated linearly between frames, the phase summed sample by sample,
    harmonics at or over half the sample rate silent, the rest renormalised."""
    voice = _random_voice()
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = voice(z)[:, 0].double().numpy()
        p = voice.controls(z).double().numpy()
    lo, hi = 60.0, 900.0
    pitch = lo * np.exp(1 / (1 + np.exp(-p[:, 0])) * np.log(hi / lo))  # [B,F]
    level = 2 * (1 / (1 + np.exp(-p[:, 1]))) ** 2.3
    logits = p[:, 2:]
    share = np.exp(logits - logits.max(1, keepdims=True))
    share /= share.sum(1, keepdims=True)
    k = np.arange(1, 9)[None, :, None]
    share = share * (k * pitch[:, None] < SR / 2)
    share /= share.sum(1, keepdims=True)
    at = np.arange(voice.length) / voice.hop  # frame positions of each sample
    frames = np.arange(voice.frames)
    ref = np.zeros_like(y)
    for b in range(2):
        f = np.interp(at, frames, pitch[b])
        phi = 2 * np.pi * np.cumsum(f) / SR
        for h in range(8):
            ref[b] += np.interp(at, frames, level[b] * share[b, h]) * np.sin((h + 1) * phi)
    assert np.max(np.abs(y - ref)) < 1e-3 * np.max(np.abs(ref))
    big = voice.frame_pitch(1e3 * torch.randn(8, 16)).detach()
    assert float(big.min()) >= lo - 1e-3 and float(big.max()) <= hi + 1e-2


def test_harmonics_over_half_the_sample_rate_are_silent() -> None:
    """A steady 450 Hz voice at 8 kHz: the 8th harmonic (3,600 Hz) plays, the 9th (4,050 Hz,
    which would alias to 3,950 Hz) does not."""
    voice = HarmonicVoice(4, 12, 8000, 8000, 80, 60.0, 900.0, channels=8)
    with torch.no_grad():
        out = voice.nets[0].out
        out.parametrizations.weight.original0.zero_()  # weight norm's magnitude: the controls are the biases alone
        out.bias.zero_()
        fraction = math.log(450 / 60) / math.log(900 / 60)
        out.bias[0] = math.log(fraction / (1 - fraction))  # the pitch logit of 450 Hz
        out.bias[1] = 1.0
        y = voice(torch.zeros(1, 4))[0, 0].double().numpy()
    assert float(voice.frame_pitch(torch.zeros(1, 4))[0, 0]) == pytest.approx(450.0, rel=1e-4)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 8000)

    def at(hz: float) -> float:
        return float(spectrum[np.abs(freqs - hz) < 15].max())
    assert at(3600.0) > 1e3 * at(3950.0)
    assert at(450.0) > 0.1 * at(3600.0)  # the harmonics share the level evenly at zero logits


def test_no_voice_no_weights_and_silence() -> None:
    """Harmonics 0 (the presets) adds nothing: checkpoints without it load as they were."""
    model = FlowVAE(preset("tiny"))
    assert not [k for k in model.state_dict() if k.startswith("voice")]
    assert float(model.voice(torch.randn(3, 16)).abs().max()) == 0.0


def test_pitch_is_held_out_of_the_sound_in_training() -> None:
    """With ``hold_pitch`` (training) a loss on the sound reaches the levels and not the pitch."""
    voice = _random_voice()
    z = torch.randn(2, 16)
    for hold in (False, True):
        voice.zero_grad()
        voice(z, hold).square().sum().backward()
        bias = voice.nets[0].out.bias.grad
        assert float(bias[1].abs()) > 0
        assert (float(bias[0].abs()) == 0.0) == hold


def test_pitch_term_teaches_the_voice_a_glide() -> None:
    """The pitch term alone, Adam from the initial mid-range pitch: the voice learns a
    target's 120 to 200 Hz glide to within a semitone on its voiced frames."""
    target, _ = _gliding_voice(120.0, 200.0, 0.25)
    voice = HarmonicVoice(4, 4, SR, target.shape[-1], 160, 50.0, 500.0, channels=8)
    z = torch.ones(1, 4)
    opt = torch.optim.Adam(voice.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        loss = pitch_distance(voice.frame_pitch(z), target, SR, 160, 50.0, 500.0)
        loss.backward()
        opt.step()
    assert float(loss) < (math.log(2) / 12) ** 2, float(loss)


def test_voice_pitch_term_reaches_the_encoder() -> None:
    """In training the term moves the voice's net, the encoder and the posterior flow (so
    the latent keeps the contour where the net reads it), nothing else."""
    from flowshot.model.training import FlowshotModule

    cfg = preset("tiny").replace(**{"model.voice_harmonics": 4})
    module = FlowshotModule(cfg)
    voice, _ = _gliding_voice(120.0, 200.0, cfg.audio.length / SR)
    x = torch.nn.functional.interpolate(voice, size=cfg.audio.length).expand(2, 1, -1).contiguous()
    torch.manual_seed(0)
    module.voice_pitch_term(module.model(x)["z"], x).backward()
    moved = {name.split(".")[0] for name, p in module.model.named_parameters()
             if p.grad is not None and float(p.grad.abs().max()) > 0}
    assert moved == {"voice", "encoder", "posterior_flow"}, moved


def test_smoothing_averages_every_control_over_its_neighbours() -> None:
    """``model.voice_smooth`` = 5: each control is the net's own, averaged with weights
    1, 2, 3, 2, 1 over its frame and two either side (the ends repeated); 1 leaves them."""
    torch.manual_seed(0)
    raw = HarmonicVoice(16, 8, SR, 4000, 80, 60.0, 900.0, channels=16)
    smooth = HarmonicVoice(16, 8, SR, 4000, 80, 60.0, 900.0, channels=16, smooth=5)
    smooth.load_state_dict(raw.state_dict())
    z = torch.randn(2, 16)
    with torch.no_grad():
        a, b = raw.controls(z), smooth.controls(z)
    padded = torch.cat([a[..., :1], a[..., :1], a, a[..., -1:], a[..., -1:]], dim=-1)
    weights = [1, 2, 3, 2, 1]
    expected = sum(w * padded[..., i: i + a.shape[-1]] for i, w in enumerate(weights)) / 9
    assert torch.allclose(b, expected, atol=1e-5)
    assert float((b[..., 1:] - b[..., :-1]).abs().mean()) < 0.7 * float((a[..., 1:] - a[..., :-1]).abs().mean())
    for bad in (0, 4):
        with pytest.raises(ValueError, match="voice_smooth"):
            preset("tiny").replace(**{"model.voice_harmonics": 8, "model.voice_smooth": bad})


def test_voice_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="voice_pitch_weight"):
        preset("tiny").replace(**{"model.voice_harmonics": 8, "loss.voice_pitch_weight": 0.0})
    with pytest.raises(ValueError, match="voice_max_hz"):
        preset("tiny").replace(**{"model.voice_harmonics": 8, "model.voice_max_hz": 3000.0})
    with pytest.raises(ValueError, match="voice_frame_ms"):
        preset("tiny").replace(**{"model.voice_harmonics": 8, "model.voice_frame_ms": 0.1})
    with pytest.raises(ValueError, match="voice_harmonics"):
        preset("tiny").replace(**{"model.voice_harmonics": -1})
    preset("tiny").replace(**{"loss.voice_pitch_weight": 0.0})  # no voice: not checked


def test_exports_carry_the_voice(tmp_path: Path) -> None:
    """ONNX (onnxruntime, to the exporter's own check) and the nn~ file (torch.jit.load)
    play the voice as PyTorch does."""
    torch.set_num_threads(1)
    cfg = preset("tiny").replace(**{"model.voice_harmonics": 8, "model.voice_smooth": 3})
    path = random_checkpoint(tmp_path / "voice.ckpt", cfg)
    state = torch.load(path, weights_only=True)
    state["state_dict"]["model.voice.nets.0.out.bias"][1] = 2.0  # loud, so a lost voice would show
    torch.save(state, path)
    loaded = load_model(path)
    model = loaded.model.eval()
    z = torch.randn(3, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        voice = model.voice(z)
    assert float(voice.abs().max()) > 0.3 * float(model.decode(z).abs().max())
    assert_exports_render_as_pytorch(path, z, tmp_path, onnx_tolerance=VOICE_TOLERANCE)


def test_pitch_contours_benchmark_tells_a_moving_pitch_from_a_held_one(tmp_path: Path) -> None:
    """benchmarks/pitch_contours.py: a glide of an octave reads as a 10-90 % range of about
    9.6 semitones; played back as it is it follows (correlation 1, 0 cents), held at its
    middle pitch it neither follows nor spans a range, and its picture is drawn."""
    module = bench_scripts.load("pitch_contours")
    glide, _ = _gliding_voice(110.0, 220.0, 0.8)
    held, _ = _gliding_voice(155.0, 155.0, 0.8)
    real = module.contours(glide, SR)
    assert module.semitone_range(*real) == pytest.approx(12 * 0.8, abs=0.5)
    same = module.compare(real, module.contours(glide, SR))
    assert same["cents"] < 1.0 and same["follows"] > 0.999 and same["semitone"] == 1.0
    still = module.contours(held, SR)
    assert module.semitone_range(*still) < 0.2
    off = module.compare(real, still)
    assert off["cents"] > 200 and off["semitone"] < 0.3
    png = tmp_path / "contours.png"
    module.draw(str(png), real, [("a/held.ckpt", still)], module.HOP_S)
    assert png.stat().st_size > 5000
