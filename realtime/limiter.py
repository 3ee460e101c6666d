"""The master limiter: each output held under a ceiling, with no look-ahead.

A model plays its one-shots at its data's level (peak -1 dBFS), so two full-velocity hits
that meet sum over full scale, and the sound card or the JACK client downstream clips
them. The limiter sits after the mix, once per output channel (the main mix and the split
pads' output are limited apart), and is the last thing a block passes through.

No look-ahead: a look-ahead limiter delays every onset by its window, and the host
promises a hit within one buffer of its event. Instead the attack is instant: on the
sample that would cross the ceiling the gain drops to the one that puts it on the
ceiling, so no sample ever passes it. The gain then recovers exponentially (the release),
so a burst of loud hits is turned down smoothly, not clipped sample by sample. Once
recovered (within ``SNAP`` of 1), samples under the ceiling pass bit for bit.

The arithmetic is in double precision in a fixed order, and the C mixer
(``realtime/_cmix.c``, ``limit``) does exactly the same, so the two agree sample for sample
(``tests/test_cmix.py``). ``Limiter.apply`` is the spec.
"""

from __future__ import annotations

import math

import numpy as np

# A gain within this of 1 is 1 (-0.00009 dB): the recovery would otherwise crawl towards 1
# for seconds (1 - g shrinks by the release factor each sample until it underflows
# double precision), and the Python mixer's fast path waits for exactly 1.
SNAP = 1e-5
CEILING_DB = -0.3  # the host's default: a little under full scale, for the peaks a DAC makes between samples
RELEASE_MS = 50.0


def release_factor(release_ms: float, sample_rate: float) -> float:
    """Per-sample factor of the gain reduction's decay: it falls to 1/e in ``release_ms``."""
    return math.exp(-1000.0 / (release_ms * sample_rate))


def ceiling_gain(ceiling_db: float | None) -> float:
    """The ceiling as a linear amplitude; 0 (off) for None."""
    return 0.0 if ceiling_db is None else 10.0 ** (ceiling_db / 20.0)


class Limiter:
    """Instant-attack, exponential-release peak limiter over up to two channels (off until
    ``configure``).

    Readers: ``frames_limited`` (samples played under unity gain, both channels counted),
    ``min_gain`` (the deepest gain since the start, 1 = never limited).
    """

    def __init__(self) -> None:
        self.ceiling = 0.0  # linear; 0 = off
        self.release = 0.0
        self.gain = [1.0, 1.0]
        self.frames_limited = 0
        self.min_gain = 1.0

    def configure(self, ceiling_db: float | None, release_ms: float, sample_rate: float) -> None:
        """Ceiling in dBFS (None: off) and release time; the gain state is kept."""
        self.ceiling = ceiling_gain(ceiling_db)
        self.release = release_factor(release_ms, sample_rate)

    def apply(self, buf: np.ndarray, channel: int) -> None:
        """Limit ``buf`` (float32 [frames]) in place with ``channel``'s (0 or 1) gain state."""
        c = self.ceiling
        g = self.gain[channel]
        if c <= 0.0 or len(buf) == 0 or (g == 1.0 and max(float(buf.max()), -float(buf.min())) <= c):
            return  # off, or nothing to do: the loop below would leave every sample as it is
        r = self.release
        limited = 0
        low = self.min_gain
        for i in range(len(buf)):
            x = float(buf[i])
            g = 1.0 - (1.0 - g) * r
            if g > 1.0 - SNAP:
                g = 1.0
            a = abs(x)
            if a * g > c:
                g = c / a
            if g < 1.0:
                limited += 1
                if g < low:
                    low = g
            buf[i] = g * x  # rounds to float32 as the C mixer's cast does
        self.gain[channel] = g
        self.frames_limited += limited
        self.min_gain = low
