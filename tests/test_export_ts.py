"""The nn~ instrument (.ts): what nn~ reads, what each method plays, state across blocks.

The file is exported once per module through the real CLI (``flowshot export ts``), which
self-tests it in a fresh ``python -I`` process; the tests then load it with
``torch.jit.load`` like a host and compare against the eager model of the checkpoint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowshot.cli import main as cli_main
from flowshot.export.rng import gaussian, uniform_index
from flowshot.model.checkpoint import flowshot_meta, load_model
from flowshot.model.config import FlowshotConfig, preset
from flowshot.model.latents import marginal_base, stored_kernel

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

K = 8
# Float tolerance between the scripted instrument (weight norm folded) and the eager
# checkpoint model: relative to the one-shot's peak.
REL_TOL = 1e-4


def random_checkpoint(path: Path, cfg: FlowshotConfig | None = None) -> Path:
    """A FlowVAE (``tiny`` unless ``cfg``) with random (non-identity) flows, saved in the
    checkpoint format.

    Stand-in for the ``tiny_checkpoint`` fixture when the suite does not provide it; the
    latent statistics are stored so no data has to be loaded.
    """
    from flowshot.model.vae import FlowVAE

    cfg = cfg or preset("tiny")
    torch.manual_seed(0)
    model = FlowVAE(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "flow" in name:  # zero-initialised couplings would make the flows identities
                p.add_(0.05 * torch.randn_like(p))
    d = cfg.model.latent_dim
    q, _ = torch.linalg.qr(torch.randn(d, d))
    stats = {
        "macro_directions": q[:K].contiguous(), "macro_std": torch.linspace(1.0, 0.3, K), "base_mean": 0.1 * torch.randn(d),
        "macro_labels": [f"knob{i}" for i in range(K)], "pad_latents": torch.randn(4, d), "pad_classes": ["kick", "snare", "hat", "tom"],
        "pad_base": torch.randn(4, d),
    }
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "flowshot": flowshot_meta(cfg, ["builtin:drums"], ["kick"], 0, latent_stats=stats)}
    torch.save(ckpt, path)
    return path


def assert_exports_render_as_pytorch(path: Path, z: torch.Tensor, out: Path, onnx_tolerance: float = 1e-4) -> None:
    """The checkpoint at ``path`` exported: the ONNX decoder (onnxruntime) renders the latents
    z [B,D] as PyTorch does, to ``onnx_tolerance`` of the peak, and the nn~ file
    (torch.jit.load) plays z[0] from a gate at sample 100 as PyTorch renders it, to 1e-4."""
    import numpy as np

    from flowshot.export.onnx import make_session

    loaded = load_model(path)
    with torch.no_grad():
        ref = loaded.model.eval().render(z)
    assert cli_main(["export", "onnx", str(path), "-o", str(out / "onnx")]) == 0
    got = make_session(out / "onnx" / "decoder.onnx").run(None, {"z": z.numpy()})[0]
    assert np.max(np.abs(got - ref.numpy())) < onnx_tolerance * float(ref.abs().max())
    ts_path = out / "model.ts"
    assert cli_main(["export", "ts", str(path), "-o", str(ts_path), "--macros", "4"]) == 0
    ts = torch.jit.load(str(ts_path)).eval()
    d, length = loaded.config.model.latent_dim, loaded.config.audio.length
    x = torch.zeros(1, 1 + d, 2 * length)
    x[0, 0, 100:] = 0.6  # a gate from sample 100: one hit, with latent z[0]
    x[0, 1:, :] = z[0].unsqueeze(1)
    with torch.inference_mode():
        y = ts.decode(x)[0, 0]
    expected = torch.zeros(2 * length)
    expected[100:100 + length] = 0.6 * ref[0, 0]
    assert float((y - expected).abs().max()) < 1e-4 * float(expected.abs().max())


def checkpoint_for_tests(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Path(request.getfixturevalue("tiny_checkpoint"))
    except pytest.FixtureLookupError:
        return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.ckpt")


@pytest.fixture(scope="module")
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    ckpt = checkpoint_for_tests(request, tmp_path_factory)
    out = tmp_path_factory.mktemp("ts") / "flowshot.ts"
    assert cli_main(["export", "ts", str(ckpt), "-o", str(out), "--macros", str(K)]) == 0
    loaded = load_model(ckpt)
    return loaded, out


@pytest.fixture()
def ts(exported) -> torch.jit.ScriptModule:
    """A fresh instance per test (state starts empty), as each nn~ object loads its own."""
    return torch.jit.load(str(exported[1])).eval()


def peak_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-9))


def test_loads_in_fresh_process_without_flowshot(exported) -> None:
    _, path = exported
    code = ("import sys, torch; m = torch.jit.load(sys.argv[1]); "
            "print(list(m.get_methods()), 'flowshot' in sys.modules, [p.tolist() for p in (m.sample_params, m.decode_params, m.encode_params, m.forward_params)])")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    line = proc.stdout.strip().splitlines()[-1]
    d = exported[0].config.model.latent_dim
    assert line == f"['sample', 'decode', 'encode', 'forward'] False [[{1 + K}, 1, 1, 1], [{1 + d}, 1, 1, 1], [1, 1, {1 + d}, 1], [1, 1, 1, 1]]"


def test_attributes_as_nn_tilde_reads_them(ts) -> None:
    assert list(ts.get_attributes()) == ["temperature", "seed", "polyphony", "threshold", "listen"]
    # nn~ type codes: int 1, float 2.
    assert [getattr(ts, f"{a}_params").tolist() for a in ts.get_attributes()] == [[2.0], [1.0], [1.0], [2.0], [1.0]]
    length = ts.get_info()[1]
    valid = {"temperature": [0.0, 0.5, 3.0], "seed": [-1, 0, 12345], "polyphony": [1, 32], "threshold": [-60.0, 0.0], "listen": [1, length]}
    invalid = {"temperature": [-0.1, float("nan"), float("inf")], "seed": [-2], "polyphony": [0, 33], "threshold": [1.0, float("nan")],
               "listen": [0, length + 1]}
    for name, values in valid.items():
        for v in values:
            assert getattr(ts, f"set_{name}")(v) == 0 and getattr(ts, f"get_{name}")() == v, (name, v)
    for name, values in invalid.items():
        before = getattr(ts, f"get_{name}")()
        for v in values:
            assert getattr(ts, f"set_{name}")(v) != 0, (name, v)
        assert getattr(ts, f"get_{name}")() == before


def test_host_methods_and_buffers(exported, ts) -> None:
    loaded, _ = exported
    cfg = loaded.config
    sr, length, d, k, p = ts.get_info()
    assert (sr, length, d, k) == (cfg.audio.sample_rate, cfg.audio.length, cfg.model.latent_dim, K)
    assert ts.macro_directions.shape == (K, d) and ts.macro_std.shape == (K,) and ts.base_mean.shape == (d,)
    assert ts.pad_latents.shape == (p, d) and ts.pad_base.shape == (p, d)
    assert len(ts.get_macro_labels()) == K and len(ts.get_pad_classes()) == p
    z = torch.randn(3, d)
    with torch.no_grad():
        assert peak_err(ts.decode_latent(z), loaded.model.render(z)) < REL_TOL
        assert peak_err(ts.base_to_latent(z), loaded.model.base_to_latent(z)) < REL_TOL
        assert peak_err(ts.latent_to_base(z), loaded.model.latent_to_base(z)) < REL_TOL
        x = 0.3 * torch.randn(2, 1, length)
        assert peak_err(ts.embed(x), loaded.model.embed(x)) < REL_TOL


@pytest.mark.parametrize("batch", [1, 4])
def test_every_method_answers_every_buffer_size(ts, batch: int) -> None:
    with torch.inference_mode():
        for method in ts.get_methods():
            in_ch, in_ratio, out_ch, out_ratio = getattr(ts, f"{method}_params").tolist()
            for n in [2 ** e for e in range(6, 14)]:  # 64 .. 8192
                x = torch.zeros(batch, in_ch, n // in_ratio)
                x[:, 0, n // 2:] = 0.5  # a hit (or a loud input) in every block
                y = getattr(ts, method)(x)
                assert tuple(y.shape) == (batch, out_ch, n // out_ratio), (method, n)
                assert bool(torch.isfinite(y).all())


def trigger_signal(batch: int, n: int, channels: int, hits: list[tuple[int, int, float]], values: torch.Tensor | None = None) -> torch.Tensor:
    """[B, channels, n]: gates of 40 samples at the hits (row, sample, gain); other channels from ``values``."""
    x = torch.zeros(batch, channels, n)
    for row, s, g in hits:
        x[row, 0, s:s + 40] = g
        if values is not None:
            x[row, 1:, s:] = values[row, s // 1000 % values.size(1)].unsqueeze(1)
    return x


def run_blocks(ts, method: str, x: torch.Tensor, size: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([getattr(ts, method)(x[:, :, i:i + size]) for i in range(0, x.size(2), size)], dim=2)


@pytest.mark.parametrize("method", ["sample", "decode"])
def test_block_size_invariance_with_overlaps(exported, method: str) -> None:
    loaded, path = exported
    d = loaded.config.model.latent_dim
    n = 8192
    # Hits 300..900 samples apart (< length 2048: voices overlap), gates crossing the
    # 64/512 block boundaries, two rows; polyphony 2 makes the third voice steal.
    hits = [(0, 60, 0.9), (0, 500, 0.4), (0, 1020, 0.7), (0, 4095, 1.0), (1, 1000, 0.5), (1, 1535, 0.8), (1, 6000, 0.3)]
    channels = 1 + (K if method == "sample" else d)
    values = torch.randn(2, 5, channels - 1) * 0.8
    x = trigger_signal(2, n, channels, hits, values)
    outs = []
    for size in (8192, 512, 64):
        m = torch.jit.load(str(path))
        m.set_polyphony(2)
        outs.append(run_blocks(m, method, x, size))
    ref = outs[0]
    assert ref.abs().max() > 1e-3
    for other in outs[1:]:
        # Same hits, same voices: only batched-vs-single decoding rounding may differ.
        assert peak_err(other, ref) < 1e-5


def test_decode_hit_equals_model_decode(exported, ts) -> None:
    loaded, _ = exported
    d, length = loaded.config.model.latent_dim, loaded.config.audio.length
    z = torch.randn(2, d)
    x = torch.zeros(1, 1 + d, 3 * length)
    x[0, 0, 100:] = 0.6
    x[0, 1:, :] = z[0].unsqueeze(1)
    x[0, 0, 900] = 0.0  # a one-sample gap: the edge at 901 is a second voice, with latent z[1]
    x[0, 0, 901:] = 0.25
    x[0, 1:, 901:] = z[1].unsqueeze(1)
    with torch.inference_mode():
        y = ts.decode(x)[0, 0]
    with torch.no_grad():
        ref = loaded.model.render(z)[:, 0]
    expected = torch.zeros(3 * length)
    expected[100:100 + length] += 0.6 * ref[0]
    expected[901:901 + length] += 0.25 * ref[1]
    assert peak_err(y, expected) < REL_TOL
    assert torch.all(y[:100] == 0) and torch.all(y[901 + length:] == 0)


def test_sample_with_seed_is_reproducible_and_equals_offline_decode(exported, ts) -> None:
    loaded, _ = exported
    length, d = loaded.config.audio.length, loaded.config.model.latent_dim
    assert ts.set_seed(7) == 0 and ts.set_temperature(0.5) == 0
    knobs = torch.tensor([1.0, -0.5, 0.0, 2.0, 0.0, 0.0, 0.3, 0.0])
    x = torch.zeros(1, 1 + K, 2 * length)
    x[0, 0, 10:20] = 1.0
    x[0, 0, 10 + length:] = 1.0
    x[0, 1:, :] = knobs.unsqueeze(1)
    with torch.inference_mode():
        y = ts.sample(x)[0, 0]
        played = ts.last_latent[0].clone()
    assert torch.equal(y[10:10 + length - 10], y[10 + length:2 * length])  # same seed, same hit
    # Offline: the documented draw, independent of the module: a kernel draw around the
    # training sound that uniform_index picks, with the stored spread and bandwidth.
    keys, counters = torch.tensor([7]), torch.tensor([0])
    eps = gaussian(keys, counters, d)
    points, spread, bandwidth = stored_kernel(loaded.meta)
    assert torch.allclose(ts.base_points, points, atol=1e-5) and ts.kernel_bandwidth == bandwidth
    index = uniform_index(keys, counters, len(points))
    u = points[index] + 0.5 * bandwidth * spread * eps + (knobs * ts.macro_std) @ ts.macro_directions
    with torch.no_grad():
        z = loaded.model.base_to_latent(u)
        ref = loaded.model.render(z)[0, 0]
    assert peak_err(played, z[0]) < REL_TOL
    assert peak_err(y[10:10 + length], ref) < REL_TOL


def test_data_sampler_export_draws_through_the_copula(exported) -> None:
    """``flowshot export ts --sampler data`` leaves the training points out: ``sample``'s
    draws then go through the quantiles and mixing (``marginal_base``), and temperature 0
    gives every dimension's median whatever the seed."""
    from flowshot.export.stats import for_sampler
    from flowshot.export.ts import build_instrument

    loaded, _ = exported
    stats = for_sampler(loaded.meta["latent_stats"], "data")
    assert "base_points" not in stats
    inst = build_instrument(loaded, stats)
    assert inst.base_points.shape[0] == 0 and inst.base_mixing.shape[0] == inst.latent_dim
    keys, counters = torch.tensor([3, 3]), torch.tensor([0, 1])
    eps = gaussian(keys, counters, inst.latent_dim)
    inst.set_temperature(0.8)
    want = marginal_base(0.8 * eps, inst.base_quantiles, inst.base_mixing)
    assert torch.allclose(inst.prior_base(keys, counters), want, atol=1e-6)
    inst.set_temperature(0.0)
    median = marginal_base(torch.zeros(1, inst.latent_dim), inst.base_quantiles, inst.base_mixing)
    assert torch.allclose(inst.prior_base(keys, counters), median.expand(2, -1), atol=1e-6)


