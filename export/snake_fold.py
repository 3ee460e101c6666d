"""Fold the snakes' alphas into the convolutions around them (deployed models only).

A snake ``x + sin(a x)^2 / a`` costs five elementwise passes (scale, sine, square,
rescale, add). On one CPU thread a render of `base` spends about a third of its time in
the snakes' elementwise ops (docs/benchmarks.md), so every pass saved is worth having.
Two exact rewrites, both with the alphas moved into neighbouring weights:

* ``a * snake(x) = u + sin(u)^2`` with ``u = a x``. The next convolution takes
  ``1 / a`` into its input channels: four passes instead of five, and the padding of a
  'same' convolution still sees zeros where the original saw zeros.
* ``2 a * snake(x) = v - cos(v) + 1`` with ``v = 2 a x``. When a convolution both makes
  ``x`` and can be scaled (the residual unit's dilated conv), and the next one is a 1x1
  convolution (no padding, so the ``+ 1`` is a constant its bias absorbs), this leaves
  two passes: cosine and subtract.

The model's function is unchanged up to float rounding; tests compare it in float64.
Training never sees these modules: ``fold_snakes`` works on the frozen inference copy
(``export.ts.inference_model``), which every export, benchmark and live host uses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowshot.model.layers import DilatedConv1d, InterpUpsample, ResidualUnit, SincUpsample, Snake, Upsample


class PrescaledSnake(nn.Module):
    """``alpha * snake(x)``: ``u + sin(u)^2`` with ``u = alpha x``. [B,C,T] -> [B,C,T].

    The following convolution must carry ``1 / alpha`` on its input channels.
    """

    def __init__(self, alpha: Tensor) -> None:
        super().__init__()
        self.register_buffer("alpha", alpha.detach().clone().reshape(1, -1, 1))

    def forward(self, x: Tensor) -> Tensor:
        u = x * self.alpha
        s = torch.sin(u)
        return torch.addcmul(u, s, s)


class CosSnake(nn.Module):
    """``2 alpha * snake(x) - 1`` from ``v = 2 alpha x``: ``v - cos(v)``. [B,C,T] -> [B,C,T].

    The convolution before it must output ``2 alpha x``; the 1x1 convolution after it
    must carry ``1 / (2 alpha)`` on its input channels and the ``+ 1`` in its bias.
    """

    def forward(self, v: Tensor) -> Tensor:
        return v - torch.cos(v)


# Layers whose ``.conv`` is the convolution a preceding snake feeds (linear per input channel;
# the interpolations before it treat every channel alike, so a channel's scale passes through).
CONV_HOLDERS = (DilatedConv1d, Upsample, InterpUpsample, SincUpsample)


def _alpha(snake: Snake) -> Tensor:
    return snake.log_alpha.detach().exp().reshape(-1)


def _conv(module: nn.Module) -> nn.Conv1d:
    """The plain Conv1d holding ``module``'s weight (weight norm must be removed first)."""
    conv = module.conv if isinstance(module, CONV_HOLDERS) else module
    if not isinstance(conv, nn.Conv1d) or not isinstance(conv.weight, nn.Parameter):
        raise TypeError(f"cannot fold a snake into {type(module).__name__} (remove weight norm first)")
    return conv


@torch.no_grad()
def _scale_inputs(module: nn.Module, scale: Tensor) -> None:
    _conv(module).weight.mul_(scale.reshape(1, -1, 1))


@torch.no_grad()
def _fold_residual_unit(unit: ResidualUnit) -> None:
    snake1, dilated, snake2, pointwise = unit.block
    a1, a2 = _alpha(snake1), _alpha(snake2)
    unit.block[0] = PrescaledSnake(a1)
    _scale_inputs(dilated, 1.0 / a1)
    conv = _conv(dilated)
    conv.weight.mul_((2 * a2).reshape(-1, 1, 1))
    conv.bias.mul_(2 * a2)
    unit.block[2] = CosSnake()
    pw = _conv(pointwise)
    if pw.kernel_size != (1,) or pw.padding != (0,) or pw.bias is None:
        raise TypeError("the residual unit's second conv must be a 1x1 conv with a bias")
    pw.weight.mul_((0.5 / a2).reshape(1, -1, 1))
    pw.bias.add_(pw.weight[:, :, 0].sum(dim=1))


def fold_snakes(model: nn.Module) -> int:
    """Rewrite, in place, every snake of ``model`` that feeds a convolution.

    Args:
        model: a module without weight norm (``remove_weight_norm``), e.g. a FlowVAE.
    Returns:
        the number of snakes folded; a snake whose output goes anywhere but one
        convolution (the encoder's last, read by its attention pooling) is left alone.
    """
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, ResidualUnit):
            _fold_residual_unit(module)
            folded += 2
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                nxt = module[i + 1]
                if isinstance(module[i], Snake) and isinstance(nxt, (nn.Conv1d, *CONV_HOLDERS)):
                    alpha = _alpha(module[i])
                    module[i] = PrescaledSnake(alpha)
                    _scale_inputs(nxt, 1.0 / alpha)
                    folded += 1
    # The decoder's last snake feeds its output conv as two attributes, not a Sequential.
    for module in list(model.modules()):
        final, out = getattr(module, "final_act", None), getattr(module, "out", None)
        if isinstance(final, Snake) and isinstance(out, nn.Conv1d):
            alpha = _alpha(final)
            module.final_act = PrescaledSnake(alpha)
            _scale_inputs(out, 1.0 / alpha)
            folded += 1
    return folded
