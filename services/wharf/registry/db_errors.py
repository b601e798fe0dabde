"""Which database failures a client should retry, and how they are logged.

- Unreachable, restarting, failing over, refusing connections (PostgreSQL SQLSTATE classes
  08 and 57P, 53300 too many connections), a connection lost mid-request, a name that does
  not resolve, a connect timeout, and SQLite's "database is locked" past the busy timeout:
  503 `UNAVAILABLE` with `Retry-After: 5`.
- Every pooled connection busy for the pool timeout: 429 `TOOMANYREQUESTS`, `Retry-After: 1`.
- Anything else from the database (a constraint the code did not expect, say) is a bug:
  500, as any unexpected error.

Logs carry the exception's class and the driver's own message (PostgreSQL's and SQLite's
never hold the connection password), never SQLAlchemy's rendering with SQL and parameters.
Busy-pool warnings are limited to one per `QUIET_S`, since they come in floods.
"""

from __future__ import annotations

import logging
import socket
import time

from sqlalchemy import exc as sql_errors

UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53300")
QUIET_S = 10.0


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used right now (worth a retry)."""
    if isinstance(exc, sql_errors.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sql_errors.OperationalError | sql_errors.InterfaceError):
            return True
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
    return isinstance(exc, ConnectionError | socket.gaierror | TimeoutError)


def describe(exc: BaseException) -> str:
    """`Class: driver message`, short, without SQL or bound parameters."""
    original = exc.orig if isinstance(exc, sql_errors.DBAPIError) else exc
    message = " ".join(str(original).split())[:300]
    return f"{type(original).__name__}: {message}" if message else type(original).__name__


class QuietLog:
    """At most one warning per `every` seconds; how many were held back is said next time."""

    def __init__(self, logger: logging.Logger, every: float = QUIET_S) -> None:
        self.logger, self.every = logger, every
        self._last = float("-inf")
        self._held = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._held += 1
            return
        if self._held:
            message += f" ({self._held} more since the last report)"
        self.logger.warning(message, *args)
        self._last, self._held = now, 0
