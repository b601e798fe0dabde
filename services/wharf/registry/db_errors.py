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
"""

from __future__ import annotations

import socket

from sqlalchemy import exc as sql_errors

UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53300")


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
