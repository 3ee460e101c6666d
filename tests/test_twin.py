"""The host's ONNX twin (flowshot.realtime.twin): renders on onnxruntime, the rest on torch."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flowshot.errors import FlowshotError
from flowshot.export.onnx import TOLERANCE
from flowshot.export.ts import TWIN_MEMBERS
from flowshot.realtime import twin
from flowshot.realtime.backends import TorchBackend, load_backend


@pytest.fixture(scope="module")
def exports(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny checkpoint exported as a .ts with its twin and as one without."""
    from flowshot.cli import main

    out = tmp_path_factory.mktemp("twin")
    paths = {"with": out / "with_twin.ts", "without": out / "without_twin.ts"}
    assert main(["export", "ts", str(tiny_checkpoint), "-o", str(paths["with"])]) == 0
    assert main(["export", "ts", str(tiny_checkpoint), "-o", str(paths["without"]), "--no-onnx-twin"]) == 0
    return paths


def _relative_error(want: np.ndarray, got: np.ndarray) -> float:
    return float(np.max(np.abs(want - got))) / (float(np.max(np.abs(want))) + 1e-12)


def test_ts_twin_plays_what_torchscript_plays(exports: dict[str, Path]) -> None:
    fast, ref = load_backend(exports["with"]), load_backend(exports["with"], "torch")
    assert isinstance(fast, twin.TwinBackend) and isinstance(ref, TorchBackend)
    assert fast.note == "" and "onnxruntime" in fast.describe() and "stored in the .ts" in fast.describe()
    rng = np.random.default_rng(3)
    u = rng.standard_normal((5, ref.latent_dim)) * 0.7
    z_ref = ref.base_to_latent(u)
    assert _relative_error(z_ref, fast.base_to_latent(u)) <= TOLERANCE
    a_ref = ref.render(z_ref)
    a = fast.render(z_ref)
    assert a.shape == a_ref.shape == (5, ref.length) and a.dtype == np.float32
    assert _relative_error(a_ref, a) <= TOLERANCE
    assert np.std(a_ref, axis=0).max() > 1e-3  # five different sounds, not five silences
    # What ONNX lacks stays on torch: the inverse prior flow and the encoder.
    assert fast.has_inverse
    np.testing.assert_allclose(fast.latent_to_base(z_ref), u, atol=1e-3)
    np.testing.assert_array_equal(fast.encode(a_ref[0]), ref.encode(a_ref[0]))
    np.testing.assert_array_equal(fast.stats.pad_base, ref.stats.pad_base)
    assert fast.audio_settings == ref.audio_settings and fast.audio_settings


def test_the_twin_graphs_are_members_of_the_archive_nn_tilde_ignores(exports: dict[str, Path]) -> None:
    with zipfile.ZipFile(exports["with"]) as archive:
        names = archive.namelist()
    for member in TWIN_MEMBERS.values():
        assert any(n.endswith("/extra/" + member) for n in names), member
    with zipfile.ZipFile(exports["without"]) as archive:
        assert not any("/extra/flowshot/" in n for n in archive.namelist())
    # The nn~ side of both files is the same: check_ts loads each in a bare interpreter.
    from flowshot.export.selftest import check_ts

    assert check_ts(exports["with"])["methods"] == check_ts(exports["without"])["methods"]


