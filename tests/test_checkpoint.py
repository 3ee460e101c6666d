"""Checkpoints: atomic writes survive crashes and kills, bad files give one-line errors,
and a checkpoint rebuilds the same model in a fresh process."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowshot.errors import FlowshotError
from flowshot.model import checkpoint as ckpt_mod
from flowshot.model.checkpoint import AtomicCheckpointIO, flowshot_meta, load_model, read_checkpoint
from flowshot.model.config import preset
import bench_scripts


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def _manual_checkpoint(path: Path, seed: int = 0) -> torch.nn.Module:
    """A checkpoint laid out like Lightning's (state_dict under "model.") plus the flowshot block."""
    from flowshot.model.vae import FlowVAE

    torch.manual_seed(seed)
    cfg = preset("tiny")
    model = FlowVAE(cfg)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    AtomicCheckpointIO().save_checkpoint(
        {"state_dict": state, "flowshot": flowshot_meta(cfg, ["builtin:drums"], ["kick", "snare"], 7)}, path
    )
    return model.eval()


def test_crash_during_save_keeps_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    _manual_checkpoint(path)
    before = path.read_bytes()
    real_save = torch.save

    def half_then_crash(obj, fh, *a, **k):  # writes real bytes, then dies like a kill would
        fh.write(b"PK\x03\x04 partial checkpoint bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, path)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"], "temp file left behind"
    assert load_model(path).meta["step"] == 7


def test_sigkill_mid_write_never_truncates(tmp_path: Path) -> None:
    """A real writer process is SIGKILLed while half of a new checkpoint is on disk.

    (The child uses atomic_torch_save, which AtomicCheckpointIO.save_checkpoint is, so it
    does not pay Lightning's import time.)
    """
    path = tmp_path / "last.ckpt"
    script = (
        "import io, sys, time, torch\n"
        "from flowshot.model import checkpoint as c\n"
        "c.atomic_torch_save({'i': 1, 'w': torch.ones(500_000)}, sys.argv[1])\n"
        "real_save = torch.save\n"
        "def slow_save(obj, fh):\n"
        "    buf = io.BytesIO(); real_save(obj, buf); data = buf.getvalue()\n"
        "    fh.write(data[: len(data) // 2]); fh.flush()\n"
        "    print('MID', flush=True); time.sleep(600)\n"
        "c.torch.save = slow_save\n"
        "c.atomic_torch_save({'i': 2, 'w': torch.full((500_000,), 2.0)}, sys.argv[1])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "MID"
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].stat().st_size > 1_000_000  # half a 2 MB file is there
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    data = torch.load(path, weights_only=True)
    assert data["i"] == 1 and float(data["w"].sum()) == 500_000.0


def test_random_bytes_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.ckpt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "not a PyTorch checkpoint" in _one_line(err, path)


def test_missing_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.ckpt"
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "does not exist" in _one_line(err, path)


def test_plain_torch_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "not a flowshot checkpoint" in _one_line(err, path)


class Payload:
    """A custom class: unpickling it means importing and running this module's code."""

    def __init__(self) -> None:
        self.value = 1


def test_pickled_code_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    _manual_checkpoint(path)
    data = torch.load(path, weights_only=True)
    data["extra"] = Payload()
    torch.save(data, path)
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "pickled code" in _one_line(err, path)


def test_incompatible_config_and_format_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.ckpt"
    _manual_checkpoint(path)
    data = torch.load(path, weights_only=True)
    data["flowshot"]["config"]["model"]["warp_drive"] = True
    torch.save(data, path)
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "incompatible" in _one_line(err, path)
    data["flowshot"]["format"] = 99
    torch.save(data, path)
    with pytest.raises(FlowshotError) as err:
        load_model(path)
    assert "format 99" in _one_line(err, path)


