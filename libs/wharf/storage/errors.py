"""The one error hierarchy of the storage library.

Every driver maps its backend's failures to these classes exactly once, in the driver, so
callers handle storage failures without knowing which backend produced them.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: carries the driver and location that failed, and the key when there is one."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        driver: str | None = None,
        location: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.driver = driver
        self.location = location
        self.path = path

    def __str__(self) -> str:
        where = [f"{name}={value}" for name, value in self._context() if value is not None]
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def _context(self) -> list[tuple[str, str | None]]:
        return [("location", self.location), ("driver", self.driver), ("path", self.path)]


class ObjectNotFound(StorageError):
    """The key does not exist in the backend."""


class InvalidPath(StorageError, ValueError):
    """A key that the library refuses to touch: absolute, `..`, NUL bytes, empty segments."""


class InvalidUpload(StorageError):
    """A chunked upload that cannot go on: unknown id, bad metadata, a chunk at a wrong offset."""


class BackendUnavailable(StorageError):
    """The backend is down, timed out, throttled us or answered garbage; the call may be retried."""

    retryable = True


class StorageConfigError(StorageError):
    """The configuration is wrong: unknown driver, bad parameter, missing bucket, rejected keys."""

    def __init__(
        self,
        message: str,
        *,
        driver: str | None = None,
        location: str | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(message, driver=driver, location=location)
        self.parameter = parameter

    def _context(self) -> list[tuple[str, str | None]]:
        return [("location", self.location), ("driver", self.driver), ("parameter", self.parameter)]


class ReadOnlyStorage(StorageError):
    """A write was attempted while the registry is in read-only mode."""


class BackendError(StorageError):
    """The backend refused the operation for a reason that is none of the above."""