def test_free_running_seed_gives_new_draws(ts) -> None:
    length = ts.get_info()[1]
    x = torch.zeros(1, 1 + K, 3 * length)
    x[0, 0, 0:5] = 1.0
    x[0, 0, length:length + 5] = 1.0
    with torch.inference_mode():
        y = ts.sample(x)[0, 0]
    a, b = y[:length], y[length:2 * length]
    assert (a - b).abs().max() > 0.01 * a.abs().max()


def test_encode_detects_once_and_forward_replaces(exported, ts) -> None:
    loaded, _ = exported
    length, d = loaded.config.audio.length, loaded.config.model.latent_dim
    listen = 512
    assert ts.set_listen(listen) == 0 and ts.set_threshold(-20.0) == 0
    n = 4 * length
    g = torch.Generator().manual_seed(1)
    hit = torch.randn(600, generator=g) * torch.exp(-torch.arange(600) / 100.0) * 0.8
    x = torch.zeros(1, 1, n)
    starts = [300, 300 + 2 * length]
    for s in starts:
        x[0, 0, s:s + 600] = hit
    with torch.inference_mode():
        out = run_blocks(ts, "encode", x, 256)
    first = [int(torch.nonzero(x[0, 0, s:].abs() >= 0.1)[0]) + s for s in starts]  # -20 dBFS
    pulses = torch.nonzero(out[0, 0]).flatten().tolist()
    assert pulses == [f + listen - 1 for f in first]  # one detection per hit, after `listen` samples
    window = torch.zeros(1, 1, length)
    window[0, 0, :listen] = x[0, 0, first[0]:first[0] + listen]
    with torch.no_grad():
        z = loaded.model.embed(window)[0]
    p = pulses[0]
    assert torch.all(out[0, 1:, :p] == 0) and peak_err(out[0, 1:, p], z) < REL_TOL
    assert torch.allclose(out[0, 0, p], window.abs().max())
    # forward == decode(encode(.)) on a fresh instance: the replaced hit starts at the pulse.
    m = torch.jit.load(str(exported[1]))
    m.set_listen(listen)
    m.set_threshold(-20.0)
    with torch.inference_mode():
        y = m.forward(x)[0, 0]
        ref = loaded.model.render(z.unsqueeze(0))[0, 0] * window.abs().max()
    assert torch.all(y[:p] == 0) and peak_err(y[p:p + length], ref) < REL_TOL


