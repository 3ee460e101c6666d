"""Multi-scale STFT loss and the adversarial helpers: values against references, not 'it ran'."""

import math

import pytest
import torch
from torch.nn import functional as F

from flowshot.model.config import preset
from flowshot.model.losses import (
    MultiScaleSTFTLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)
import bench_scripts

SR, L = 8000, 2048  # the tiny preset
SCALES = [512, 256, 128, 64]


def _tone(freq: float, amp: float = 0.8) -> torch.Tensor:
    t = torch.arange(L) / SR
    return amp * torch.sin(2 * math.pi * freq * t) * torch.exp(-t / 0.1)


@pytest.fixture(scope="module")
def loss() -> MultiScaleSTFTLoss:
    torch.manual_seed(0)
    return MultiScaleSTFTLoss(SCALES, linear_weight=1.0, log_weight=1.0)


def test_zero_for_identical_inputs_in_both_layouts(loss: MultiScaleSTFTLoss) -> None:
    x = torch.randn(3, 1, L, generator=torch.Generator().manual_seed(1)) * 0.3
    assert float(loss(x, x.clone())) < 1e-6
    assert float(loss(x[:, 0], x[:, 0].clone())) < 1e-6
    # [B,T] and [B,1,T] are the same thing.
    y = x + 0.01
    assert float(loss(x, y)) == pytest.approx(float(loss(x[:, 0], y[:, 0])), rel=1e-6)


def test_grows_monotonically_with_noise_and_gain_error(loss: MultiScaleSTFTLoss) -> None:
    y = _tone(220.0)[None, None]
    noise = torch.randn(1, 1, L, generator=torch.Generator().manual_seed(2))
    by_noise = [float(loss(y + s * noise, y)) for s in (0.0, 1e-3, 1e-2, 1e-1, 1.0)]
    assert all(a < b for a, b in zip(by_noise, by_noise[1:])), by_noise
    by_gain = [float(loss(g * y, y)) for g in (1.0, 1.1, 1.5, 2.0, 4.0)]
    assert all(a < b for a, b in zip(by_gain, by_gain[1:])), by_gain
    # Spectral convergence of a pure gain error is |g - 1| at every scale (the -60 dB
    # denominator floor takes ~0.14% off: measured 0.9986).
    lin, *_ = loss.components(2.0 * y, y)
    assert float(lin) == pytest.approx(1.0, abs=3e-3)


def test_silence_gives_finite_values_and_gradients(loss: MultiScaleSTFTLoss) -> None:
    target = _tone(220.0)[None, None]
    for y in (torch.zeros(2, 1, L), target.expand(2, 1, L)):
        x = torch.zeros(2, 1, L, requires_grad=True)
        value = loss(x, y)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    # Near (not at) silence the gradient must also be finite and non-zero.
    x = (1e-6 * torch.randn(2, 1, L, generator=torch.Generator().manual_seed(3))).requires_grad_()
    loss(x, target.expand(2, 1, L)).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().max()) > 0


def test_log_term_sees_a_quiet_partial_that_the_linear_term_misses(loss: MultiScaleSTFTLoss) -> None:
    base = _tone(220.0)
    partial = _tone(1500.0)
    lin_q, log_q, *_ = loss.components(base[None], (base + 0.01 * partial)[None])  # -40 dB
    lin_f, log_f, *_ = loss.components(base[None], (base + partial)[None])  # 0 dB
    # Linear: the -40 dB partial is ~1% of the full-level error (measured 0.0096 vs 0.71).
    assert float(lin_q) < 0.02 * float(lin_f)
    # Log: still more than a fifth of the full-level error (measured 0.157 vs 0.711).
    assert float(log_q) > 0.2 * float(log_f)
    assert float(log_q) > 10 * float(lin_q)


def test_weights_combine_the_terms(loss: MultiScaleSTFTLoss) -> None:
    x, y = _tone(220.0)[None], _tone(230.0)[None]
    lin, log, *_ = loss.components(x, y)
    weighted = MultiScaleSTFTLoss(SCALES, linear_weight=2.0, log_weight=0.5)
    assert float(weighted(x, y)) == pytest.approx(2.0 * float(lin) + 0.5 * float(log), rel=1e-5)


