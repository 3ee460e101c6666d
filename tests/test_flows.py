"""Real NVP: exact inverse, exact log-determinant (against autograd's Jacobian), identity at init.

All checks in float64 with random, non-zero conditioner weights: the zero-initialised
last layers are perturbed, otherwise every flow would be the identity and the tests
could not fail.
"""

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.autograd.functional import jacobian

from flowshot.model.flows import RealNVP


def perturbed(flow: RealNVP, seed: int, scale: float = 0.5) -> RealNVP:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (flow.w3, flow.b3):
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


CASES = [
    # dim, depth, hidden, context_dim: a posterior-like flow, a prior-like flow, odd dim
    (6, 4, 16, 5),
    (8, 6, 16, 0),
    (5, 3, 12, 0),
]


@pytest.mark.parametrize("dim,depth,hidden,context_dim", CASES)
def test_inverse_and_logdet_are_exact(dim: int, depth: int, hidden: int, context_dim: int) -> None:
    torch.manual_seed(dim)
    flow = perturbed(RealNVP(dim, depth, hidden, context_dim).double(), seed=depth)
    x = 1.5 * torch.randn(4, dim, dtype=torch.float64)
    ctx = torch.randn(4, context_dim, dtype=torch.float64) if context_dim else None

    y, logdet = flow(x, ctx)
    assert (y - x).abs().max() > 0.1  # the flow really does something
    assert logdet.abs().max() > 0.1
    x_back, logdet_inv = flow.inverse(y, ctx)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=0)

    for b in range(x.shape[0]):
        c = ctx[b:b + 1] if ctx is not None else None
        jac = jacobian(lambda v: flow(v[None], c)[0][0], x[b])  # [dim, dim]
        ref = torch.linalg.slogdet(jac).logabsdet
        assert abs(ref.item() - logdet[b].item()) < 1e-10
        jac_inv = jacobian(lambda v: flow.inverse(v[None], c)[0][0], y[b])
        assert abs(torch.linalg.slogdet(jac_inv).logabsdet.item() - logdet_inv[b].item()) < 1e-10


def test_untrained_flow_is_the_identity_and_depth_zero_too() -> None:
    x = torch.randn(7, 10)
    ctx = torch.randn(7, 3)
    for flow, c in ((RealNVP(10, 4, 32, 3), ctx), (RealNVP(10, 0, 32), None)):
        y, logdet = flow(x, c)
        assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(7))
        x_back, logdet_inv = flow.inverse(x, c)
        assert torch.equal(x_back, x) and torch.equal(logdet_inv, torch.zeros(7))


def test_log_scale_is_bounded_and_every_dimension_is_transformed() -> None:
    flow = perturbed(RealNVP(8, 2, 16, scale_bound=2.0), seed=1, scale=1e3)
    x = 10.0 * torch.randn(64, 8)
    y, logdet = flow(x)
    # Each layer changes dim - dim//2 = 4 coordinates by at most exp(2).
    assert logdet.abs().max() <= 2 * 4 * 2.0 + 1e-4
    # With alternating halves, two layers touch every coordinate.
    assert bool(((y - x).abs() > 1e-6).all(dim=0).all())


def test_conditional_flow_depends_on_context_and_demands_it() -> None:
    flow = perturbed(RealNVP(4, 2, 8, context_dim=3), seed=2)
    x = torch.randn(5, 4)
    y1, _ = flow(x, torch.zeros(5, 3))
    y2, _ = flow(x, torch.ones(5, 3))
    assert (y1 - y2).abs().max() > 1e-3
    with pytest.raises(ValueError, match="context"):
        flow(x)


def test_torchscript_and_onnx_match_eager() -> None:
    torch.manual_seed(0)
    post = perturbed(RealNVP(6, 4, 16, context_dim=5), seed=3)
    prior = perturbed(RealNVP(6, 6, 16), seed=4)
    x = torch.randn(3, 6)
    ctx = torch.randn(3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_post = torch.jit.script(post)
        s_prior = torch.jit.script(prior)
    for eager, scripted, c in ((post, s_post, ctx), (prior, s_prior, None)):
        for a, b in zip(scripted(x, c), eager(x, c)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        for a, b in zip(scripted.inverse(x, c), eager.inverse(x, c)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)

    class PriorForward(torch.nn.Module):  # what prior.onnx holds: u -> z
        def __init__(self) -> None:
            super().__init__()
            self.flow = prior

        def forward(self, u: torch.Tensor) -> torch.Tensor:
            return self.flow(u)[0]

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(PriorForward(), (x[:1],), buf, input_names=["u"], output_names=["z"],
                          dynamic_axes={"u": {0: "batch"}, "z": {0: "batch"}}, dynamo=False)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"u": x.numpy()})[0]
    assert np.abs(out - prior(x)[0].detach().numpy()).max() < 1e-5