def test_check_command_accepts_good_and_refuses_corrupt(exported, tmp_path: Path, capsys) -> None:
    _, path = exported
    assert cli_main(["export", "check", str(path)]) == 0
    assert "method sample: 9 in" in capsys.readouterr().out
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one damaged byte inside a member
    foreign = tmp_path / "foreign.ts"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(foreign))  # loads fine, but is no instrument
    for name, content in (("truncated.ts", data[:5000]), ("flipped.ts", bytes(flipped)), ("foreign.ts", None)):
        bad = tmp_path / name
        if content is not None:
            bad.write_bytes(content)
        assert cli_main(["export", "check", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("flowshot: error:") and name in err and len(err.splitlines()) == 1, err


def test_foreign_checkpoint_is_one_line_error(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.ckpt"
    torch.save({"state_dict": {}}, junk)
    assert cli_main(["export", "ts", str(junk), "-o", str(tmp_path / "out.ts")]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk.ckpt" in err and len(err.splitlines()) == 1 and not (tmp_path / "out.ts").exists()


def test_patches_command_wires_the_models_latent_size(exported, tmp_path: Path) -> None:
    loaded, path = exported
    d = loaded.config.model.latent_dim
    assert cli_main(["export", "patches", str(path), "-o", str(tmp_path)]) == 0
    text = (tmp_path / "flowshot-replace.pd").read_text()
    lines = text.splitlines()
    enc = next(i for i, l in enumerate(l for l in lines[1:] if l.startswith("#X ") and not l.startswith("#X connect")) if "nn~ flowshot encode" in l)
    dec = next(i for i, l in enumerate(l for l in lines[1:] if l.startswith("#X ") and not l.startswith("#X connect")) if "nn~ flowshot decode" in l)
    assert sum(l.startswith(f"#X connect {enc} ") and f" {dec} " in l for l in lines) == 1 + d
    assert f"nn~ flowshot sample 2048" in (tmp_path / "flowshot.pd").read_text()


def test_host_sample_rate_resamples_each_hit(exported, ts) -> None:
    loaded, _ = exported
    sr, length, d = loaded.config.audio.sample_rate, loaded.config.audio.length, loaded.config.model.latent_dim
    assert ts.set_sample_rate(10) != 0 and ts.set_sample_rate(500000) != 0 and ts.get_sample_rate() == sr
    assert ts.set_sample_rate(2 * sr) == 0 and ts.get_listen() == 2 * length
    z = torch.randn(1, d)
    x = torch.zeros(1, 1 + d, 3 * length)
    x[0, 0, 50:] = 1.0
    x[0, 1:, :] = z[0].unsqueeze(1)
    with torch.inference_mode():
        y = torch.cat([ts.decode(x[:, :, i:i + 512]) for i in range(0, x.size(2), 512)], dim=2)[0, 0]
    with torch.no_grad():
        ref = loaded.model.render(z)[0, 0]
    # Twice as long at twice the rate; linear interpolation with half-sample centres puts
    # host sample 2k+1 at model position k + 1/4.
    assert torch.all(y[50 + 2 * length:] == 0) and y[50 + 2 * length - 1] != 0
    expected = 0.75 * ref[:-1] + 0.25 * ref[1:]
    assert peak_err(y[50 + 1:50 + 2 * length - 2:2], expected) < REL_TOL
    assert ts.set_sample_rate(sr) == 0 and ts.get_listen() == length