def test_bad_shapes_are_refused(loss: MultiScaleSTFTLoss) -> None:
    with pytest.raises(ValueError, match="shape"):
        loss(torch.zeros(2, 1, L), torch.zeros(2, 1, L - 1))
    with pytest.raises(ValueError, match="mono"):
        loss(torch.zeros(2, 2, L), torch.zeros(2, 2, L))


def _outs(values: list[float], feats: list[list[torch.Tensor]] | None = None):
    return [(torch.full((2, 1, 5), v), (feats[i] if feats else [])) for i, v in enumerate(values)]


def test_least_squares_adversarial_values() -> None:
    # Perfect discriminator (real -> 1, fake -> 0): D loss 0, G loss 1.
    assert float(discriminator_loss(_outs([1.0, 1.0]), _outs([0.0, 0.0]))) == pytest.approx(0.0)
    assert float(generator_adv_loss(_outs([0.0, 0.0]))) == pytest.approx(1.0)
    # Averaged over discriminators: (1-0.5)^2 + 0.5^2 = 0.5 and (1-0)^2 + 1^2 = 2 -> 1.25.
    assert float(discriminator_loss(_outs([0.5, 0.0]), _outs([0.5, 1.0]))) == pytest.approx(1.25)
    assert float(generator_adv_loss(_outs([0.5, 1.0]))) == pytest.approx(0.125)
    with pytest.raises(ValueError, match="no discriminator"):
        generator_adv_loss([])


def test_feature_matching_is_relative_and_detaches_real() -> None:
    real_f = [torch.full((2, 4), 10.0, requires_grad=True), torch.full((2, 3), 0.1, requires_grad=True)]
    fake_f = [torch.full((2, 4), 11.0, requires_grad=True), torch.full((2, 3), 0.11, requires_grad=True)]
    value = feature_matching_loss(_outs([0.0], [real_f]), _outs([0.0], [fake_f]))
    # Both layers are 10% off: a relative measure gives 0.1 whatever the layer's scale.
    assert value.item() == pytest.approx(0.1, rel=1e-5)
    value.backward()
    assert real_f[0].grad is None and real_f[1].grad is None
    assert fake_f[0].grad is not None and float(fake_f[0].grad.abs().sum()) > 0
    same = feature_matching_loss(_outs([0.0], [real_f]), _outs([0.0], [[f.detach() for f in real_f]]))
    assert float(same) == 0.0


def test_band_energy_term_removes_the_low_level_bias_on_noise() -> None:
    """Between two independent noises (phase the model cannot match) the per-bin terms are
    smallest for a prediction about 1 dB too quiet; with the band-energy term the minimum
    sits at the target's level."""
    torch.manual_seed(0)
    n = 16384
    env = torch.exp(-torch.arange(n) / 3000.0)
    target = 0.3 * env * torch.randn(8, n)
    noise = env * torch.randn(8, n)
    scales = [0.75 + 0.05 * i for i in range(10)]  # 0.75 .. 1.20

    def best(loss: MultiScaleSTFTLoss) -> float:
        values = [float(loss(0.3 * s * noise, target)) for s in scales]
        return scales[values.index(min(values))]

    plain = MultiScaleSTFTLoss([2048, 1024, 512, 256, 128, 64])
    banded = MultiScaleSTFTLoss([2048, 1024, 512, 256, 128, 64], band_weight=2.0)
    assert best(plain) <= 0.9
    assert 0.95 <= best(banded) <= 1.05
    lin, log, band, *_ = banded.components(0.3 * noise, target)
    assert float(band) > 0 and plain.components(0.3 * noise, target)[2] == 0  # off: not computed


