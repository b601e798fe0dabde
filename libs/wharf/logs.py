"""Logging helpers shared by the services."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """One line per `every` seconds per kind of trouble: a dead store polled four times a
    second must not write four log lines a second."""

    def __init__(self, logger: logging.Logger, every: float = 30.0) -> None:
        self.logger, self.every = logger, every
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str) -> None:
        last, suppressed = self._last.get(key, (float("-inf"), 0))
        if time.monotonic() - last < self.every:
            self._last[key] = (last, suppressed + 1)
            return
        extra = f" ({suppressed} similar messages suppressed)" if suppressed else ""
        self.logger.warning("%s%s", message, extra)
        self._last[key] = (time.monotonic(), 0)

    def recovered(self, key: str, message: str) -> None:
        if self._last.pop(key, None) is not None:
            self.logger.warning("%s", message)