def test_export_check_says_whether_the_twin_is_there_and_agrees(exports: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from flowshot.cli import main

    assert main(["export", "check", str(exports["with"])]) == 0
    assert "ONNX twin: present, agrees with TorchScript" in capsys.readouterr().out
    assert main(["export", "check", str(exports["without"])]) == 0
    assert "ONNX twin: the .ts carries no ONNX twin" in capsys.readouterr().out


def test_a_ts_without_twin_plays_on_torch_and_says_how_to_get_one(exports: dict[str, Path]) -> None:
    b = load_backend(exports["without"])
    assert isinstance(b, TorchBackend)
    assert "re-export it with `flowshot export ts`" in b.note
    with pytest.raises(FlowshotError, match="--backend onnx cannot play .*without_twin.ts.*no ONNX twin"):
        load_backend(exports["without"], "onnx")


def test_a_checkpoint_twin_is_traced_once_then_read_from_the_cache(tiny_checkpoint: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSHOT_CACHE", str(tmp_path / "cache"))
    folder = twin.twin_cache_dir(tiny_checkpoint)
    assert folder.parent == tmp_path / "cache" / "onnx-twins" and not folder.exists()
    first = load_backend(tiny_checkpoint)
    assert isinstance(first, twin.TwinBackend) and "traced from the checkpoint" in first.describe()
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "prior.onnx"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind

    def no_tracing(*_: object) -> None:
        raise AssertionError("traced again although the cache holds the twin")

    monkeypatch.setattr(twin, "_build", no_tracing)
    second = load_backend(tiny_checkpoint)
    ref = load_backend(tiny_checkpoint, "torch")
    z = ref.base_to_latent(np.random.default_rng(0).standard_normal((3, ref.latent_dim)))
    assert _relative_error(ref.render(z), second.render(z)) <= TOLERANCE


def test_a_cache_entry_of_another_model_is_refused_and_traced_again(tiny_checkpoint: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Damaged or foreign cached graphs never play: the load compares them with torch."""
    monkeypatch.setenv("FLOWSHOT_CACHE", str(tmp_path / "cache"))
    folder = twin.twin_cache_dir(tiny_checkpoint)
    folder.mkdir(parents=True)
    import torch

    from flowshot.export.onnx import write_graphs
    from flowshot.export.ts import inference_model
    from flowshot.model.checkpoint import load_model

    loaded = load_model(tiny_checkpoint)
    with torch.no_grad():  # another model: the same architecture, other weights
        for p in loaded.model.decoder.parameters():
            p.mul_(0.5)
    cfg = loaded.config
    write_graphs(inference_model(loaded), cfg.audio.length, cfg.model.latent_dim, folder, names=twin.GRAPHS)
    b = load_backend(tiny_checkpoint)
    assert isinstance(b, twin.TwinBackend)  # traced again, and now right
    ref = load_backend(tiny_checkpoint, "torch")
    z = ref.base_to_latent(np.random.default_rng(1).standard_normal((2, ref.latent_dim)))
    assert _relative_error(ref.render(z), b.render(z)) <= TOLERANCE
    # A graph file that is not ONNX at all: the same.
    (folder / "decoder.onnx").write_bytes(b"not a graph")
    assert isinstance(load_backend(tiny_checkpoint), twin.TwinBackend)


def test_a_twin_that_disagrees_with_its_torch_model_is_left_out(exports: dict[str, Path], tmp_path: Path) -> None:
    """A .ts whose stored graphs are another model's plays on torch, and says why."""
    ref = load_backend(exports["with"], "torch")
    other = {name: graph for name, graph in ref.twin_graphs.items()}
    other["decoder"], other["prior"] = other["prior"], other["decoder"]  # wrong graph for each method
    ref.twin_graphs = other
    b = twin.with_twin(ref)
    assert b is ref and b.note.startswith("renders on torch: its ONNX prior gives")
    assert b.note.endswith("re-export it with `flowshot export ts`")
    with pytest.raises(FlowshotError, match="--backend onnx cannot play"):
        twin.with_twin(ref, required=True)
    ref.twin_graphs = {**other, "decoder": b"not a graph"}  # damaged in the archive
    assert twin.with_twin(ref).note.startswith("renders on torch: onnxruntime does not load its ONNX decoder")


def test_the_host_worker_reports_the_twin(exports: dict[str, Path]) -> None:
    from flowshot.realtime.worker import ProcessBackend

    for path, want in ((exports["with"], "onnxruntime+torch"), (exports["without"], "torch")):
        worker = ProcessBackend(path)
        try:
            assert worker.describe().startswith(want + " ")
            assert (worker.note == "") == (path == exports["with"])
        finally:
            worker.close()
    assert os.environ["FLOWSHOT_CACHE"]  # the suite's caches stay out of ~/.cache (conftest)


def test_a_checkpoint_whose_twin_cannot_be_cached_plays_on_torch(tiny_checkpoint: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("FLOWSHOT_CACHE", str(blocker))
    b = load_backend(tiny_checkpoint)
    assert isinstance(b, TorchBackend)
    assert b.note.startswith("renders on torch: tracing its ONNX twin into") and "not-a-folder" in b.note
    z = b.base_to_latent(np.zeros((1, b.latent_dim)))
    assert np.isfinite(b.render(z)).all()
