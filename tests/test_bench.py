"""``flowshot bench --preset tiny``: every backend really runs, the table and JSON are complete.

No timing assertions (the CPU is shared); only identities between the reported numbers
and FLOP counts against hand-computed ones. About 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os

import pytest
import torch
from torch import nn

from flowshot.evaluation import commands
from flowshot.evaluation.bench import BACKENDS, RENDER_COLUMNS, count_flops, matmul_gflops


def test_flop_counter_matches_hand_counts() -> None:
    x = torch.zeros(1, 8, 100)
    conv = nn.Conv1d(8, 16, 5, padding=2)
    assert count_flops(lambda: conv(x)) == 2 * 16 * 8 * 5 * 100
    lin = nn.Linear(32, 64)
    assert count_flops(lambda: lin(torch.zeros(4, 32))) == 2 * 4 * 32 * 64
    assert matmul_gflops(1, n=256, repeats=3) > 0.5


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--preset", "tiny", "--repeats", "2", "--train-steps", "1", "--json", str(out)])
    threads, columns = torch.get_num_threads(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # rich sizes its table by this when stdout is not a terminal
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            assert args.func(args) == 0
    finally:
        torch.set_num_threads(threads)
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return json.loads(out.read_text()), buf.getvalue()


def test_every_backend_thread_and_batch_is_measured(bench_run: tuple[dict, str]) -> None:
    result, _ = bench_run
    rows = result["render"]
    assert [(r["backend"], r["threads"], r["batch"]) for r in rows] == [
        (b, t, n) for b in BACKENDS for t in (1, 2) for n in (1, 16)
    ]
    for r in rows:
        assert set(RENDER_COLUMNS) == set(r)
        assert r["status"] == "ok", r
        assert r["ms_per_call"] > 0 and math.isfinite(r["ms_per_call"])
        assert r["ms_per_oneshot"] == pytest.approx(r["ms_per_call"] / r["batch"])
        assert r["realtime_factor"] == pytest.approx(result["duration_s"] * r["batch"] / (r["ms_per_call"] / 1e3))
        gflops = result["matmul_gflops"][str(r["threads"])]
        assert r["floor_ms"] == pytest.approx(result["flops_per_oneshot"] * r["batch"] / (gflops * 1e9) * 1e3)
        assert r["ratio_to_floor"] == pytest.approx(r["ms_per_call"] / r["floor_ms"])


def test_counts_training_and_memory(bench_run: tuple[dict, str]) -> None:
    from flowshot.model.config import preset
    from flowshot.model.vae import FlowVAE

    result, _ = bench_run
    cfg = preset("tiny")
    model = FlowVAE(cfg)
    assert result["params"]["generator_total"] == sum(p.numel() for p in model.parameters())
    assert result["params"]["decode_path"] < result["params"]["generator_total"]
    assert result["params"]["discriminators"] > 0
    # tiny decoder: its largest layers alone need ~2 * 64 * 64 * 3 * 128 multiply-adds
    assert 1e6 < result["flops_per_oneshot"] < 1e9
    assert result["duration_s"] == pytest.approx(2048 / 8000)
    t = result["training"]
    assert t["batch_size"] == cfg.train.batch_size and t["threads"] == 1
    for stage in ("stage1", "stage2"):
        assert t[f"{stage}_examples_per_s"] > 0
        assert t[f"{stage}_examples_per_s"] == pytest.approx(t["batch_size"] / (t[f"{stage}_ms_per_step"] / 1e3))
    assert result["peak_rss_mib"] >= result["peak_rss_mib_after_inference"] > 50


def test_table_is_printed_with_all_columns(bench_run: tuple[dict, str]) -> None:
    _, text = bench_run
    for col in ("backend", "threads", "batch", "ms/call", "ms/one-shot", "x real time", "floor ms", "time/floor", "status"):
        assert col in text, col
    for backend in ("eager", "torchscript", "onnxruntime"):
        assert backend in text
    assert "GFLOP/s" in text and "training" in text and "peak RSS" in text


def test_preset_overrides_time_a_variant() -> None:
    from flowshot.errors import FlowshotError
    from flowshot.evaluation.bench import BenchSettings, load_for_bench

    plain = load_for_bench(BenchSettings(preset="tiny"))
    variant = load_for_bench(BenchSettings(preset="tiny", overrides=("model.decoder_dilations=[1]", "model.latent_dim=8")))
    assert variant.config.model.dec_dilations() == [1] and variant.config.model.latent_dim == 8
    assert len(variant.model.decoder.stages[0]) == 1 < len(plain.model.decoder.stages[0])
    with pytest.raises(FlowshotError, match="no_such_key"):
        load_for_bench(BenchSettings(preset="tiny", overrides=("model.no_such_key=1",)))
