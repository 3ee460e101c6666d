"""Run the decoder's interpolating up-samplers as one polyphase conv each (deployed models).

``InterpUpsample`` interpolates linearly to r times the frame rate and convolves there
(kernel 3, edge padding). Both steps are linear and the interpolation repeats every r
output samples, so the layer equals one conv over the *input* frames, padded by one edge
frame on each side, that makes the r output phases as r times the channels: the
polyphase form of ``layers.Upsample``, with its kernels tied by the interpolation. That
form never writes the interpolated tensor (r times the input) and runs the conv on
the short input: in onnxruntime the interpolating decoder otherwise cost about a tenth
more per render than the polyphase one. Exact up to float rounding; tests compare in
float64. Training keeps ``InterpUpsample``: its weights are what the tying needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowshot.model.layers import InterpUpsample, conv1d_time_major


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


class TiedPolyphaseUpsample(nn.Module):
    """``InterpUpsample`` as one conv over the edge-padded input. [B,C_in,T] -> [B,C_out,T*r].

    Output channel o of phase p is row ``o * ratio + p`` of ``conv.weight``
    [C_out * r, C_in, 3] (as in ``layers.Upsample``); the bias is added after the phases
    are interleaved.
    """

    def __init__(self, source: InterpUpsample) -> None:
        super().__init__()
        conv = source.conv
        if not isinstance(conv.weight, nn.Parameter):
            raise TypeError("remove weight norm before folding an InterpUpsample")
        self.ratio = int(source.ratio)
        w = conv.weight.detach().to(torch.float64)  # [C_out, C_in, 3 taps k]
        c_out, c_in, _ = w.shape
        tied = torch.einsum("ock,pkq->opcq", w, _phase_taps(self.ratio)).reshape(c_out * self.ratio, c_in, 3)
        self.out_channels = int(c_out)
        self.conv = nn.Conv1d(c_in, c_out * self.ratio, 3, bias=False, dtype=conv.weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(tied.to(conv.weight.dtype))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(c_out, dtype=conv.weight.dtype)
        self.bias = nn.Parameter(bias.clone().reshape(1, -1, 1))
        self.time_major_frames = 32  # as in layers.Upsample: below it BLAS prefers time-major

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        t = x.shape[-1]
        xp = F.pad(x, (1, 1), mode="replicate")
        if t < self.time_major_frames:
            # 'Same' conv over the padded frames, then its T valid middle rows.
            y = conv1d_time_major(xp, self.conv.weight, None)[:, 1 : t + 1]
            y = y.reshape(b, t, self.out_channels, self.ratio)
            return y.permute(0, 2, 1, 3).reshape(b, self.out_channels, t * self.ratio) + self.bias
        y = self.conv(xp).reshape(b, self.out_channels, self.ratio, t)
        return y.transpose(2, 3).reshape(b, self.out_channels, t * self.ratio) + self.bias


def fold_upsamplers(model: nn.Module) -> int:
    """Replace, in place, every ``InterpUpsample`` below ``model`` by its polyphase form.

    Args:
        model: a module without weight norm (``remove_weight_norm``).
    Returns:
        the number of layers replaced.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, InterpUpsample):
                setattr(parent, name, TiedPolyphaseUpsample(child))
                replaced += 1
    return replaced
