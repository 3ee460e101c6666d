"""The aisfx embedding: real pretrained weights, our own front end (about 5 s)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowshot.errors import FlowshotError
from flowshot.evaluation.embeddings import (
    AisfxEmbedding,
    available_embeddings,
    get_embedding,
    htk_mel_filterbank,
)

SR = 8000
T = np.arange(2048) / SR


def kick() -> np.ndarray:
    # pitch falls from ~150 Hz to 50 Hz, 80 ms decay
    phase = 2 * np.pi * (50 * T + 100 * (1 - np.exp(-T * 30)) / 30)
    return (np.sin(phase) * np.exp(-T * 12)).astype(np.float32)


def hat(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(T) + 1)
    return (np.diff(noise) * np.exp(-T * 60)).astype(np.float32)  # differenced noise: bright


@pytest.fixture(scope="module")
def aisfx() -> AisfxEmbedding:
    torch.set_num_threads(1)
    return get_embedding("aisfx")


def test_mel_filters_have_unit_sum_and_cover_the_band() -> None:
    fb = htk_mel_filterbank(44100, 2048, 96, 0.0, 22050.0)
    assert fb.shape == (96, 1025)
    np.testing.assert_allclose(fb.sum(1), 1.0, rtol=1e-12)
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 900  # ordered, reaching the top octave


def test_aisfx_embedding_is_512d_finite_deterministic_and_discriminative(aisfx: AisfxEmbedding) -> None:
    batch = np.stack([kick(), hat(0), kick(), hat(1)])
    e1 = aisfx.embed_at(batch, SR)
    e2 = aisfx.embed_at(list(batch), SR)
    assert e1.shape == (4, 512) and np.isfinite(e1).all()
    np.testing.assert_array_equal(e1, e2)
    assert np.abs(e1).max() > 0.1  # not a dead network
    kick_vs_hat = np.linalg.norm(e1[0] - e1[1])
    hat_vs_hat = np.linalg.norm(e1[1] - e1[3])  # two different noise draws of one hat
    assert np.linalg.norm(e1[0] - e1[2]) == 0.0
    assert kick_vs_hat > 3 * hat_vs_hat, (kick_vs_hat, hat_vs_hat)
    # peak normalisation in the front end: a quieter copy embeds identically
    np.testing.assert_allclose(aisfx.embed_at([0.25 * kick()], SR)[0], e1[0], rtol=1e-4, atol=1e-4)


def test_long_sounds_are_blocked_and_mean_pooled(aisfx: AisfxEmbedding) -> None:
    frames = aisfx.spectrogram(np.zeros(44100 * 5, dtype=np.float32))
    assert frames.shape == (1 + 44100 * 5 // 1024, 96)
    assert aisfx.blocks(frames).shape == (1 + (frames.shape[0] - 100) // 50, 100, 96)
    assert aisfx.blocks(frames[:12]).shape == (1, 100, 96)
    long = aisfx.embed_at([np.tile(kick(), 40)], SR)
    assert long.shape == (1, 512) and np.isfinite(long).all()


def test_registry_knows_aisfx_and_rejects_unknown_names() -> None:
    from flowshot.evaluation.commands import EMBEDDINGS

    assert set(EMBEDDINGS) == set(available_embeddings())  # the torch-free list in --help is complete
    with pytest.raises(FlowshotError, match="unknown embedding 'clap'"):
        get_embedding("clap")
    e = get_embedding("logmel").embed_at([kick(), hat()], SR)
    assert e.shape == (2, 128) and np.isfinite(e).all()


def test_missing_aisfx_gives_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # sys.modules[name] = None makes Python treat the package as not importable.
    code = (
        "import sys; sys.modules['aisfx'] = None\n"
        "from flowshot.evaluation.embeddings import get_embedding\n"
        "get_embedding('aisfx')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("flowshot.errors.FlowshotError") and "pip install --no-deps aisfx==0.1.2" in last
    # in-process too (the CLI prints a FlowshotError as one line, without a traceback)
    from flowshot.evaluation.embeddings import aisfx_checkpoint_path

    monkeypatch.setitem(sys.modules, "aisfx", None)
    with pytest.raises(FlowshotError, match="pip install --no-deps aisfx==0.1.2"):
        aisfx_checkpoint_path()
