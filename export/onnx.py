"""ONNX graphs of the trained model (encoder, decoder, prior flow) plus a JSON description.

Uses torch's TorchScript-based ONNX exporter (``dynamo=False``): the torch.export-based
default of torch >= 2.9 needs the ``onnxscript`` package, which flowshot does not require.
The graphs are traced from a weight-norm-folded copy with a dynamic batch axis, their
1-D convolutions rewritten as 2-D ones (``onnx_layout``: onnxruntime's faster kernels),
then checked against PyTorch with onnxruntime before they are moved into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from flowshot.errors import FlowshotError
from flowshot.export.onnx_layout import conv1d_as_conv2d, stay_4d
from flowshot.model.checkpoint import LoadedModel
from flowshot.model.latents import KERNEL_BANDWIDTH

OPSET = 17
# onnxruntime vs PyTorch, max |difference| relative to the output's peak.
TOLERANCE = 1e-4
# The same for a decoder with a harmonic voice (``model.voice_harmonics``): its phase is the
# running sum of its pitch, so the last bit by which the two runtimes' pitches differ
# (1e-7) grows over a second of a 500 Hz voice's 32nd harmonic to 5e-4 of the peak on
# `base` (-66 dB, inaudible). Still far under what a wrong graph makes.
VOICE_TOLERANCE = 3e-3


class EncoderGraph(nn.Module):
    """audio ``[B, 1, L]`` -> (z ``[B, D]`` posterior mode, mean ``[B, D]``, logvar ``[B, D]``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        post = self.model.encode(audio)
        return self.model.posterior_mode(post), post.mean, post.logvar


class DecoderGraph(nn.Module):
    """latent ``z [B, D]`` -> audio ``[B, 1, L]`` as played (``FlowVAE.render``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tensor:
        return self.model.render(z)


class PriorGraph(nn.Module):
    """prior base point ``u [B, D]`` -> latent ``z [B, D]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, u: Tensor) -> Tensor:
        return self.model.base_to_latent(u)