def test_dc_distance_sees_an_offset_the_small_stft_scales_pass_for_bass() -> None:
    """A decaying offset and a 50 Hz tone under the same envelope fill the same bin 0 of a
    64-point STFT; only the DC term tells them apart."""
    from flowshot.model.losses import MultiScaleSTFTLoss, dc_distance

    sr, n = 22050, 8192
    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.1)
    kick = (env * torch.sin(2 * torch.pi * 50 * t))[None]
    offset = 0.3 * env[None]
    assert dc_distance(kick, kick).item() == 0.0
    expected = (offset.mean() - 0 * kick.mean()).abs() / kick.square().mean().sqrt()
    assert dc_distance(kick + offset, kick).item() == pytest.approx(expected.item(), rel=1e-3)
    assert expected.item() > 0.2
    # Scale free: the same relative offset scores the same at any level.
    assert dc_distance(0.1 * (kick + offset), 0.1 * kick).item() == pytest.approx(dc_distance(kick + offset, kick).item(), rel=1e-4)
    small = MultiScaleSTFTLoss([64], linear_weight=0.0, log_weight=1.0)
    bin0 = small._magnitude(offset, 64)[:, 0].mean() / small._magnitude(kick, 64)[:, 0].mean()
    assert 0.3 < bin0.item() < 30  # comparable energy in bin 0: the STFT alone confuses them


def test_zero_phase_highpass_has_the_butterworth_magnitude_and_no_delay() -> None:
    """Steady sines come out scaled by 1 / sqrt(1 + (fc/f)^2N), in phase; 0 Hz is gone."""
    from flowshot.model.losses import zero_phase_highpass

    sr, n, fc = 22050, 22050, 25.0
    t = torch.arange(n, dtype=torch.float64) / sr
    middle = slice(n // 4, 3 * n // 4)  # away from the edges, where the sine starts and stops
    for freq, order in [(25.0, 4), (12.5, 4), (50.0, 4), (200.0, 2)]:
        x = torch.sin(2 * torch.pi * freq * t)[None]
        y = zero_phase_highpass(x, fc, sr, order)
        expected = 1 / math.sqrt(1 + (fc / freq) ** (2 * order))
        assert torch.allclose(y[0, middle], expected * x[0, middle], atol=2e-3 * expected + 1e-4), (freq, order)
    dc = zero_phase_highpass(torch.ones(1, n, dtype=torch.float64), fc, sr)
    assert dc[0, middle].abs().max() < 1e-3


def test_log_and_band_terms_can_be_made_deaf_to_a_slow_offset() -> None:
    """The trade trained decoders made: a slow offset where the prediction lacks bass lowers
    the log and band terms. Deaf below 25 Hz, they no longer pay for it."""
    sr, n = 22050, 16384
    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.15)
    target = (env * torch.sin(2 * torch.pi * 50 * t))[None]
    quiet = 0.3 * target  # the bass 10 dB short
    offset = 0.01 * env[None]

    def terms(loss: MultiScaleSTFTLoss, x: torch.Tensor) -> list[float]:
        return [float(v) for v in loss.components(x, target)[:3]]

    scales = [2048, 1024, 512, 256, 128, 64]
    plain = MultiScaleSTFTLoss(scales, band_weight=2.0)
    deaf = MultiScaleSTFTLoss(scales, band_weight=2.0, log_highpass_hz=25.0, sample_rate=sr)
    lin0, log0, band0 = terms(plain, quiet)
    lin1, log1, band1 = terms(plain, quiet + offset)
    assert log1 < log0 and band1 < band0  # paid for the offset
    lin0d, log0d, band0d = terms(deaf, quiet)
    lin1d, log1d, band1d = terms(deaf, quiet + offset)
    assert (lin0d, lin1d) == pytest.approx((lin0, lin1))  # the linear term hears everything
    # Not paid any more (what is left of the offset above 25 Hz may even cost a little).
    assert log1d - log0d > -0.1 * (log0 - log1)
    assert band1d - band0d > -0.1 * (band0 - band1)
    with pytest.raises(ValueError, match="sample rate"):
        MultiScaleSTFTLoss(scales, log_highpass_hz=25.0)


