"""Reading and writing audio files: soundfile underneath, one-line errors on top.

Every reader in flowshot goes through :func:`read_audio`, so a corrupt or unsupported
file always surfaces as :class:`AudioReadError` with the path and a short reason,
never as a libsndfile traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from flowshot.errors import FlowshotError

# Container formats (upper-case soundfile names) and the extensions that carry them.
_FORMAT_EXTENSIONS = {
    "WAV": ("wav",),
    "FLAC": ("flac",),
    "OGG": ("ogg", "oga"),
    "AIFF": ("aif", "aiff", "aifc"),
    "W64": ("w64",),
    "CAF": ("caf",),
    "MP3": ("mp3",),  # only with libsndfile >= 1.1
}


def _supported_extensions() -> frozenset[str]:
    available = set(sf.available_formats())
    return frozenset(ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in available for ext in exts)


AUDIO_EXTENSIONS: frozenset[str] = _supported_extensions()
"""Lower-case file extensions (without the dot) that :func:`read_audio` can open here."""


class AudioReadError(FlowshotError):
    """An audio file could not be read; the message names the file and why."""


def is_audio_file(path: str | os.PathLike[str]) -> bool:
    """True if the extension is one flowshot reads (case-insensitive)."""
    return Path(path).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a whole file.

    Args:
        path: any file soundfile / libsndfile can decode.

    Returns:
        ``(audio, sample_rate)`` with ``audio`` float32 ``[channels, frames]`` in [-1, 1]
        for integer formats (float files are returned as stored, NaN included).

    Raises:
        AudioReadError: missing, unreadable, corrupt or unsupported file.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioReadError(f"{p}: no such file; check the path")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        # libsndfile reasons are long and multi-line; keep the first line only.
        text = getattr(err, "error_string", None) or str(err).strip() or type(err).__name__
        reason = text.splitlines()[0].rstrip(".")
        raise AudioReadError(
            f"{p}: cannot read audio, corrupt or unsupported (libsndfile: {reason}); convert it to WAV or FLAC or remove it"
        ) from None
    except OSError as err:
        raise AudioReadError(f"{p}: cannot open ({err.strerror or err}); check permissions") from None
    return np.ascontiguousarray(data.T), int(sr)


def write_wav(
    path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write ``audio`` (``[T]`` or ``[C, T]``, float in [-1, 1]) to a WAV file atomically.

    The file is written to a temporary name in the same folder and renamed, so a reader
    never sees half a file and an interrupted write leaves the old file intact.

    Args:
        path: destination (folders are created).
        audio: float array ``[T]`` (mono) or ``[C, T]``; a torch tensor works too.
        sample_rate: in Hz.
        subtype: soundfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.

    Returns:
        The destination path.
    """
    dest = Path(path)
    arr = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
    if arr.ndim == 1:
        frames = arr[:, None]
    elif arr.ndim == 2:
        frames = arr.T
    else:
        raise FlowshotError(f"{dest}: audio must be [T] or [C, T], got shape {tuple(arr.shape)}")
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if subtype.startswith("PCM"):
        # soundfile wraps out-of-range floats around on integer subtypes; clip instead.
        frames = np.clip(frames, -1.0, 1.0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            sf.write(fh, frames, int(sample_rate), subtype=subtype, format="WAV")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest
