"""ONNX export: onnxruntime reproduces PyTorch for the encoder, decoder and prior graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowshot.cli import main as cli_main
from flowshot.export.onnx import make_session
from flowshot.model.checkpoint import load_model
from test_export_ts import checkpoint_for_tests

# max |onnxruntime - PyTorch| relative to the PyTorch output's peak.
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def onnx_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    ckpt = checkpoint_for_tests(request, tmp_path_factory)
    out = tmp_path_factory.mktemp("onnx")
    assert cli_main(["export", "onnx", str(ckpt), "-o", str(out)]) == 0
    return load_model(ckpt), out


def rel_err(got: np.ndarray, ref: torch.Tensor) -> float:
    ref = ref.numpy()
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-9))


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_pytorch(onnx_dir, batch: int) -> None:
    loaded, out = onnx_dir
    model, cfg = loaded.model, loaded.config
    d, length = cfg.model.latent_dim, cfg.audio.length
    g = torch.Generator().manual_seed(batch)
    z = torch.randn(batch, d, generator=g)
    x = 0.5 * torch.randn(batch, 1, length, generator=g) * torch.exp(-torch.arange(length) / 300.0)
    with torch.no_grad():
        dec = model.render(z)  # the decoder graph is what players use: decode under the data peak
        prior = model.base_to_latent(z)
        post = model.encode(x)
        emb = model.posterior_mode(post)
    got = make_session(out / "decoder.onnx").run(None, {"z": z.numpy()})[0]
    assert got.shape == (batch, 1, length) and rel_err(got, dec) < REL_TOL
    got = make_session(out / "prior.onnx").run(None, {"u": z.numpy()})[0]
    assert rel_err(got, prior) < REL_TOL
    # The prior flow is not the identity (else the check above would prove nothing).
    assert float((prior - z).abs().max()) > 1e-3
    zz, mean, logvar = make_session(out / "encoder.onnx").run(None, {"audio": x.numpy()})
    assert rel_err(zz, emb) < REL_TOL and rel_err(mean, post.mean) < REL_TOL and rel_err(logvar, post.logvar) < REL_TOL


def test_json_describes_the_model(onnx_dir) -> None:
    loaded, out = onnx_dir
    meta = json.loads((out / "flowshot.json").read_text())
    cfg = loaded.config
    assert (meta["sample_rate"], meta["length"], meta["latent_dim"]) == (cfg.audio.sample_rate, cfg.audio.length, cfg.model.latent_dim)
    k, d = meta["n_macros"], meta["latent_dim"]
    assert np.array(meta["macro_directions"]).shape == (k, d) and len(meta["macro_std"]) == k == len(meta["macro_labels"])
    assert np.array(meta["pad_latents"]).shape == (meta["n_pads"], d) == np.array(meta["pad_base"]).shape
    assert len(meta["base_mean"]) == d and len(meta["pad_classes"]) == meta["n_pads"]
    table = np.array(meta["base_quantiles"])  # what the host's random draws go through
    assert table.shape[1] == d and table.shape[0] >= 2 and np.all(np.diff(table, axis=0) >= 0)
    mixing = np.array(meta["base_mixing"])  # the draws' correlations: a Cholesky factor
    assert mixing.shape == (d, d) and np.array_equal(mixing, np.tril(mixing))
    assert np.allclose(np.diag(mixing @ mixing.T), 1.0, atol=1e-5)
    # Kernel draws (the default): the training sounds' base points, rounded to six
    # significant digits, with their spread and the bandwidth, as the checkpoint stores them.
    from flowshot.model.latents import stored_kernel

    points, spread, bandwidth = stored_kernel(loaded.meta)
    assert np.allclose(np.array(meta["base_points"]), points.numpy(), rtol=1e-5, atol=1e-6)
    assert np.allclose(meta["base_spread"], spread.numpy()) and meta["kernel_bandwidth"] == bandwidth
    from flowshot.realtime.backends import LatentStats

    host = LatentStats.from_mapping(meta, d)
    assert host.base_points.shape == tuple(points.shape) and host.kernel_bandwidth == bandwidth
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "flowshot.json", "prior.onnx"]


def test_session_threads_and_bad_file(onnx_dir, tmp_path: Path) -> None:
    from flowshot.errors import FlowshotError

    _, out = onnx_dir
    sess = make_session(out / "decoder.onnx", threads=1)
    assert sess.get_providers()[-1] == "CPUExecutionProvider"
    bad = tmp_path / "decoder.onnx"
    bad.write_bytes(b"not an onnx graph")
    with pytest.raises(FlowshotError, match="decoder.onnx"):
        make_session(bad)


def test_conv1d_rewritten_as_conv2d_computes_the_same(tmp_path: Path) -> None:
    """The 1-D -> 2-D rewrite keeps every conv's stride, dilation, padding, groups and bias."""
    import onnx

    from flowshot.export.onnx_layout import conv1d_as_conv2d

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(4, 8, 5, stride=2, padding=3, dilation=2),
        torch.nn.Conv1d(8, 8, 3, padding=1, groups=4, bias=False),
        torch.nn.Conv1d(8, 3, 1),
    ).eval()
    x = torch.randn(2, 4, 101)
    path = tmp_path / "convs.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    assert conv1d_as_conv2d(proto) == 3
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert all(len(next(a.ints for a in n.attribute if a.name == "kernel_shape")) == 2 for n in convs)
    # The 3-D weights are gone: the file does not carry every conv's weights twice.
    assert all(len(i.dims) != 3 for i in proto.graph.initializer)
    onnx.checker.check_model(proto)
    rewritten = tmp_path / "convs2d.onnx"
    onnx.save(proto, str(rewritten))
    with torch.no_grad():
        ref = net(x)
    got = make_session(rewritten).run(None, {"x": x.numpy()})[0]
    assert got.shape == tuple(ref.shape) and rel_err(got, ref) < REL_TOL