def test_log_spaced_bands_cover_every_bin_once_and_see_a_missing_body() -> None:
    """Log bands: each row averages its own bins (every bin in exactly one band at 2,048
    points), and a kick's body 10 dB short at 150 Hz under a bright noise costs the band
    term several times more than with 16 equal-width bands, where it shares 0-689 Hz."""
    from flowshot.model.losses import LOG_BAND_LOW_HZ, MultiScaleSTFTLoss, log_band_matrix

    sr, n = 22050, 16384
    m = log_band_matrix(2048, sr, 16)
    assert m.shape == (16, 1025)
    assert torch.allclose(m.sum(1), torch.ones(16)) and torch.equal((m > 0).sum(0), torch.ones(1025, dtype=torch.long))
    freqs = torch.arange(1025) * sr / 2048
    assert float(freqs[m[0] > 0].max()) < LOG_BAND_LOW_HZ <= float(freqs[m[1] > 0].min())
    assert log_band_matrix(64, sr, 16).shape[0] < 16  # bands finer than a bin are left out

    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.15)
    noise = 0.05 * torch.randn(4, n, generator=torch.Generator().manual_seed(0)) * torch.exp(-t / 0.05)
    body = env * torch.sin(2 * torch.pi * 150 * t)
    target, short = noise + body, noise + 10 ** (-10 / 20) * body
    scales = [2048, 1024, 512, 256, 128, 64]
    linear = MultiScaleSTFTLoss(scales, band_weight=1.0).components(short, target)[2]
    logged = MultiScaleSTFTLoss(scales, band_weight=1.0, band_spacing="log", sample_rate=sr).components(short, target)[2]
    assert float(logged) > 2.0 * float(linear) > 0
    assert float(MultiScaleSTFTLoss(scales, band_weight=1.0, band_spacing="log", sample_rate=sr).components(target, target)[2]) == 0.0
    with pytest.raises(ValueError, match="band_spacing"):
        MultiScaleSTFTLoss(scales, band_spacing="mel")


def test_spectrum_term_scores_the_long_term_band_levels_and_nothing_else() -> None:
    """The long-term-spectrum term: a gain error of d dB costs exactly d ln(10)/20 at any
    envelope; the same sound played backwards has the same long-term spectrum (about 0)
    while the 4-frame band term sees the envelope; weight 0 means not computed."""
    from flowshot.model.losses import MultiScaleSTFTLoss

    sr, n = 22050, 16384
    t = torch.arange(n) / sr
    noise = torch.randn(4, n, generator=torch.Generator().manual_seed(0))
    target = noise * torch.exp(-t / 0.05) + torch.exp(-t / 0.2) * torch.sin(2 * torch.pi * 150 * t)
    scales = [2048, 1024, 512, 256, 128, 64]
    loss = MultiScaleSTFTLoss(scales, band_weight=1.0, band_spacing="log", sample_rate=sr, spectrum_weight=1.0)
    for db in (-6.0, -3.0, 2.0):
        spectrum = loss.components(10 ** (db / 20) * target, target)[3]
        assert float(spectrum) == pytest.approx(abs(db) * math.log(10) / 20, rel=1e-4)
    _, _, band, spectrum, *_ = loss.components(target.flip(-1), target)
    assert float(spectrum) < 0.05 < 0.5 < float(band)
    assert float(MultiScaleSTFTLoss(scales).components(0.5 * target, target)[3]) == 0.0
    weighted = MultiScaleSTFTLoss(scales, spectrum_weight=3.0, sample_rate=sr)
    plain = MultiScaleSTFTLoss(scales, sample_rate=sr)
    half = 0.5 * target
    assert float(weighted(half, target) - plain(half, target)) == pytest.approx(3.0 * math.log(2), rel=1e-3)


def test_low_band_wave_distance_sees_the_waveform_of_a_body_and_only_its_start() -> None:
    """A kick's 60 Hz body: a gain error g costs |1 - g| exactly, the same body a quarter
    period late costs more than silence does (about 1.4 against 1), a difference after the
    window costs nothing, and content above the cut-off is not heard."""
    from flowshot.model.losses import low_band_wave_distance

    sr, n = 22050, 16384
    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.3)
    kick = (env * torch.sin(2 * torch.pi * 60 * t))[None]
    window = 1323  # 60 ms
    def dist(x: torch.Tensor) -> float:
        return float(low_band_wave_distance(x, kick, 500.0, sr, window))

    assert dist(kick) == 0.0
    for g in (0.5, 0.8, 1.25):
        assert dist(g * kick) == pytest.approx(abs(1 - g), rel=1e-4)
    late = (env * torch.sin(2 * torch.pi * 60 * t - torch.pi / 2))[None]
    assert dist(late) > 1.2 > 1.0 == pytest.approx(dist(torch.zeros_like(kick)))
    tail = kick.clone()
    tail[:, window:] = 0.0
    assert dist(tail) == 0.0
    hiss = 0.05 * torch.sin(2 * torch.pi * 4000 * t)[None]
    assert dist(kick + hiss) < 0.01


