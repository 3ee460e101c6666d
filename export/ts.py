"""Write the nn~ instrument: script, save to a temporary file, self-test, then rename."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from flowshot.export.nn_tilde import FlowshotInstrument
from flowshot.export.selftest import check_ts
from flowshot.export.snake_fold import fold_snakes
from flowshot.export.upsample_fold import fold_upsamplers
from flowshot.model.checkpoint import LoadedModel
from flowshot.model.layers import remove_weight_norm

# Members of the .ts archive that hold the ONNX twins of ``decode_latent`` and
# ``base_to_latent`` (see flowshot.realtime.twin); nn~ never reads them.
TWIN_MEMBERS = {"decoder": "flowshot/decoder.onnx", "prior": "flowshot/prior.onnx"}


def inference_model(loaded: LoadedModel, fold: bool = True) -> torch.nn.Module:
    """A frozen copy of the checkpoint's FlowVAE with weight norm folded in (scriptable, exportable).

    Args:
        loaded: checkpoint contents (``load_model``).
        fold: also run interpolating up-samplers as polyphase convs (``export.upsample_fold``)
            and fold the snakes' alphas into the convolutions (``export.snake_fold``): the
            same function, less work; False only to time the difference.
    """
    model = remove_weight_norm(copy.deepcopy(loaded.model)).eval()
    if fold:
        fold_upsamplers(model)
        fold_snakes(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def build_instrument(loaded: LoadedModel, stats: dict[str, Any], polyphony: int = 8) -> FlowshotInstrument:
    """The eager instrument (what gets scripted); also what tests compare the .ts against."""
    cfg = loaded.config
    with torch.no_grad():
        return FlowshotInstrument(inference_model(loaded), stats, cfg.audio.sample_rate, cfg.audio.length, polyphony,
                                  audio_config=json.dumps(dataclasses.asdict(cfg.audio))).eval()


def twin_graphs(model: torch.nn.Module, length: int, dim: int) -> dict[str, bytes]:
    """The decoder and prior of ``model`` (``inference_model``) as checked ONNX graphs
    (``export.onnx.write_graphs``), serialized.

    The real-time host plays these through onnxruntime in place of the TorchScript methods:
    about half the render time and a shorter tail on one CPU thread (docs/benchmarks.md).
    """
    from flowshot.export.onnx import write_graphs

    with tempfile.TemporaryDirectory(prefix="flowshot-twin-") as tmp:
        paths = write_graphs(model, length, dim, tmp, names=tuple(TWIN_MEMBERS))
        return {name: Path(path).read_bytes() for name, path in paths.items()}


def export_ts(loaded: LoadedModel, out_path: str | Path, stats: dict[str, Any], polyphony: int = 8,
              onnx_twin: bool = True) -> dict[str, Any]:
    """Script the instrument into ``out_path`` atomically; the file only appears once it passed.

    Args:
        loaded: checkpoint contents (``load_model``).
        out_path: target ``.ts``.
        stats: latent statistics (``latent_stats_for``).
        polyphony: initial voice count (1..32; the ``polyphony`` attribute changes it live).
        onnx_twin: also store the decoder and prior as ONNX graphs inside the archive
            (``twin_graphs``, members ``TWIN_MEMBERS``) for the real-time host.
    Returns:
        the self-test report of the written file (see ``check_ts``).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    instrument = build_instrument(loaded, stats, polyphony)
    with torch.no_grad():
        scripted = torch.jit.script(instrument)
    # The archive's root folder is named after the file, so the temporary file gets the final
    # name inside a private temporary folder on the same file system (atomic rename).
    tmp_dir = tempfile.mkdtemp(prefix=f".{out_path.stem}.", dir=out_path.parent)
    tmp = os.path.join(tmp_dir, out_path.name)
    try:
        extra = {}
        if onnx_twin:
            graphs = twin_graphs(instrument.model, loaded.config.audio.length, loaded.config.model.latent_dim)
            extra = {TWIN_MEMBERS[name]: graph for name, graph in graphs.items()}
        scripted.save(tmp, _extra_files=extra)
        report = check_ts(tmp)
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return report
