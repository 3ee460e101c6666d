"""Audio embeddings for distribution metrics (FAD, KID, NDB, diversity).

An :class:`Embedding` maps a batch of sounds at its own sample rate to one vector per
sound. Embeddings are looked up by name in a small registry, so another network (e.g.
CLAP, where its weights are installed locally) plugs in with ``@register_embedding``.

The default, ``aisfx``, is the pretrained sound-effects CNN that ships inside the PyPI
package ``aisfx`` 0.1.2 (MIT; Ma & Lerch, ISMIR 2022). Only its checkpoint file is used:
the network and the spectrogram front end are written here so that neither librosa nor
the package's pinned old numpy are needed.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import nn

from flowshot.errors import FlowshotError

AudioBatch = Sequence[np.ndarray] | np.ndarray | torch.Tensor


class Embedding(ABC):
    """One vector per sound.

    Attributes:
        name: registry name.
        sample_rate: the rate ``embed`` expects its input at.
        dim: size of each embedding vector.
    """

    name: str = ""
    sample_rate: int = 0
    dim: int = 0

    @abstractmethod
    def embed(self, audio: AudioBatch) -> np.ndarray:
        """Embed sounds given at ``self.sample_rate``.

        Args:
            audio: a list of 1-D arrays (any lengths) or an array/tensor [N, T].

        Returns:
            float64 array [N, dim].
        """

    def embed_at(self, audio: AudioBatch, sample_rate: int) -> np.ndarray:
        """Resample (soxr, high quality) from ``sample_rate`` to ours, then ``embed``.

        Args:
            audio: list of 1-D arrays or [N, T] at ``sample_rate``.

        Returns:
            [N, dim].
        """
        sounds = as_list(audio)
        if sample_rate != self.sample_rate:
            sounds = [soxr.resample(s.astype(np.float64), sample_rate, self.sample_rate, quality="HQ") for s in sounds]
        return self.embed(sounds)


def as_list(audio: AudioBatch) -> list[np.ndarray]:
    """[N, T] array/tensor or list of arrays -> list of float32 1-D arrays."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if isinstance(audio, np.ndarray):
        if audio.ndim == 3 and audio.shape[1] == 1:  # [N, 1, T] model output
            audio = audio[:, 0]
        if audio.ndim != 2:
            raise ValueError(f"expected audio [N, T], got shape {audio.shape}")
        return [np.asarray(a, dtype=np.float32) for a in audio]
    return [np.asarray(a, dtype=np.float32).reshape(-1) for a in audio]


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[[], Embedding]] = {}


def register_embedding(name: str) -> Callable[[Callable[[], Embedding]], Callable[[], Embedding]]:
    """Decorator: make a zero-argument factory available as ``--embedding NAME``."""

    def wrap(factory: Callable[[], Embedding]) -> Callable[[], Embedding]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_embeddings() -> list[str]:
    return sorted(_REGISTRY)


def get_embedding(name: str) -> Embedding:
    """Build the embedding registered as ``name`` (raises FlowshotError if unknown)."""
    if name not in _REGISTRY:
        raise FlowshotError(f"unknown embedding {name!r}; choose one of {', '.join(available_embeddings())}")
    return _REGISTRY[name]()


# --------------------------------------------------------------------------- aisfx

AISFX_RATE = 44100
AISFX_N_FFT = 2048
AISFX_HOP = 1024
AISFX_MELS = 96
AISFX_BLOCK = 100  # frames per network input (about 2.3 s)
AISFX_BLOCK_HOP = 50  # the package's default hop of half a block
AISFX_SPEC_MAX = 9.457798957824707  # the package's "original" min-max normalisation (min 0)
AISFX_INSTALL = "pip install --no-deps aisfx==0.1.2"