def test_low_band_wave_distance_high_passed_ignores_an_offset_and_keeps_the_body() -> None:
    """With ``highpass_hz`` an offset or an 8 Hz swell under the body costs a small part of
    what it costs without, while the 60 Hz body's gain error still costs |1 - g|."""
    from flowshot.model.losses import low_band_wave_distance

    sr, n, window = 22050, 16384, 1323
    t = torch.arange(n) / sr
    kick = (torch.exp(-t / 0.3) * torch.sin(2 * torch.pi * 60 * t))[None]

    def dist(x: torch.Tensor, hp: float) -> float:
        return float(low_band_wave_distance(x, kick, 500.0, sr, window, highpass_hz=hp))

    for under in (torch.full_like(kick, 0.2), 0.2 * torch.sin(2 * torch.pi * 8 * t)[None]):
        assert dist(kick + under, 0.0) > 0.2
        assert dist(kick + under, 30.0) < 0.15 * dist(kick + under, 0.0)
    assert dist(0.8 * kick, 30.0) == pytest.approx(0.2, rel=2e-3)


def test_transport_term_measures_frequency_in_octaves_is_level_blind_and_prefers_one_line() -> None:
    """The spectral transport term: a tone moved by a ratio r costs ln r (the log-frequency
    axis), a gain error next to nothing, a prediction near silence a bounded gradient; against
    a partial whose frequency varies from example to example (900, 1,000 or 1,110 Hz) one
    sharp line at the middle one costs less than the same energy smeared over all three;
    weight 0 means not computed; silence gives finite gradients."""
    sr, n = 22050, 16384
    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.2)

    def tone(f: float) -> torch.Tensor:
        return (env * torch.sin(2 * torch.pi * f * t))[None]

    loss = MultiScaleSTFTLoss([2048, 1024, 512], ot_weight=1.0)

    def ot(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(loss.components(x, y)[4])

    for f in (1060.0, 1200.0, 2000.0):
        assert ot(tone(f), tone(1000.0)) == pytest.approx(math.log(f / 1000.0), rel=0.05)
    assert ot(tone(1000.0), tone(1000.0)) == 0.0
    # Level barely enters: twice the target costs under a third of a 6 % pitch error. (Not
    # nothing: the floor under both spectra is the target's.)
    assert ot(2.0 * tone(1000.0), tone(1000.0)) < math.log(1.06) / 3
    # The floor bounds the gradient of a prediction near silence: at -60 dB it pushes the
    # waveform 13 times as hard as at the target's level (without the floor: 1,000 times).
    grads = []
    for gain in (1.0, 1e-3):
        x = (gain * tone(1200.0)).requires_grad_(True)
        loss.components(x, tone(1000.0))[4].backward()
        grads.append(float(x.grad.norm()))
    assert grads[1] < 30 * grads[0], grads
    targets = [tone(f) for f in (900.0, 1000.0, 1110.0)]
    line = tone(1000.0)
    smear = sum(targets) / math.sqrt(3)
    line_cost = sum(ot(line, y) for y in targets) / 3
    smear_cost = sum(ot(smear, y) for y in targets) / 3
    assert line_cost < 0.85 * smear_cost, (line_cost, smear_cost)
    assert float(MultiScaleSTFTLoss([2048]).components(line, targets[0])[4]) == 0.0  # off
    x = torch.zeros(2, n, requires_grad=True)
    value = loss(x, torch.zeros(2, n))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_texture_term_scores_partials_anywhere_as_right_and_smooth_noise_as_wrong() -> None:
    """72 partials at random frequencies, like a built-in cymbal, against another such
    cymbal and against noise of the same spectral envelope and level: spectral
    convergence prefers the smooth noise (a per-bin term cannot reward lines it cannot
    place), the texture term prefers the other lines by a wide margin. It is never above
    the log term, 0 for identical sounds, and not computed at weight 0."""
    sr, n = 22050, 16384
    t = torch.arange(n) / sr
    env = torch.exp(-t / 0.3)

    def cymbal(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        hz = 400 * torch.exp(torch.rand(72, generator=g) * math.log(20))
        phase = torch.rand(72, generator=g) * 2 * math.pi
        return (env * torch.sin(2 * math.pi * hz[:, None] * t + phase[:, None]).sum(0) / 8)[None]

    target, other = cymbal(1), cymbal(2)
    g = torch.Generator().manual_seed(3)
    smooth_mag = F.avg_pool1d(torch.fft.rfft(target).abs()[None], 129, stride=1, padding=64, count_include_pad=False)[0]
    phase = torch.rand(smooth_mag.shape, generator=g) * 2 * math.pi
    noise = torch.fft.irfft(smooth_mag * torch.exp(1j * phase), n=n) * env
    noise = noise * target.std() / noise.std()
    loss = MultiScaleSTFTLoss([2048, 1024, 512, 256, 128, 64], texture_weight=1.0)
    lines, smooth = loss.components(other, target), loss.components(noise, target)
    assert float(smooth.linear) < float(lines.linear)
    assert float(lines.texture) < 0.6 * float(smooth.texture), (lines.texture, smooth.texture)
    for terms in (lines, smooth):
        assert 0 < float(terms.texture) <= float(terms.log)
    assert float(loss.components(target, target).texture) == 0.0
    assert float(MultiScaleSTFTLoss([2048]).components(other, target).texture) == 0.0
    # From 512 up only: the small sizes drop out of the sum, the large ones weigh as before.
    scales = [2048, 1024, 512, 256, 128, 64]
    large = MultiScaleSTFTLoss(scales, texture_weight=1.0, texture_min_size=512)
    alone = sum(float(MultiScaleSTFTLoss([s], texture_weight=1.0).components(other, target).texture)
                for s in (2048, 1024, 512))
    assert math.isclose(float(large.components(other, target).texture) * len(scales), alone, rel_tol=1e-5)
    assert float(large.components(other, target).texture) < 0.6 * float(large.components(noise, target).texture)
    with pytest.raises(ValueError, match="stft_texture_min_size"):
        preset("tiny").replace(**{"loss.stft_texture_min_size": 1024})  # tiny's largest FFT is 512


def test_band_edge_term_scores_the_ring_and_nothing_but_band_edges() -> None:
    """The ring trained decoders made: an offset under the upper sub-bands' envelopes. On
    real built-in hits through the real PQMF it stands 15 dB and more over the spectrum
    (``band_edge_ring_db``). The band-edge term scores it at three times what it adds to the
    STFT log term; a tone of the same size mid-band, which the log term scores as much,
    it scores at an eighth (what is left is the envelope's own attack). Its gradient takes the offset down, and sub-band 0 (the sound's own
    0 Hz) is left alone unless asked for."""
    from flowshot.evaluation.metrics import band_edge_ring_db
    from flowshot.model.drums import generate_drums
    from flowshot.model.losses import MultiScaleSTFTLoss, band_edge_distance
    from flowshot.model.pqmf import PQMF

    sr, bands, n, window = 22050, 16, 16384, 32
    audio, _ = generate_drums(16, sr, n, seed=3)
    x = torch.from_numpy(audio).float()[:, None]
    pqmf = PQMF(bands)
    sub = pqmf.analysis(x)
    env = sub.abs().amax(1, keepdim=True)  # the hit's own envelope, at the sub-band rate
    offset = torch.zeros_like(sub)
    offset[:, 1:] = 0.01 * env  # about the size of the offsets found (18 to 37 dB under the band)
    mid_band = offset * torch.cos(0.5 * math.pi * torch.arange(sub.shape[-1]))  # a quarter of the sub-band rate
    ringing, toned = pqmf.synthesis(sub + offset), pqmf.synthesis(sub + mid_band)
    rings = band_edge_ring_db(ringing[:, 0].numpy(), sr, bands)
    assert sorted(rings)[len(rings) // 2] > 15.0, rings
    stft = MultiScaleSTFTLoss([2048, 1024, 512, 256, 128, 64], linear_weight=0.0, log_weight=1.0)
    log_clean = stft(pqmf.synthesis(sub), x).item()
    log_ring, log_tone = stft(ringing, x).item() - log_clean, stft(toned, x).item() - log_clean
    edge_clean = band_edge_distance(pqmf.analysis(x), sub, window).item()
    edge_ring = band_edge_distance(pqmf.analysis(ringing), sub, window).item()
    edge_tone = band_edge_distance(pqmf.analysis(toned), sub, window).item()
    assert edge_clean < 0.05  # the bank's own round trip
    assert edge_ring > 3 * log_ring > 0.5, (edge_ring, log_ring)
    assert log_tone > 0.5 * log_ring and edge_tone < 0.15 * edge_ring, (log_tone, edge_tone)
    # Its slope along the offset's direction: shrinking the offset lowers the term.
    c = torch.ones((), requires_grad=True)
    band_edge_distance(pqmf.analysis(pqmf.synthesis(sub + c * offset)), sub, window).backward()
    assert c.grad.item() > 0
    low = torch.zeros_like(sub)
    low[:, 0] = 0.01 * env[:, 0]
    assert band_edge_distance(sub + low, sub, window).item() == 0.0
    assert band_edge_distance(sub + low, sub, window, first_band=0).item() > 0.02
    with pytest.raises(ValueError, match="differ in shape"):
        band_edge_distance(sub[:, :8], sub, window)
    with pytest.raises(ValueError, match="window"):
        band_edge_distance(sub, sub, sub.shape[-1] + 1)


def test_flatness_term_tells_lines_from_noise_at_any_level() -> None:
    """Spectral flatness of the deterministic part: white noise scores exp(-gamma) = 0.56
    (the geometric over the arithmetic mean of exponential powers), a few partials under a
    decaying envelope next to nothing, whatever their level; a silent tail does not move
    it, sub-band 0 is not scored, and its gradient turns noise down against lines in a
    mix without asking for a quieter part overall."""
    from flowshot.model.losses import wave_flatness

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(8, 16, 1024, generator=g)
    t = torch.arange(1024.0)
    freqs = 0.5 * torch.rand(8, 16, 3, 1, generator=g)  # 3 partials per sub-band, anywhere in it
    lines = torch.sin(2 * math.pi * freqs * t).sum(2) * torch.exp(-t / 300.0)
    assert abs(wave_flatness(noise, 64).item() - math.exp(-0.5772)) < 0.02
    assert wave_flatness(lines, 64).item() < 0.02
    for scale in (1e-4, 1e3):
        assert wave_flatness(scale * lines, 64).item() == pytest.approx(wave_flatness(lines, 64).item(), rel=1e-3)
        assert wave_flatness(scale * noise, 64).item() == pytest.approx(wave_flatness(noise, 64).item(), rel=1e-3)
    tail = torch.cat([lines, torch.zeros(8, 16, 1024)], dim=-1)
    assert wave_flatness(tail, 64).item() == pytest.approx(wave_flatness(lines, 64).item(), rel=0.05)
    only_low = torch.cat([noise[:, :1], lines[:, 1:]], dim=1)
    assert wave_flatness(only_low, 64).item() == pytest.approx(wave_flatness(lines, 64).item(), rel=1e-4)
    assert wave_flatness(only_low, 64, first_band=0).item() > 0.02
    # In a mix of lines and noise the slope takes the noise down and the lines up.
    a = torch.ones((), requires_grad=True)
    b = torch.ones((), requires_grad=True)
    wave_flatness(a * lines + 0.3 * b * noise, 64).backward()
    assert b.grad.item() > 0 > a.grad.item()
    with pytest.raises(ValueError, match="flatness FFT size"):
        wave_flatness(noise, 2048)


def test_flatness_matching_scores_how_peaked_each_band_is_not_where_its_lines_are() -> None:
    """``flatness_distance``: a reconstruction whose lines sit at other frequencies than
    the target's scores about nothing (the STFT terms' business), noise in place of lines
    scores about the flatness gap (0.56), and its slope takes the noise down in favour of
    the lines; frames where the target is silent do not count."""
    from flowshot.model.losses import flatness_distance, frame_flatness

    g = torch.Generator().manual_seed(1)
    t = torch.arange(1024.0)
    decay = torch.exp(-t / 300.0)

    def partials() -> torch.Tensor:
        freqs = 0.5 * torch.rand(4, 8, 3, 1, generator=g)
        return torch.sin(2 * math.pi * freqs * t).sum(2) * decay

    target, moved = partials(), partials()
    noise = torch.randn(4, 8, 1024, generator=g) * decay
    assert flatness_distance(moved, target, 64).item() < 0.03
    gap = flatness_distance(noise, target, 64).item()
    flat_target, weight = frame_flatness(target, 64)  # frames count by the target's energy
    assert gap == pytest.approx(((frame_flatness(noise, 64)[0] - flat_target).abs() * weight).sum(-1).mean().item(), rel=1e-5)
    assert 0.45 < gap < 0.6
    a = torch.ones((), requires_grad=True)
    b = torch.ones((), requires_grad=True)
    flatness_distance(a * moved + 0.3 * b * noise, target, 64).backward()
    assert b.grad.item() > 0 > a.grad.item()
    silent_tail = torch.cat([target, torch.zeros_like(target)], dim=-1)
    noisy_tail = torch.cat([moved, 1e-3 * torch.randn(4, 8, 1024, generator=g)], dim=-1)
    assert flatness_distance(noisy_tail, silent_tail, 64).item() < 0.03
    with pytest.raises(ValueError, match="differ in shape"):
        flatness_distance(noise[:, :4], target, 64)


def test_flatness_matching_alone_brings_a_decoders_bands_to_the_targets_flatness() -> None:
    """Its gradient through a whole (tiny, untrained) FlowVAE and the PQMF: optimising the
    matching term alone on 16 built-in hits halves it within 60 Adam steps."""
    from flowshot.model.config import preset
    from flowshot.model.drums import generate_drums
    from flowshot.model.losses import flatness_distance
    from flowshot.model.vae import FlowVAE

    torch.manual_seed(0)
    cfg = preset("tiny")
    model = FlowVAE(cfg)
    audio, _ = generate_drums(16, cfg.audio.sample_rate, cfg.audio.length, seed=0)
    x = torch.from_numpy(audio).float()[:, None]
    target = model.pqmf.analysis(x)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    seen = []
    for _ in range(60):
        d = flatness_distance(model.pqmf.analysis(model(x)["recon"]), target, cfg.loss.flatness_fft)
        opt.zero_grad()
        d.backward()
        opt.step()
        seen.append(d.item())
    assert seen[-1] < 0.5 * seen[0], seen[::10]


def test_loss_landscape_scores_a_body_an_octave_off_between_the_right_one_and_none() -> None:
    """benchmarks/loss_landscape.py on `small`'s own loss (``stft_loss_from_config``, as
    training builds it): a 120 Hz body scores best against itself, worse a fifth and an
    octave off, worst not there at all; the transport term grows with the distance, the
    texture term hardly tells an octave off from the right body."""
    module = bench_scripts.load("loss_landscape")
    rows = {row["name"]: row for row in module.landscape("small", 120.0, 0.25)}
    weighted = [rows[name]["weighted"] for name in ("the same body", "a fifth low", "an octave low", "no body")]
    assert weighted == sorted(weighted) and weighted[-1] > 1.5 * weighted[2], weighted
    transport = [rows[name]["transport"] for name in ("the same body", "a fifth low", "an octave low", "no body")]
    assert transport == sorted(transport) and transport[0] < 0.01, transport
    low = [rows[name]["low_transport"] for name in ("the same body", "a fifth low", "an octave low")]
    assert low == sorted(low) and low[0] < 0.01 and low[2] > 0.3, low
    same, octave, none = (rows[name]["texture"] for name in ("the same body", "an octave low", "no body"))
    assert octave - same < 0.25 * (none - same), (same, octave, none)
