"""Body oscillators (model/bodies.py) and the low-band transport term that tunes them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowshot.model.bodies import BodyOscillators
from flowshot.model.checkpoint import load_model
from flowshot.model.config import preset
from flowshot.model.losses import MultiScaleSTFTLoss, stft_loss_from_config
from flowshot.model.vae import FlowVAE
import bench_scripts
from test_export_ts import assert_exports_render_as_pytorch, random_checkpoint

SR, N = 8000, 2048


def test_no_oscillators_no_weights_and_silence() -> None:
    """Count 0 adds nothing: older checkpoints (no ``bodies.*`` keys) load as they were."""
    model = FlowVAE(preset("tiny"))
    assert not [k for k in model.state_dict() if k.startswith("bodies")]
    assert float(model.bodies(torch.randn(3, 64)).abs().max()) == 0.0


@pytest.mark.parametrize("drive", [False, True])
def test_closed_form_sine_follows_its_pitch_curve(drive: bool) -> None:
    """The closed-form phase against a numerical integral of the pitch curve (float64,
    numpy): the same sound, so the glide formula is right; with drive, that sine
    saturated after its envelope."""
    bodies = BodyOscillators(8, 2, SR, N, 30.0, 400.0, drive=drive)
    with torch.no_grad():
        bodies.heads[0].weight.normal_(0.0, 1.0)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = bodies(z)[:, 0].double().numpy()
        p = bodies.parameters_of(z).double().numpy()
    t = np.arange(N) / SR
    ref = np.zeros((3, N))
    for b in range(3):
        for f_end, f_start, glide, decay, amp, phase, *rest in p[b]:
            f = f_end + (f_start - f_end) * np.exp(-t / glide)
            # trapezoid rule from t=0: phase(t) = 2 pi int_0^t f
            phi = 2 * np.pi * np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2) / SR]) + phase
            sine = np.exp(-t / decay) * np.sin(phi)
            if drive:
                (d,) = rest
                sine = np.tanh(d * sine) / np.tanh(d)
            ref[b] += amp * sine
    assert p.shape[-1] == 6 + drive
    assert np.max(np.abs(y - ref)) < 2e-3 * np.max(np.abs(ref))
    # Every parameter inside its range, whatever z (a large z saturates the head).
    big = bodies.parameters_of(1e3 * torch.randn(16, 8)).detach()
    assert float(big[..., 0].min()) >= 30.0 - 1e-3 and float(big[..., 0].max()) <= 400.0 + 1e-3
    assert float((big[..., 1] / big[..., 0]).max()) <= 8.0 + 1e-3
    assert float(big[..., 4].max()) <= 2.0
    if drive:
        assert 0.1 - 1e-4 <= float(big[..., 6].min()) and float(big[..., 6].max()) <= 5.0 + 1e-3


def test_drive_squares_a_sine_and_keeps_its_peak() -> None:
    """At the top of its range the drive makes a sine nearly square (its third harmonic
    near a square wave's third), at the bottom it leaves it a sine, and a unit sine's peak
    stays at the amplitude either way: the drive changes the shape, not the level."""
    t = np.arange(N) / SR
    shapes = {}
    for logit in (-30.0, 30.0):
        bodies = BodyOscillators(8, 1, SR, N, 30.0, 400.0, drive=True)
        with torch.no_grad():
            bodies.heads[0].weight.zero_()
            bodies.heads[0].bias.copy_(torch.tensor([0.0, -30.0, 0.0, 30.0, 0.0, 0.0, logit]))  # no glide, 2 s decay
            p = bodies.parameters_of(torch.zeros(1, 8))[0, 0].double().numpy()
            y = bodies(torch.zeros(1, 8))[0, 0].double().numpy()
        window = y[: int(0.1 * SR)] / p[4]  # the first 100 ms, where the 2 s decay is under 5 %
        assert abs(np.max(np.abs(window)) - 1.0) < 0.06
        spectrum = np.abs(np.fft.rfft(y * np.exp(t / p[3])))  # the decay taken out
        bin_hz = SR / N
        fundamental = spectrum[int(round(p[0] / bin_hz)) - 2: int(round(p[0] / bin_hz)) + 3].max()
        third = spectrum[int(round(3 * p[0] / bin_hz)) - 2: int(round(3 * p[0] / bin_hz)) + 3].max()
        shapes[logit] = third / fundamental
    assert shapes[-30.0] < 0.01
    assert 0.2 < shapes[30.0] < 1 / 3 + 0.02  # tanh(5 sin) is short of a square's 1/3


def test_pitch_range_is_checked() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        BodyOscillators(8, 1, SR, N, 30.0, 600.0)  # 8 x 600 Hz strike pitch > 4 kHz
    with pytest.raises(ValueError, match="model.body_oscillators"):
        preset("tiny").replace(**{"model.body_oscillators": -1})
    with pytest.raises(ValueError, match="model.body_max_hz"):
        preset("tiny").replace(**{"model.body_oscillators": 1, "model.body_max_hz": 600.0})


def _decaying_sine(hz: float, floor: torch.Tensor) -> torch.Tensor:
    t = torch.arange(N) / SR
    return (0.5 * torch.exp(-t / 0.08) * torch.sin(2 * math.pi * hz * t) + floor)[None, None]


def test_low_band_transport_ignores_what_is_above_its_cutoff() -> None:
    """Only bins under ``ot_max_hz`` count, each example by its target's share there."""
    loss = MultiScaleSTFTLoss([256, 512], 0.0, 0.0, ot_weight=1.0, ot_max_hz=640.0, sample_rate=SR)
    floor = 1e-3 * torch.randn(N, generator=torch.Generator().manual_seed(1))
    body = _decaying_sine(120.0, floor)
    high = _decaying_sine(2000.0, floor)
    octave_low = loss.components(_decaying_sine(60.0, floor), body).transport
    assert 0.3 < float(octave_low) < math.log(2) + 0.05  # about ln 2 nats, a little less at the small FFT
    # Anything above the cut-off added to both or either: the term does not move.
    assert float(loss.components(_decaying_sine(120.0, floor) + high, body).transport) < 0.02
    # A target with nothing under the cut-off (a hat): its low band is a floor, worth ~0.
    assert float(loss.components(body, high).transport) < 0.01 * float(octave_low)
    with pytest.raises(ValueError, match="ot_max_hz"):
        MultiScaleSTFTLoss([64], ot_weight=1.0, ot_max_hz=100.0, sample_rate=SR)  # under 8 bins everywhere
    with pytest.raises(ValueError, match="loss.stft_ot_max_hz"):
        preset("tiny").replace(**{"loss.stft_ot_weight": 1.0, "loss.stft_ot_max_hz": 50.0})
    preset("tiny").replace(**{"loss.stft_ot_max_hz": 50.0})  # the term off: its cut-off is not checked


@pytest.mark.parametrize("start_hz", [60.0, 240.0])
def test_transport_term_tunes_an_oscillator_an_octave_off(start_hz: float) -> None:
    """The reason for the term: under `small`'s own loss an oscillator an octave off a
    120 Hz body stays off (the per-bin terms share no bin with the target; measured: it
    stalls at 75 or 150 Hz), with the low-band transport term it finds the pitch."""
    torch.manual_seed(0)
    cfg = preset("small")
    sr, n = cfg.audio.sample_rate, cfg.audio.length
    t = torch.arange(n) / sr
    floor = 1e-3 * torch.randn(n, generator=torch.Generator().manual_seed(2))
    target = (0.5 * torch.exp(-t / 0.25) * torch.sin(2 * math.pi * 120.0 * t) + floor)[None, None]
    ours = 1e-3 * torch.randn(n, generator=torch.Generator().manual_seed(3))  # our own floor, independent
    ends = {}
    for name, weight in (("stft", 0.0), ("stft+transport", 20.0)):
        loss = stft_loss_from_config(cfg.replace(**{"loss.stft_ot_weight": weight, "loss.stft_ot_max_hz": 640.0}))
        bodies = BodyOscillators(4, 1, sr, n, 30.0, 400.0)
        with torch.no_grad():
            s = math.log(start_hz / 30.0) / math.log(400.0 / 30.0)
            bodies.heads[0].bias[0] = math.log(s / (1 - s))
            bodies.heads[0].bias[1] = -6.0  # no glide: the target has none
        z = torch.zeros(1, 4)
        opt = torch.optim.Adam(bodies.parameters(), lr=2e-2)
        for _ in range(120):
            value = loss(bodies(z) + ours, target)
            opt.zero_grad()
            value.backward()
            opt.step()
        ends[name] = float(bodies.parameters_of(z)[0, 0, 0].detach())
    assert abs(math.log(ends["stft+transport"] / 120.0)) < math.log(1.06), ends
    assert abs(math.log(ends["stft"] / 120.0)) > math.log(1.15), ends


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "driven"])
def body_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    drive = request.param
    cfg = preset("tiny").replace(**{"model.body_oscillators": 2, "model.body_drive": drive})
    path = random_checkpoint(tmp_path_factory.mktemp("bodies") / "bodies.ckpt", cfg)
    state = torch.load(path, weights_only=True)
    with torch.no_grad():  # louder bodies than at initialisation, so a lost one would show
        state["state_dict"]["model.bodies.heads.0.bias"][4::6 + drive] = 2.0
        if drive:  # hard drive, so an export that lost the tanh would show
            state["state_dict"]["model.bodies.heads.0.bias"][6::7] = 3.0
    torch.save(state, path)
    return path