def aisfx_checkpoint_path() -> Path:
    """Where the installed aisfx package keeps its weights (without importing it: its
    ``__init__`` pulls in tqdm and an old-numpy code path we never use)."""
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FlowshotError(f"the aisfx embedding needs the aisfx package: run `{AISFX_INSTALL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise FlowshotError(f"aisfx is installed but {path} is missing: reinstall with `{AISFX_INSTALL}`")
    return path


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-mel filters, each scaled to unit sum of weights.

    This is what librosa 0.9 (aisfx's pinned version) returns for ``htk=True, norm=1.0``:
    from librosa 0.8 on a numeric norm means unit l_p norm of each filter, here l1, and it
    matches the Essentia ``MelBands(normalize="unit_sum")`` the paper's model was trained on.

    Returns:
        [n_mels, n_fft // 2 + 1] float64.
    """

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    sums = weights.sum(axis=1, keepdims=True)
    return weights / np.where(sums > 0, sums, 1.0)


class _ConvBlock(nn.Module):
    """Two 3x3 conv + batch-norm + ReLU layers, then max pooling. Input [B, C, T, F]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, pool) if pool > 1 else x


class AisfxNet(nn.Module):
    """The aisfx embedding CNN (a 9-layer DCASE-style CNN, 64..512 channels).

    Parameter names equal the checkpoint's ``embedding_net.*`` entries.
    ``forward(spec[B, T=100, F=96]) -> [B, 512]``: mean over frequency, max over time.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        self.conv_block1 = _ConvBlock(1, width)
        self.conv_block2 = _ConvBlock(width, width * 2)
        self.conv_block3 = _ConvBlock(width * 2, width * 4)
        self.conv_block4 = _ConvBlock(width * 4, width * 8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)
        x = self.conv_block1(x, 2)
        x = self.conv_block2(x, 2)
        x = self.conv_block3(x, 2)
        x = self.conv_block4(x, 1)
        return x.mean(dim=3).amax(dim=2)


@lru_cache(maxsize=1)
def _load_aisfx_net() -> AisfxNet:
    path = aisfx_checkpoint_path()
    # The one torch.load with weights_only=False in flowshot: this file belongs to the pinned
    # PyPI release aisfx==0.1.2 (not user input) and pickles numpy scalars in its dataset table,
    # which torch >= 2.6 refuses under weights_only=True.
    try:
        weights, _datasets = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which and how to fix
        raise FlowshotError(f"cannot read aisfx weights {path} ({err}): reinstall with `{AISFX_INSTALL}`") from None
    prefix = "embedding_net."
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    net = AisfxNet()
    net.load_state_dict(state)
    return net.eval()


@register_embedding("aisfx")
class AisfxEmbedding(Embedding):
    """aisfx 0.1.2's pretrained sound-effects embedding (512-d).

    Front end as in the package's librosa path: each sound peak-normalised, 44.1 kHz,
    |STFT|^2 (2048-point periodic Hann, hop 1024, centred with zero padding), 96 HTK mel
    bands 0..22050 Hz with unit-sum filters, ``log10(1 + 1e4 * S) / 9.4578``; frames are
    [T, 96].

    One-shots are shorter than a 100-frame block: the spectrogram is padded with zeros
    (silence in this log domain) to 100 frames, exactly as the package's own ``blocking``
    pads a short file, so a one-shot is one block. Longer sounds are cut into blocks with
    a hop of 50 frames (the last partial block dropped, as the package does) and the block
    embeddings are mean-pooled into one vector per sound.
    """

    name = "aisfx"
    sample_rate = AISFX_RATE
    dim = 512

    def __init__(self, batch_size: int = 32):
        self.net = _load_aisfx_net()
        self.batch_size = batch_size
        self.mel = torch.from_numpy(
            htk_mel_filterbank(AISFX_RATE, AISFX_N_FFT, AISFX_MELS, 0.0, AISFX_RATE / 2).astype(np.float32)
        )
        self.window = torch.hann_window(AISFX_N_FFT, periodic=True)

    def spectrogram(self, sound: np.ndarray) -> torch.Tensor:
        """Normalised log-mel frames of one 44.1 kHz sound: [T, 96] float32."""
        x = torch.as_tensor(sound, dtype=torch.float32).reshape(-1)
        peak = float(x.abs().max()) if x.numel() else 0.0
        if peak > 0:
            x = x / peak
        if x.numel() < AISFX_N_FFT // 2 + 1:  # centred STFT needs at least half a window
            x = F.pad(x, (0, AISFX_N_FFT // 2 + 1 - x.numel()))
        spec = torch.stft(
            x, AISFX_N_FFT, AISFX_HOP, window=self.window, center=True, pad_mode="constant", return_complex=True
        )
        power = spec.real.square() + spec.imag.square()  # [F, T]
        mel = self.mel @ power
        return (torch.log10(1.0 + 1e4 * mel) / AISFX_SPEC_MAX).T.contiguous()

    @staticmethod
    def blocks(frames: torch.Tensor) -> torch.Tensor:
        """[T, 96] -> [n_blocks, 100, 96] (zero padded when T < 100)."""
        t = frames.shape[0]
        if t <= AISFX_BLOCK:
            return F.pad(frames, (0, 0, 0, AISFX_BLOCK - t)).unsqueeze(0)
        n = 1 + (t - AISFX_BLOCK) // AISFX_BLOCK_HOP
        return torch.stack([frames[i * AISFX_BLOCK_HOP : i * AISFX_BLOCK_HOP + AISFX_BLOCK] for i in range(n)])

    def embed(self, audio: AudioBatch) -> np.ndarray:
        sounds = as_list(audio)
        blocks, owner = [], []
        for i, s in enumerate(sounds):
            b = self.blocks(self.spectrogram(s))
            blocks.append(b)
            owner += [i] * b.shape[0]
        if not blocks:
            return np.zeros((0, self.dim))
        allb = torch.cat(blocks)
        outs = []
        with torch.inference_mode():
            for start in range(0, allb.shape[0], self.batch_size):
                outs.append(self.net(allb[start : start + self.batch_size]))
        per_block = torch.cat(outs).double()
        index = torch.tensor(owner)
        sums = torch.zeros(len(sounds), self.dim, dtype=torch.float64).index_add_(0, index, per_block)
        counts = torch.bincount(index, minlength=len(sounds)).double().unsqueeze(1)
        return (sums / counts).numpy()


@register_embedding("logmel")
class LogMelStatsEmbedding(Embedding):
    """A cheap, untrained embedding: mean and std over time of 64 log-mel bands at 22.05 kHz.

    For quick checks and machines without aisfx; its distances are not comparable with
    aisfx's, so reports name the embedding used.
    """

    name = "logmel"
    sample_rate = 22050
    dim = 128

    def __init__(self) -> None:
        self.n_fft, self.hop = 1024, 256
        self.mel = torch.from_numpy(htk_mel_filterbank(self.sample_rate, self.n_fft, 64, 20.0, 11025.0).astype(np.float32))
        self.window = torch.hann_window(self.n_fft)

    def embed(self, audio: AudioBatch) -> np.ndarray:
        out = []
        for s in as_list(audio):
            x = torch.as_tensor(s, dtype=torch.float32)
            if x.numel() < self.n_fft:
                x = F.pad(x, (0, self.n_fft - x.numel()))
            spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, return_complex=True).abs() ** 2
            logmel = torch.log(self.mel @ spec + 1e-6)
            out.append(torch.cat([logmel.mean(1), logmel.std(1, unbiased=False)]).double().numpy())
        return np.stack(out) if out else np.zeros((0, self.dim))

