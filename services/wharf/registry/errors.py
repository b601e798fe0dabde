"""The registry's errors, in the OCI Distribution error format.

Every failure a client sees is `{"errors": [{"code", "message", "detail"}]}` with one of the
spec's codes and the status distribution (the reference implementation) uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str


BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", 404, "blob unknown to registry")
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
MANIFEST_BLOB_UNKNOWN = ErrorCode(
    "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"
)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", 400, "manifest invalid")
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
NAME_INVALID = ErrorCode("NAME_INVALID", 400, "invalid repository name")
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", 404, "repository name not known to registry")
SIZE_INVALID = ErrorCode("SIZE_INVALID", 400, "provided length did not match content length")
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", 401, "authentication required")
DENIED = ErrorCode("DENIED", 403, "requested access to the resource is denied")
UNSUPPORTED = ErrorCode("UNSUPPORTED", 405, "the operation is unsupported")
TOO_MANY_REQUESTS = ErrorCode("TOOMANYREQUESTS", 429, "too many requests")
RANGE_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable")
MANIFEST_TOO_LARGE = ErrorCode("MANIFEST_INVALID", 413, "manifest too large")
PAGINATION_NUMBER_INVALID = ErrorCode(
    "PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"
)
"""Not in the spec's table: distribution's code for a bad `n`, which clients know."""

ALL_CODES = (
    BLOB_UNKNOWN,
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_INVALID,
    MANIFEST_UNKNOWN,
    NAME_INVALID,
    NAME_UNKNOWN,
    SIZE_INVALID,
    UNAUTHORIZED,
    DENIED,
    UNSUPPORTED,
    TOO_MANY_REQUESTS,
)


class RegistryError(Exception):
    """Raised anywhere in a request; the app turns it into the spec's error response."""

    def __init__(
        self,
        code: ErrorCode,
        detail: Any = None,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        more_details: list[Any] | None = None,
    ) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.headers = headers or {}
        self.status = status or code.status
        self.more_details = more_details or []
        """Further entries of the same code (the spec wants one per unknown blob)."""

    def body(self) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        for detail in [self.detail, *self.more_details]:
            entry: dict[str, Any] = {"code": self.code.code, "message": self.message}
            if detail is not None:
                entry["detail"] = detail
            entries.append(entry)
        return {"errors": entries}

    def response(self, *, head: bool = False) -> JSONResponse:
        response = JSONResponse(self.body(), status_code=self.status, headers=self.headers)
        if head:
            # A HEAD response carries the headers of the GET, not its body.
            response.body = b""
        return response