def test_exports_carry_the_bodies(body_checkpoint: Path, tmp_path: Path) -> None:
    """ONNX (onnxruntime) and the nn~ file (torch.jit.load) play the bodies as PyTorch does."""
    torch.set_num_threads(1)
    loaded = load_model(body_checkpoint)
    model = loaded.model.eval()
    z = torch.randn(3, loaded.config.model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.render(z)
        bodies = model.bodies(z)
    assert float(bodies.abs().max()) > 0.3 * float(ref.abs().max())  # the bodies are a real part of the sound
    assert_exports_render_as_pytorch(body_checkpoint, z, tmp_path)


def test_body_pitch_benchmark_counts_pitches_and_their_error() -> None:
    """benchmarks/body_pitch.py: bodies played back at their own pitch score 0 semitones;
    played at two fixed pitches, it counts two and the error they make."""
    module = bench_scripts.load("body_pitch")
    sr, n = 8000, 8000
    t = np.arange(n) / sr

    def bodies(hz: list[float]) -> np.ndarray:
        return np.stack([np.exp(-t / 0.2) * np.sin(2 * np.pi * f * t) for f in hz])

    real = [80.0, 95.0, 113.0, 134.0, 160.0, 190.0]
    same = module.pitch_rows(bodies(real), bodies(real), sr)
    assert same["median_semitones"] < 0.2 and same["within_semitone"] == 1.0 and same["level_db"] > -0.5
    assert same["distinct"] == same["distinct_real"] == 6
    fixed = module.pitch_rows(bodies(real), bodies([90.0, 90.0, 90.0, 170.0, 170.0, 170.0]), sr)
    assert fixed["distinct"] == 2 and fixed["median_semitones"] > 1.5 and fixed["level_db"] < -10
    assert np.allclose(fixed["real_hz"], real, rtol=0.02) and np.allclose(fixed["recon_hz"][3:], 170.0, rtol=0.02)
    assert module.spread(np.arange(101.0), ".0f") == "5-95"


def test_body_pitch_benchmark_finds_a_rims_tone_over_its_click() -> None:
    """``body_pitch.tone_pitch``: a 450 Hz ring under a louder broadband click is found at
    450 Hz (to about a hertz), one at 520 Hz at 520."""
    module = bench_scripts.load("body_pitch")
    t = torch.arange(N) / SR
    click = 3.0 * torch.exp(-t / 0.0005) * torch.randn(N, generator=torch.Generator().manual_seed(6))
    rims = torch.stack([torch.exp(-t / 0.015) * torch.sin(2 * math.pi * f * t) + click for f in (450.0, 520.0)])
    found = module.tone_pitch(rims.numpy(), SR)
    assert abs(found[0] - 450.0) < 3.0 and abs(found[1] - 520.0) < 3.0, found


def test_body_pitch_benchmark_draws_its_picture(tmp_path: Path) -> None:
    """``body_pitch.py --png``: one panel per checkpoint, written as a PNG."""
    module = bench_scripts.load("body_pitch")
    pitches = np.array([50.0, 120.0, 230.0])
    out = tmp_path / "pitch.png"
    module.pitch_picture(str(out), [("a", {"tom": (pitches, pitches)}), ("b", {"kick": (pitches, pitches * 0 + 60)})])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_body_transport_term_moves_the_oscillators_only() -> None:
    """``loss.body_transport_weight``: its gradient reaches the oscillators' head and no
    other weight (the whole-model transport term at 20 sent the encoder as much gradient
    as every other term together, and two runs diverged); its value is the transport
    distance of the reconstruction itself."""
    from flowshot.model.training import FlowshotModule

    cfg = preset("tiny").replace(**{"model.body_oscillators": 2, "loss.body_transport_weight": 20.0})
    module = FlowshotModule(cfg)
    torch.manual_seed(0)
    t = torch.arange(cfg.audio.length) / cfg.audio.sample_rate
    x = (0.5 * torch.exp(-t / 0.05) * torch.sin(2 * math.pi * 110.0 * t)).expand(2, 1, -1).contiguous()
    out = module.model(x)
    live = module._bodies_live(out["recon"], out["z"])
    assert torch.allclose(live, out["recon"], atol=1e-6)
    term = module.body_transport.transport(live, x)
    assert abs(float(term) - float(module.body_transport.transport(out["recon"], x))) < 1e-5 and float(term) > 0
    term.backward()
    moved = {name for name, p in module.model.named_parameters() if p.grad is not None and float(p.grad.abs().max()) > 0}
    assert moved and all(name.startswith("bodies.") for name in moved), sorted(moved)[:5]
    with pytest.raises(ValueError, match="body_transport_weight without body oscillators"):
        preset("tiny").replace(**{"loss.body_transport_weight": 1.0})


def test_body_pitch_distance_is_the_log_ratio_to_the_targets_own_pitch() -> None:
    """``losses.body_pitch_distance``: a pitch at the target body's own costs about 0, an
    octave off about (ln 2)^2 (times the body's share of energy under 500 Hz, here ~1), and against
    a target with nothing there (a hat) next to nothing."""
    from flowshot.model.losses import body_pitch_distance

    floor = 1e-3 * torch.randn(N, generator=torch.Generator().manual_seed(4))
    body = _decaying_sine(120.0, floor)
    t = torch.arange(N) / SR
    hat = (torch.exp(-t / 0.02) * torch.randn(N, generator=torch.Generator().manual_seed(5)))[None, None]
    hat = hat - torch.fft.irfft(torch.fft.rfft(hat) * (torch.fft.rfftfreq(N, 1 / SR) < 2000), n=N)  # high-passed
    right = body_pitch_distance(torch.tensor([120.0]), body, SR)
    octave = body_pitch_distance(torch.tensor([60.0]), body, SR)
    assert float(right) < 0.01 * math.log(2) ** 2
    assert float(octave) == pytest.approx(math.log(2) ** 2, rel=0.05)  # the peak is found to a 4 Hz bin
    assert float(body_pitch_distance(torch.tensor([60.0]), hat, SR)) < 0.01 * float(octave)
    pitch = torch.tensor([60.0], requires_grad=True)
    body_pitch_distance(pitch, body, SR).backward()
    assert float(pitch.grad) < 0  # raise the pitch
    with pytest.raises(ValueError, match="body_pitch_weight without body oscillators"):
        preset("tiny").replace(**{"loss.body_pitch_weight": 1.0})


def test_body_pitch_search_reaches_a_rims_tone_only_under_its_ceiling() -> None:
    """A rim's tone over 500 Hz: searched under 500 Hz it is taught 499 Hz and barely
    weighted (its energy is over the ceiling); under 640 Hz, its own pitch at full weight."""
    from flowshot.model.losses import body_pitch_distance

    floor = 1e-3 * torch.randn(N, generator=torch.Generator().manual_seed(6))
    rim = _decaying_sine(540.0, floor)

    def cost(guess: float, max_hz: float) -> float:
        return float(body_pitch_distance(torch.tensor([guess]), rim, SR, max_hz=max_hz))

    # Right: under 640 Hz that costs nothing; under 500 the target is not there.
    assert cost(540.0, 640.0) < 1e-3 and cost(540.0, 500.0) > 0.0
    # 1.4 semitones flat: the 640 Hz search says so, the 500 Hz one hardly.
    assert cost(499.0, 640.0) == pytest.approx(math.log(540.0 / 499.0) ** 2, rel=0.1)
    assert cost(499.0, 640.0) > 10 * cost(499.0, 500.0)
    with pytest.raises(ValueError, match="loss.body_pitch_max_hz"):
        preset("small").replace(**{"loss.body_pitch_max_hz": 20.0})
    preset("tiny").replace(**{"loss.body_pitch_max_hz": 20.0})  # the term off: not checked


def test_small_without_its_oscillator_is_told_every_term_to_turn_off() -> None:
    """`small` runs two oscillator terms: turning its oscillator off names both at once,
    and with both off it builds."""
    off = {"model.body_oscillators": 0}
    with pytest.raises(ValueError) as err:
        preset("small").replace(**off)
    assert "--set loss.body_transport_weight=0 --set loss.body_pitch_weight=0" in str(err.value)
    cfg = preset("small").replace(**off, **{"loss.body_transport_weight": 0.0, "loss.body_pitch_weight": 0.0})
    assert cfg.model.body_oscillators == 0


def test_body_pitch_term_reaches_the_encoder_only_when_asked() -> None:
    """``loss.body_pitch_to_encoder``: off, the pitch term moves the oscillators' head and
    nothing else; on, the encoder and posterior flow too (so the latent keeps the pitch
    where the head reads it)."""
    from flowshot.model.training import FlowshotModule

    t = torch.arange(preset("tiny").audio.length) / preset("tiny").audio.sample_rate
    x = (0.5 * torch.exp(-t / 0.05) * torch.sin(2 * math.pi * 110.0 * t)).expand(2, 1, -1).contiguous()
    for to_encoder in (False, True):
        cfg = preset("tiny").replace(**{"model.body_oscillators": 1, "loss.body_pitch_weight": 1.0,
                                        "loss.body_pitch_to_encoder": to_encoder})
        module = FlowshotModule(cfg)
        torch.manual_seed(0)
        module.body_pitch_term(module.model(x)["z"], x).backward()
        moved = {name.split(".")[0] for name, p in module.model.named_parameters()
                 if p.grad is not None and float(p.grad.abs().max()) > 0}
        assert moved == ({"bodies", "encoder", "posterior_flow"} if to_encoder else {"bodies"}), moved


def test_body_fade_in_scales_the_oscillators_and_checkpoints_keep_the_level() -> None:
    """``train.body_fade_in_start`` / ``_steps``: silent before the start, linear to full,
    then full. The level is saved with the weights, so a checkpoint from the middle of the
    fade plays as trained; older oscillator weights without it load at full level."""
    from flowshot.model.training import FlowshotModule

    cfg = preset("tiny").replace(**{"model.body_oscillators": 1, "model.body_input_gain": 1.0,
                                    "train.body_fade_in_start": 100, "train.body_fade_in_steps": 200})
    module = FlowshotModule(cfg)
    levels = []
    for step in (0, 100, 150, 300, 1000):
        module.gen_step = step
        levels.append(module.body_level())
    assert levels == [0.0, 0.0, 0.25, 1.0, 1.0]
    bodies = module.model.bodies
    assert bodies.input_gain == 1.0
    z = torch.randn(2, cfg.model.latent_dim)
    full = bodies(z)
    bodies.level.fill_(0.25)
    assert torch.allclose(bodies(z), 0.25 * full)
    state = module.model.state_dict()
    assert float(state["bodies.level"]) == 0.25
    fresh = FlowVAE(cfg)
    assert float(fresh.bodies.level) == 1.0
    fresh.load_state_dict(state)
    assert torch.allclose(fresh.bodies(z), 0.25 * full)
    older = {k: v for k, v in state.items() if k != "bodies.level"}
    fresh.load_state_dict(older)
    assert float(fresh.bodies.level) == 1.0
    assert "bodies.level" not in FlowVAE(preset("tiny")).state_dict()
    with pytest.raises(ValueError, match="body_input_gain"):
        cfg.replace(**{"model.body_input_gain": 0.0})
    with pytest.raises(ValueError, match="body_fade_in"):
        cfg.replace(**{"train.body_fade_in_steps": -1})
