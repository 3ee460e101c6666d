"""A non-neural reference generator: coloured noise bursts.

Every metric row for a trained model is read between two references measured in the
same run: real training sounds against real test sounds (the floor a perfect model
reaches) and this baseline (the ceiling a model must clearly beat). It knows each class's
average spectrum, loudness and decay, but nothing of pitch, transients or structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassProfile:
    """What the noise baseline keeps of one class.

    Args:
        magnitude: mean |rfft| of the class's sounds, [T // 2 + 1].
        decays: per-sound exponential decay time constants in seconds.
        peaks: per-sound peak amplitudes.
        weight: share of the training set in this class.
    """

    magnitude: np.ndarray
    decays: np.ndarray
    peaks: np.ndarray
    weight: float


def decay_time(x: np.ndarray, sample_rate: int, frame: int = 64) -> float:
    """Exponential decay constant (s) fitted to the log RMS envelope after its peak.

    A least-squares line through ``log(rms)`` from the loudest frame to where the envelope
    falls 60 dB below it; the slope -1/tau gives tau.

    Args:
        x: one sound [T].
    """
    n = len(x) // frame
    if n < 2:
        return len(x) / sample_rate
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(1)) + 1e-12
    start = int(rms.argmax())
    log_env = np.log(rms[start:])
    keep = log_env > log_env[0] - np.log(1e3)
    stop = int(np.argmin(keep)) if not keep.all() else len(log_env)
    if stop < 2:
        return frame / sample_rate
    t = np.arange(stop) * frame / sample_rate
    slope = np.polyfit(t, log_env[:stop], 1)[0]
    return float(np.clip(-1.0 / slope if slope < 0 else len(x) / sample_rate, 1e-3, 10.0))


def fit_profiles(audio: np.ndarray, classes: list[str], sample_rate: int) -> dict[str, ClassProfile]:
    """Per-class spectra, decays and peaks of a training set.

    Args:
        audio: [N, T] training sounds.
        classes: N class names.
    """
    audio = np.asarray(audio, dtype=np.float64)
    out: dict[str, ClassProfile] = {}
    labels = np.asarray(classes)
    for name in sorted(set(classes)):
        members = audio[labels == name]
        out[name] = ClassProfile(
            magnitude=np.abs(np.fft.rfft(members, axis=1)).mean(0),
            decays=np.array([decay_time(x, sample_rate) for x in members]),
            peaks=np.abs(members).max(1),
            weight=len(members) / len(audio),
        )
    return out


def noise_bursts(
    profiles: dict[str, ClassProfile], n: int, length: int, sample_rate: int, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Draw ``n`` noise bursts: class by training share, then white noise coloured by the
    class-mean magnitude spectrum (random phase), an exponential envelope with a decay and
    a peak taken from a random member of the class, and a 1 ms attack against clicks.

    Returns:
        (audio float32 [n, length], class names).
    """
    rng = np.random.default_rng(seed)
    names = sorted(profiles)
    weights = np.array([profiles[k].weight for k in names])
    picks = rng.choice(len(names), size=n, p=weights / weights.sum())
    t = np.arange(length) / sample_rate
    attack = np.clip(t / 1e-3, 0, 1)
    out = np.zeros((n, length), dtype=np.float32)
    for i, k in enumerate(picks):
        prof = profiles[names[k]]
        bins = length // 2 + 1
        mag = np.interp(np.linspace(0, 1, bins), np.linspace(0, 1, len(prof.magnitude)), prof.magnitude)
        phase = rng.uniform(0, 2 * np.pi, bins)
        noise = np.fft.irfft(mag * np.exp(1j * phase), n=length)
        j = rng.integers(len(prof.decays))
        burst = noise * np.exp(-t / prof.decays[j]) * attack
        peak = np.abs(burst).max()
        out[i] = (burst / peak * prof.peaks[j]) if peak > 0 else burst
    return out, [names[k] for k in picks]