class _ResidualChain(torch.nn.Module):
    """Convs with the decoder's kinds of glue between them: constants per channel, a
    3-D tensor from elsewhere, a residual add, a channel slice, a reshape, a graph input
    read in 3-D and 4-D."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = torch.nn.Conv1d(6, 8, 3, padding=1)
        self.dilated = torch.nn.Conv1d(8, 8, 3, padding=3, dilation=3)
        self.pointwise = torch.nn.Conv1d(8, 8, 1)
        self.cond = torch.nn.Linear(4, 8)
        self.alpha = torch.nn.Parameter(torch.rand(1, 8, 1) + 0.5)
        self.scale = torch.nn.Parameter(torch.rand(8, 1) + 0.5)  # rank 2: broadcasts over (C, T)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x) + self.cond(c).unsqueeze(-1)
        for _ in range(2):
            u = h * self.alpha
            s = torch.sin(u)
            v = self.dilated(torch.addcmul(u, s, s))
            h = h + self.pointwise(v - torch.cos(v)) * self.scale
        wave, amp = h[:, :4], h[:, 4:]
        y = wave * torch.sigmoid(amp) + x[:, :4]
        return y.reshape(y.shape[0], -1)


def test_stay_4d_removes_squeezes_and_computes_the_same(tmp_path: Path) -> None:
    import onnx

    from flowshot.export.onnx_layout import conv1d_as_conv2d, stay_4d

    torch.manual_seed(0)
    net = _ResidualChain().eval()
    x, c = torch.randn(2, 6, 50), torch.randn(2, 4)
    path = tmp_path / "chain.onnx"
    torch.onnx.export(net, (x, c), str(path), input_names=["x", "c"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {0: "b"}, "c": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    proto = onnx.load(str(path))
    assert conv1d_as_conv2d(proto) == 5

    def reshapes(p: onnx.ModelProto) -> int:
        return sum(n.op_type in ("Squeeze", "Unsqueeze") for n in p.graph.node)

    before = reshapes(proto)
    removed = stay_4d(proto)
    assert removed == before - reshapes(proto)
    # 5 convs gave 10 squeeze/unsqueeze nodes; the chain between them now stays 4-D,
    # leaving the one Unsqueeze of the input, of the conditioning and the final Squeeze(s).
    # 5 convs came with 5 Unsqueeze/Squeeze pairs. Left: the Unsqueeze of the input x
    # (whose 4-D form the channel slice reuses), one to bring the conditioning to 4-D,
    # and the single Squeeze before the reshape.
    assert removed >= 7
    assert sum(n.op_type == "Squeeze" for n in proto.graph.node) == 1
    onnx.checker.check_model(proto)
    rewritten = tmp_path / "chain4d.onnx"
    onnx.save(proto, str(rewritten))
    with torch.no_grad():
        ref = net(x, c)
    for batch in (1, 2):
        got = make_session(rewritten).run(None, {"x": x[:batch].numpy(), "c": c[:batch].numpy()})[0]
        assert got.shape == tuple(ref[:batch].shape) and rel_err(got, ref[:batch]) < REL_TOL