def test_cli_prints_one_line_for_bad_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.ckpt"
    path.write_bytes(b"not a checkpoint at all")
    proc = subprocess.run(
        [sys.executable, "-m", "flowshot", "generate", str(path), "-n", "2", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in proc.stderr


def test_rebuilds_same_model_in_fresh_process(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    model = _manual_checkpoint(path, seed=3)
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 1, preset("tiny").audio.length)
    with torch.no_grad():
        z = model.embed(x)
        y = model.decode(z)
    torch.save({"x": x}, tmp_path / "x.pt")
    script = (
        "import sys, json, torch\n"
        "from flowshot.model.checkpoint import load_model\n"
        "m = load_model(sys.argv[1])\n"
        "x = torch.load(sys.argv[2], weights_only=True)['x']\n"
        "with torch.no_grad():\n"
        "    z = m.model.embed(x); y = m.model.decode(z)\n"
        "torch.save({'z': z, 'y': y}, sys.argv[3])\n"
        "print(json.dumps({'step': m.meta['step'], 'preset': m.config.preset, 'training': m.model.training}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info == {"step": 7, "preset": "tiny", "training": False}
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.allclose(got["z"], z, atol=1e-6)
    assert torch.allclose(got["y"], y, atol=1e-5)
    assert float(y.abs().max()) > 1e-4  # the comparison is of real signals, not zeros


def test_lightning_checkpoint_loads_weights_only(tiny_checkpoint: Path) -> None:
    """The real trained checkpoint is plain data and rebuilds with its step and data sources."""
    raw = read_checkpoint(tiny_checkpoint)
    assert raw["flowshot"]["format"] == 1 and raw["flowshot"]["step"] == 40
    assert raw["flowshot"]["data"]["sources"] == ["builtin:drums"]
    loaded = load_model(tiny_checkpoint)
    assert not loaded.model.training and loaded.config.preset == "tiny"
    assert "kick" in loaded.meta["data"]["classes"]
    assert tuple(loaded.meta["latent_stats"]["pad_latents"].shape)[1] == loaded.config.model.latent_dim


def test_lightning_resume_path_reads_weights_only(tmp_path: Path) -> None:
    """What Trainer.fit(ckpt_path=...) calls is our IO, which refuses pickled objects."""
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", plugins=[AtomicCheckpointIO()], logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    path = tmp_path / "evil.ckpt"
    torch.save({"flowshot": {}, "extra": Payload()}, path)
    with pytest.raises(FlowshotError) as err:
        trainer.strategy.load_checkpoint(path, weights_only=False)  # even when asked to unpickle
    assert "pickled code" in _one_line(err, path)


def test_adjust_copies_a_checkpoint_with_an_inference_only_setting(tmp_path: Path) -> None:
    """flowshot adjust (and benchmarks/with_setting.py, which runs it): the copy rebuilds
    with the new setting and the very same weights; a setting that would make the weights
    wrong, or writing over the input, is refused in one line."""
    from test_export_ts import random_checkpoint

    src = random_checkpoint(tmp_path / "a.ckpt")
    out = tmp_path / "b.ckpt"
    run = subprocess.run([sys.executable, "-m", "flowshot.cli", "adjust", str(src), "-o", str(out),
                          "--set", "model.highpass_bands=2"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    a, b = load_model(src), load_model(out)
    assert (a.config.model.highpass_bands, b.config.model.highpass_bands) == (1, 2)
    assert b.config.replace(**{"model.highpass_bands": 1}) == a.config
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "with_setting.py"
    refused = [
        ([sys.executable, str(script), str(src), "-o", str(tmp_path / "c.ckpt"), "--set", "loss.beta=1.0"], "loss.beta"),
        ([sys.executable, "-m", "flowshot.cli", "adjust", str(src), "-o", str(src), "--set", "model.highpass_bands=2"],
         "is the input checkpoint"),
    ]
    for argv, why in refused:
        bad = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and why in bad.stderr, bad.stderr
    assert not (tmp_path / "c.ckpt").exists()
    assert load_model(src).config == a.config


def test_branch_spectra_splits_each_sub_band_and_runs_on_a_trained_checkpoint(tiny_checkpoint: Path) -> None:
    """benchmarks/branch_spectra.py: an offset lands in the 0 Hz quarter and bins, a tone at
    five eighths of a sub-band's Nyquist in its third quarter; on a trained tiny model the
    first table has a row per sub-band, the flatness table one per class and one for all."""
    module = bench_scripts.load("branch_spectra")
    t = torch.arange(256, dtype=torch.float64)
    sub = torch.stack([torch.ones_like(t), torch.cos(torch.pi * 0.625 * t)])[None]  # [1, 2 bands, 256]
    q = module.quarter_energies(sub)
    assert q.shape == (2, 5)
    torch.testing.assert_close(q[0, 0], q[0].sum() / 2)  # all of it in q0, and all in the 0 Hz bins
    torch.testing.assert_close(q[0, 4], q[0, 0])
    assert q[1, 2] > 0.999 * q[1, :4].sum() and q[1, 4] < 1e-9 * q[1, 2]
    script = bench_scripts.BENCHMARKS / "branch_spectra.py"
    run = subprocess.run([sys.executable, str(script), str(tiny_checkpoint), "--sounds", "8"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert run.returncode == 0, run.stderr
    bands_part, flat_part = run.stdout.split("spectral flatness")
    rows = [line for line in bands_part.splitlines() if line.startswith("│")]
    assert len(rows) == 4  # tiny: 4 sub-bands
    # then a row per class and one for all: real, deterministic, noise, both, each in [0, 1]
    rows = [line.strip("│ ").split("│") for line in flat_part.splitlines() if line.startswith("│")]
    assert len(rows) >= 2 and rows[-1][0].strip() == "all"
    assert int(rows[-1][1]) == sum(int(row[1]) for row in rows[:-1])
    assert all(0.0 <= float(v) <= 1.0 for row in rows for v in row[2:])


def test_envelope_floor_finds_the_floor_a_flat_mean_leaves_and_runs_on_a_trained_checkpoint(tiny_checkpoint: Path) -> None:
    """benchmarks/envelope_floor.py: a decaying hit with an offset keeps its silent tail
    silent; the same hit with its flat mean taken out has a floor there about 11 dB under
    its mean power, which the measure finds; a flat spectrum holds one bin's share at
    0 Hz; on a trained tiny model every held-out sound is in one class's row."""
    module = bench_scripts.load("envelope_floor")
    t = torch.arange(512, dtype=torch.float64)
    envelope = torch.exp(-t / 20)[None, None]  # under -60 dB from sample 139 on
    wave = (1.0 + 0.1 * torch.cos(0.3 * t)) * envelope
    share, floor = module.quiet_floor(wave, envelope)
    _, flat_floor = module.quiet_floor(wave - wave.mean(-1, keepdim=True), envelope)
    assert abs(share - (512 - 139) / 512) < 0.01
    assert floor < -55.0 and -14.0 < flat_floor < -8.0, (floor, flat_floor)
    noise = torch.randn(64, 2, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(module.zero_hz_share_db(noise) - 10 * math.log10(1 / 257)) < 6.0
    run = subprocess.run([sys.executable, str(bench_scripts.BENCHMARKS / "envelope_floor.py"), str(tiny_checkpoint)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("│")]
    held_out = int(run.stdout.split(" held-out")[0].split()[-1])
    assert rows and sum(int(r.split("│")[2]) for r in rows) == held_out, run.stdout  # every sound in one class row


def test_class_octaves_finds_a_body_an_octave_off_and_runs_on_a_trained_checkpoint(tiny_checkpoint: Path) -> None:
    """benchmarks/class_octaves.py: a 100 Hz body at half amplitude reads -6 dB in
    80-160 Hz; the same body an octave low reads far short there and far over at 40-80 Hz;
    on a trained tiny model every held-out sound is in one class's row."""
    module = bench_scripts.load("class_octaves")
    sr = 8000
    t = np.arange(sr) / sr
    real = np.sin(2 * np.pi * 100 * t)[None]
    half = module.octave_ratio_db(real, 0.5 * real, sr)
    assert half[2] == pytest.approx(-6.02, abs=0.05)  # 80-160 Hz
    low = module.octave_ratio_db(real, np.sin(2 * np.pi * 50 * t)[None], sr)
    assert low[2] < -40.0 and low[1] > 40.0, low
    run = subprocess.run([sys.executable, str(bench_scripts.BENCHMARKS / "class_octaves.py"), str(tiny_checkpoint)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("│")]
    held_out = int(run.stdout.split(" held-out")[0].split()[-1])
    assert rows and sum(int(r.split("│")[2]) for r in rows) == held_out, run.stdout
