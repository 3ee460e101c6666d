"""Rate-limited logging for control input: a flood of bad messages must not flood stderr."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("flowshot.realtime")


class LogOnce:
    """Logs each distinct key once, then at most once per ``interval`` seconds with a count.

    Args:
        interval: seconds between repeats of the same key.
    """

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.count = 0

    def __call__(self, key: str, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        logger.warning("%s%s", message, f" (and {n} more like it)" if n else "")