def make_session(path: str | Path | bytes, threads: int = 1) -> Any:
    """An onnxruntime session on CUDA when onnxruntime-gpu sees a GPU, else on the CPU.

    Args:
        path: an ``.onnx`` file, or a serialized graph.
        threads: intra-op threads (1 = the real-time friendly default).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(path if isinstance(path, bytes) else str(path), sess_options=opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        what = "the serialized graph" if isinstance(path, bytes) else path
        raise FlowshotError(f"{what} is not a loadable ONNX graph ({first}); re-export it with `flowshot export onnx`") from None


def _graphs(model: nn.Module, length: int, dim: int) -> dict[str, tuple[nn.Module, Tensor, list[str], list[str]]]:
    return {
        "encoder": (EncoderGraph(model), torch.randn(2, 1, length) * 0.3, ["audio"], ["z", "mean", "logvar"]),
        "decoder": (DecoderGraph(model), torch.randn(2, dim), ["z"], ["audio"]),
        "prior": (PriorGraph(model), torch.randn(2, dim), ["u"], ["z"]),
    }


def _to_list(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        return [_to_list(v) for v in value]
    return value


def _rounded(value: Tensor) -> list:
    return [[float(f"{v:.6g}") for v in row] for row in value.detach().cpu().reshape(value.shape[0], -1).tolist()]


def write_graphs(model: nn.Module, length: int, dim: int, out_dir: str | Path,
                 names: tuple[str, ...] = ("encoder", "decoder", "prior"), layout: str = "4d") -> dict[str, Path]:
    """Trace ``names`` of the encoder, decoder and prior graphs into ``out_dir/NAME.onnx``,
    rewrite their layout and check each against PyTorch with onnxruntime.

    Args:
        model: an inference copy of the FlowVAE (``export.ts.inference_model``).
        length, dim: the one-shot's length and the latent size.
        out_dir: an existing directory.
        names: which graphs.
        layout: as for ``export_onnx``.
    Returns:
        {name: path}.
    Raises:
        FlowshotError: onnxruntime disagrees with PyTorch beyond ``TOLERANCE``
            (``VOICE_TOLERANCE`` for a decoder with a voice).
    """
    if layout not in ("1d", "2d", "4d"):
        raise ValueError(f"layout must be 1d, 2d or 4d, got {layout!r}")
    paths: dict[str, Path] = {}
    graphs = _graphs(model, length, dim)
    for name in names:
        graph, example, inputs, outputs = graphs[name]
        target = Path(out_dir) / f"{name}.onnx"
        axes = {n: {0: "batch"} for n in inputs + outputs}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(graph.eval(), (example,), str(target), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        if layout != "1d":
            proto = onnx.load(str(target))
            conv1d_as_conv2d(proto)
            if layout == "4d":
                stay_4d(proto)
            onnx.save(proto, str(target))
        voiced = name == "decoder" and model.voice.count > 0
        _verify(graph, target, example, VOICE_TOLERANCE if voiced else TOLERANCE)
        paths[name] = target
    return paths


def export_onnx(loaded: LoadedModel, out_dir: str | Path, stats: dict[str, Any] | None = None,
                layout: str = "4d", fold: bool = True) -> dict[str, Path]:
    """Write encoder.onnx, decoder.onnx, prior.onnx and flowshot.json into ``out_dir``.

    Args:
        loaded: checkpoint contents (``load_model``).
        out_dir: target directory (created; existing files of the same names are replaced).
        stats: latent statistics for flowshot.json (default: ``latent_stats_for(loaded)``).
        layout: "4d" (default): 1-D convolutions rewritten as 2-D ones (``onnx_layout``,
            onnxruntime's faster kernels) with the tensors between them kept 4-D
            (``stay_4d``); "2d": the rewrite alone; "1d": the graph as torch exports it.
            Anything but "4d" only to time the difference (benchmarks/export_ab.py).
        fold: fold the snakes' alphas into the convolutions (``export.snake_fold``; False
            only to time the difference).
    Returns:
        {"encoder": path, "decoder": path, "prior": path, "json": path}.
    """
    from flowshot.export.stats import latent_stats_for
    from flowshot.export.ts import inference_model

    if stats is None:
        stats = latent_stats_for(loaded, None, progress=False)
    cfg = loaded.config
    length, dim = cfg.audio.length, cfg.model.latent_dim
    model = inference_model(loaded, fold=fold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".onnx-") as tmp:
        paths = write_graphs(model, length, dim, tmp, layout=layout)
        meta = {
            "format": 1,
            "sample_rate": cfg.audio.sample_rate,
            "length": length,
            "latent_dim": dim,
            "n_macros": int(torch.as_tensor(stats["macro_directions"]).shape[0]),
            "n_pads": int(torch.as_tensor(stats["pad_latents"]).reshape(-1, dim).shape[0]),
            "files": {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "prior": "prior.onnx"},
            "graphs": {"encoder": {"inputs": ["audio [B,1,L]"], "outputs": ["z [B,D]", "mean [B,D]", "logvar [B,D]"]},
                       "decoder": {"inputs": ["z [B,D]"], "outputs": ["audio [B,1,L]"]},
                       "prior": {"inputs": ["u [B,D]"], "outputs": ["z [B,D]"]}},
            "config": cfg.to_dict(),
        }
        for key in ("macro_directions", "macro_std", "base_mean", "macro_labels", "pad_latents", "pad_classes", "pad_base"):
            meta[key] = _to_list(stats[key])
        # Random draws go through these (see flowshot.model.latents.marginal_base); [] when unknown.
        meta["base_quantiles"] = _to_list(stats.get("base_quantiles", []))
        meta["base_mixing"] = _to_list(stats.get("base_mixing", []))
        # Kernel draws start from these (flowshot.model.latents.kernel_point); [] = none.
        # Six significant digits keep up to 2,048 x D points a few MB of JSON.
        points = stats.get("base_points")
        meta["base_points"] = [] if points is None else _rounded(torch.as_tensor(points))
        meta["base_spread"] = _to_list(stats.get("base_spread", []))
        meta["kernel_bandwidth"] = float(stats.get("kernel_bandwidth", KERNEL_BANDWIDTH))
        (Path(tmp) / "flowshot.json").write_text(json.dumps(meta, indent=1))
        final: dict[str, Path] = {}
        for name in ("encoder", "decoder", "prior"):
            final[name] = out_dir / f"{name}.onnx"
            shutil.move(str(paths[name]), final[name])
        final["json"] = out_dir / "flowshot.json"
        shutil.move(str(Path(tmp) / "flowshot.json"), final["json"])
    return final


def _verify(graph: nn.Module, path: Path, example: Tensor, tolerance: float = TOLERANCE) -> None:
    """onnxruntime must agree with PyTorch at batch 1 and 3 (the batch axis is dynamic), to
    ``tolerance`` of the output's peak."""
    session = make_session(path)
    for batch in (1, 3):
        x = torch.cat([example, example], dim=0)[:1].repeat(batch, *[1] * (example.dim() - 1))
        x = x + 0.1 * torch.randn_like(x)
        with torch.no_grad():
            ref = graph(x)
        refs = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for r, g in zip(refs, got):
            err = float(np.max(np.abs(r.numpy() - g)))
            peak = float(np.max(np.abs(r.numpy()))) + 1e-12
            if err > tolerance * peak:
                raise FlowshotError(f"{path.name}: onnxruntime differs from PyTorch by {err:.2e} (peak {peak:.2e}); "
                                    "report this model's config as an export bug")
