"""Run the decoder's interpolating up-samplers as one polyphase conv each (deployed models).

``InterpUpsample`` interpolates linearly to r times the frame rate and convolves there
(kernel 3, edge padding). Both steps are linear and the interpolation repeats every r
output samples, so the layer equals one conv over the *input* frames, padded by one edge
frame on each side, that makes the r output phases as r times the channels: the
polyphase form of ``layers.Upsample``, with its kernels tied by the interpolation (an
``Upsample`` with an edge-padded conv is what replaces the layer). That
form never writes the interpolated tensor (r times the input) and runs the conv on
the short input: in onnxruntime the interpolating decoder otherwise cost about a tenth
more per render than the polyphase one. Exact up to float rounding; tests compare in
float64. Training keeps ``InterpUpsample``: its weights are what the tying needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.layers import InterpUpsample, Upsample


def _phase_taps(ratio: int) -> Tensor:
    """M[p, k, q]: weight of input frame ``t - 1 + q`` in interpolated sample
    ``t * ratio + p + k - 1`` (k: the conv's tap), read off the interpolation itself."""
    frames = 5
    m = torch.zeros(ratio, 3, 3, dtype=torch.float64)
    for q in range(3):
        impulse = torch.zeros(1, 1, frames, dtype=torch.float64)
        impulse[0, 0, 1 + q] = 1.0  # frame t - 1 + q for t = 2, an interior frame
        up = F.interpolate(impulse, scale_factor=float(ratio), mode="linear", align_corners=False)[0, 0]
        for p in range(ratio):
            for k in range(3):
                m[p, k, q] = up[2 * ratio + p + k - 1]
    return m


def tied_polyphase(source: InterpUpsample) -> Upsample:
    """``source`` as a ``layers.Upsample`` (polyphase conv, edge-padded) computing the same.

    Output channel o of phase p is row ``o * ratio + p`` of the conv's weight
    [C_out * r, C_in, 3], as ``Upsample`` expects; the bias is added after the phases are
    interleaved.
    """
    conv = source.conv
    if not isinstance(conv.weight, nn.Parameter):
        raise TypeError("remove weight norm before folding an InterpUpsample")
    ratio = int(source.ratio)
    w = conv.weight.detach().to(torch.float64)  # [C_out, C_in, 3 taps k]
    c_out, c_in, _ = w.shape
    tied = torch.einsum("ock,pkq->opcq", w, _phase_taps(ratio)).reshape(c_out * ratio, c_in, 3)
    layer = Upsample(c_in, c_out, ratio)
    layer.conv = nn.Conv1d(c_in, c_out * ratio, 3, padding=1, padding_mode="replicate", bias=False,
                           dtype=conv.weight.dtype)
    layer.pad_mode = "replicate"
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(c_out, dtype=conv.weight.dtype)
    with torch.no_grad():
        layer.conv.weight.copy_(tied.to(conv.weight.dtype))
        layer.bias = nn.Parameter(bias.clone().reshape(1, -1, 1))
    return layer


@torch.no_grad()
def bake_balance(layer: Upsample) -> None:
    """Store a balanced ``Upsample``'s projected kernels as its weights, once: the same
    function without the projection at every call (and a plain conv in exported graphs)."""
    if not isinstance(layer.conv.weight, nn.Parameter):
        raise TypeError("remove weight norm before baking a balanced Upsample")
    w = layer.weight()
    layer.balanced = False
    layer.conv.weight.copy_(w)


def fold_upsamplers(model: nn.Module) -> int:
    """Replace, in place, every ``InterpUpsample`` below ``model`` by its polyphase form,
    and bake the balance of every balanced ``Upsample`` into its weights.

    Args:
        model: a module without weight norm (``remove_weight_norm``).
    Returns:
        the number of layers changed.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, InterpUpsample):
                setattr(parent, name, tied_polyphase(child))
                replaced += 1
            elif isinstance(child, Upsample) and child.balanced:
                bake_balance(child)
                replaced += 1
    return replaced
