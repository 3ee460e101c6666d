"""The few building blocks of encoder and decoder: snake, weight-normed convs, residual unit."""

import copy
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm


class Snake(nn.Module):
    """Snake activation ``x + sin(alpha x)^2 / alpha`` with a learnable alpha per channel.

    alpha is stored as its logarithm, so it stays positive whatever the optimiser does
    and ``1/alpha`` can never divide by zero or flip sign.

    Args:
        channels: C of the [B, C, T] input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """[B,C,T] -> [B,C,T]."""
        s = torch.sin(x * self.log_alpha.exp())
        # Four passes over x; at the sub-band rate these elementwise passes cost as
        # much as a small convolution, so no more than needed.
        return torch.addcmul(x, s * s, torch.exp(-self.log_alpha))


def wn_conv1d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              dilation: int = 1, padding: int = 0, bias: bool = True) -> nn.Module:
    """A weight-normed ``nn.Conv1d``."""
    return weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                 dilation=dilation, padding=padding, bias=bias))


def wn_conv_transpose1d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                        padding: int = 0, output_padding: int = 0) -> nn.Module:
    """A weight-normed ``nn.ConvTranspose1d``."""
    return weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride,
                                          padding=padding, output_padding=output_padding))


@torch.jit.unused
def _onnx_exporting() -> bool:
    return torch.onnx.is_in_onnx_export()


class DilatedConv1d(nn.Module):
    """'Same'-padded dilated conv, computed as one 1x1 conv over the K shifted copies.

    CPU PyTorch sends dilated 1-D convs with few channels to a slow reference kernel
    (several times slower than the same FLOPs in a plain conv); stacking the K taps
    as channels turns the dilated conv into a single matrix product. ONNX exports get
    a plain dilated ``Conv``, which onnxruntime runs faster than the stacked taps. The parameters
    are those of an ordinary weight-normed ``Conv1d`` [C_out, C_in, K].

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: K (odd).
        dilation: spacing of the taps.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.pad = self.dilation * (self.kernel_size - 1) // 2
        self.conv = wn_conv1d(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """[B,C_in,T] -> [B,C_out,T]."""
        w = self.conv.weight
        if self.dilation == 1:
            return F.conv1d(x, w, self.conv.bias, padding=self.pad)
        if not torch.jit.is_scripting() and _onnx_exporting():
            # onnxruntime's own dilated Conv is 20-35 % faster than the stacked taps.
            return F.conv1d(x, w, self.conv.bias, padding=self.pad, dilation=self.dilation)
        t = x.shape[-1]
        xp = F.pad(x, (self.pad, self.pad))
        taps = [xp[:, :, k * self.dilation: k * self.dilation + t] for k in range(self.kernel_size)]
        stacked = torch.cat(taps, dim=1)  # [B, K*C_in, T], tap-major
        w2 = w.permute(0, 2, 1).reshape(w.shape[0], -1, 1)  # [C_out, K*C_in, 1], tap-major
        return F.conv1d(stacked, w2, self.conv.bias)


class ResidualUnit(nn.Module):
    """snake -> dilated conv -> snake -> 1x1 conv, added to the input.

    Args:
        channels: C of the [B, C, T] input (kept).
        dilation: dilation of the first conv.
        kernel_size: kernel of the first conv (odd; 'same' padding keeps T).
    """

    def __init__(self, channels: int, dilation: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake(channels),
            DilatedConv1d(channels, channels, kernel_size, dilation),
            Snake(channels),
            wn_conv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """[B,C,T] -> [B,C,T]."""
        return x + self.block(x)


def conv1d_time_major(x: Tensor, weight: Tensor, bias: Optional[Tensor], dilation: int = 1,
                      pad_mode: str = "constant") -> Tensor:
    """``F.conv1d(x, weight, bias, padding='same', dilation=dilation)`` as one matrix product
    over time-major taps: [B, C_in, T] -> [B, T, C_out] (note: time-major result).
    ``pad_mode`` as in ``F.pad`` ("replicate" for an edge-padded conv).

    For few frames and many channels (a decoder's first stage: 11 frames, 256 -> 512
    channels) CPU convolution kernels, and even ``W @ x``, run several times slower than
    ``x^T @ W^T``, the layout BLAS handles best when the output has few rows.
    """
    t = x.shape[-1]
    k = weight.shape[-1]
    pad = dilation * (k - 1) // 2
    xt = F.pad(x, (pad, pad), mode=pad_mode).transpose(1, 2)  # [B, T + 2 pad, C_in]
    taps = torch.stack([xt[:, i * dilation: i * dilation + t] for i in range(k)], dim=-1)  # [B, T, C_in, K]
    return F.linear(taps.reshape(x.shape[0], t, -1), weight.reshape(weight.shape[0], -1), bias)


class Upsample(nn.Module):
    """Learned up-sampling by an integer ratio: a transposed convolution in polyphase form.

    A conv with kernel 3 makes ``ratio`` output phases per input frame, which are then
    interleaved; this spans the same maps as a transposed conv of kernel 3*ratio but
    runs on CPU PyTorch's fast convolution path (transposed 1-D convs do not). Below
    32 input frames it runs time-major instead (``conv1d_time_major``),
    where interleaving the phases is a plain reshape.

    With ``balanced`` the r phases' kernels are projected, at every call, onto those whose
    taps sum to the same matrix: each phase then passes a constant (0 Hz) with the same
    gain, and nothing steady in the input can come out as the period-r pattern, the tone
    at the input frame rate and its harmonics that the free form writes into every sound
    (docs/evaluation.md). Slow but not steady input still images, as in any learned
    up-sampler; that is what lets the stage make content above the input's Nyquist.

    Args:
        in_channels, out_channels: C_in, C_out.
        ratio: r; [B,C_in,T] -> [B,C_out,T*r].
        balanced: equal 0 Hz gain in every phase (see above).
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int, balanced: bool = False) -> None:
        super().__init__()
        self.ratio = int(ratio)
        self.out_channels = int(out_channels)
        self.balanced = bool(balanced)
        # One bias per output channel, added after interleaving: a bias per phase would
        # write a constant period-``ratio`` pattern into every sound, heard as steady
        # tones at multiples of the input frame rate even where the sound is silent.
        self.conv = wn_conv1d(in_channels, out_channels * ratio, 3, padding=1, bias=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1))
        self.time_major_frames = 32  # the crossover measured on CPU (see conv1d_time_major)
        # The conv's padding: zeros here; "replicate" in the polyphase form of an
        # ``InterpUpsample`` (export/upsample_fold.py), whose conv is edge-padded to match.
        self.pad_mode = "constant"

    def weight(self) -> Tensor:
        """The conv's kernels [C_out * r, C_in, 3], balanced when asked (see the class)."""
        w = self.conv.weight
        if not self.balanced:
            return w
        phases = w.reshape(self.out_channels, self.ratio, w.shape[1], w.shape[2])
        gain = phases.sum(dim=-1, keepdim=True)  # each phase's 0 Hz gain [C_out, r, C_in, 1]
        # The smallest change that equalises the gains: spread each phase's excess over
        # its taps evenly.
        excess = gain - gain.mean(dim=1, keepdim=True)
        return (phases - excess / w.shape[2]).reshape(w.shape)

    def forward(self, x: Tensor) -> Tensor:
        """[B,C_in,T] -> [B,C_out,T*ratio]."""
        b = x.shape[0]
        t = x.shape[-1]
        w = self.weight()
        if t < self.time_major_frames:
            # Output channel o of phase p is row o * ratio + p of the weight, so the
            # time-major result [B, T, C_out * ratio] reshapes to [B, C_out, T * ratio]
            # after one small transpose.
            y = conv1d_time_major(x, w, None, pad_mode=self.pad_mode)
            y = y.reshape(b, t, self.out_channels, self.ratio)
            return y.permute(0, 2, 1, 3).reshape(b, self.out_channels, t * self.ratio) + self.bias
        if self.pad_mode == "constant":
            y = F.conv1d(x, w, None, padding=1)
        else:
            y = F.conv1d(F.pad(x, (1, 1), mode=self.pad_mode), w)
        y = y.reshape(b, self.out_channels, self.ratio, t)
        return y.transpose(2, 3).reshape(b, self.out_channels, t * self.ratio) + self.bias


class InterpUpsample(nn.Module):
    """Up-sampling by an integer ratio without phase-dependent weights: linear
    interpolation to the new rate, then a 'same' conv of kernel 3 there.

    ``Upsample``'s polyphase conv gives each of the ``ratio`` output phases its own
    kernel, so anything slow in its input comes out modulated by a period-``ratio``
    pattern: a steady tone at the input frame rate and its harmonics (the checkerboard
    of transposed convolutions). In trained `small` models that tone sat at 86 Hz (the
    second stage's frame rate) 20 dB above the data, and kicks were rendered at 86 Hz
    instead of their own 40-80 Hz (docs/evaluation.md). Here every output sample is
    made by the same weights, and linear interpolation damps the images of the input's
    spectrum. The conv runs at the output rate: the same FLOPs as the polyphase form.

    Args:
        in_channels, out_channels: C_in, C_out.
        ratio: r; [B,C_in,T] -> [B,C_out,T*r].
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int) -> None:
        super().__init__()
        self.ratio = int(ratio)
        # Edge padding, as the interpolation does at the ends: then the whole layer is one
        # polyphase conv over the input padded by one edge frame, exactly (what
        # ``export.upsample_fold`` runs it as, at a quarter of the memory traffic).
        self.conv = weight_norm(nn.Conv1d(in_channels, out_channels, 3, padding=1, padding_mode="replicate"))

    def forward(self, x: Tensor) -> Tensor:
        """[B,C_in,T] -> [B,C_out,T*ratio]."""
        up = F.interpolate(x, scale_factor=float(self.ratio), mode="linear", align_corners=False)
        return self.conv(up)


class SincUpsample(nn.Module):
    """Up-sampling by an integer ratio through a band-limited interpolator: each frame
    becomes a Kaiser-windowed sinc, then the same 'same' conv of kernel 3 as
    ``InterpUpsample``.

    Linear interpolation is a poor low-pass: it leaves images of its input only 8 to 40
    dB down around the input frame rate, and its output's variance swings with the output
    phase (a weighted mean of two frames is quieter midway), which the snakes after it
    turn into a steady pattern at the input frame rate. A windowed sinc interpolates a
    band-limited input almost exactly (a sine at a fifth of the frame rate: -60 dB error
    against -17 for linear). In trained models the lines at the frame rate's multiples
    were the band-edge ring, not this pattern (docs/evaluation.md); what the sinc changed
    there is measured in that section. Output sample j sits where linear interpolation's
    does (align_corners False: input time (j + 0.5) / r - 0.5), so the two are timed alike.

    Args:
        in_channels, out_channels: C_in, C_out.
        ratio: r; [B,C_in,T] -> [B,C_out,T*r].
        zeros: sinc lobes on each side of a frame (the kernel spans 2 * zeros input frames).
        beta: the Kaiser window's shape (8: side lobes about 80 dB down).
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int, zeros: int = 4, beta: float = 8.0) -> None:
        super().__init__()
        self.ratio = int(ratio)
        self.zeros = int(zeros)
        r, z = self.ratio, self.zeros
        # Tap m weighs the frame at input time (m + 0.5 - r/2) / r - z from the output sample.
        t = (np.arange(2 * z * r + r) + 0.5 - r / 2) / r - z
        inside = np.abs(t) < z
        window = np.where(inside, np.i0(beta * np.sqrt(np.clip(1 - (t / z) ** 2, 0, 1))) / np.i0(beta), 0.0)
        kernel = torch.from_numpy(np.sinc(t) * window).float().reshape(1, 1, -1).repeat(in_channels, 1, 1)
        # Derived from the ratio, so not in the state dict: checkpoints hold the conv only.
        self.register_buffer("kernel", kernel, persistent=False)
        self.conv = weight_norm(nn.Conv1d(in_channels, out_channels, 3, padding=1, padding_mode="replicate"))

    def interpolate(self, x: Tensor) -> Tensor:
        """[B,C,T] -> [B,C,T*ratio]: the band-limited interpolation alone (edge frames
        repeated beyond the ends, as linear interpolation does)."""
        r, z = self.ratio, self.zeros
        padded = F.pad(x, (z, z), mode="replicate")
        up = F.conv_transpose1d(padded, self.kernel, stride=r, groups=x.shape[1])
        return up[..., 2 * z * r: 2 * z * r + x.shape[-1] * r]

    def forward(self, x: Tensor) -> Tensor:
        """[B,C_in,T] -> [B,C_out,T*ratio]."""
        return self.conv(self.interpolate(x))


def has_weight_norm(module: nn.Module) -> bool:
    """True when any sub-module still carries a parametrisation."""
    return any(parametrize.is_parametrized(m) for m in module.modules())


def _plain_conv(m: nn.Module) -> nn.Module:
    """A plain Conv1d / ConvTranspose1d holding the current (normed) weight of ``m``."""
    w = m.weight.detach()
    common = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                  bias=m.bias is not None, padding_mode=m.padding_mode, device=w.device, dtype=w.dtype)
    if isinstance(m, nn.ConvTranspose1d):
        plain = nn.ConvTranspose1d(m.in_channels, m.out_channels, m.kernel_size,
                                   output_padding=m.output_padding, **common)
    elif isinstance(m, nn.Conv1d):
        plain = nn.Conv1d(m.in_channels, m.out_channels, m.kernel_size, **common)
    else:
        raise TypeError(f"cannot fold the parametrisation of {type(m).__name__}")
    with torch.no_grad():
        plain.weight.copy_(w)
        if m.bias is not None:
            plain.bias.copy_(m.bias.detach())
    return plain


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Replace every weight-normed conv below ``module`` by a plain conv (same function).

    The result runs faster (no norm per call) and can be scripted or exported; it is
    for inference, not for further training. Returns ``module`` (changed in place), or
    a new conv when ``module`` itself is a weight-normed conv.

    The convs are replaced rather than un-parametrised because torch's
    ``remove_parametrizations`` edits the parametrised *class*, which a deep copy
    shares with its original: un-parametrising a copy would break the original.
    """
    if parametrize.is_parametrized(module):
        return _plain_conv(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if parametrize.is_parametrized(child):
                setattr(parent, name, _plain_conv(child))
    return module


def scriptable_copy(module: nn.Module) -> nn.Module:
    """``module`` itself when it has no weight norm, else a deep copy without it.

    Used as ``__prepare_scriptable__`` (``torch.jit.script`` calls it first): scripting
    a model then works and leaves the eager, trainable model untouched.
    """
    if not has_weight_norm(module):
        return module
    return remove_weight_norm(copy.deepcopy(module))
