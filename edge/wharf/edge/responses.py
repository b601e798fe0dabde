"""The answers the edge gives itself instead of relaying: its metrics and its own errors.

Errors are in the registry format under `/v2/` and in Quay's API error JSON elsewhere: the
formats registry clients and Quay API clients already read from the upstreams.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from wharf.edge.proxy import Headers

RETRY_AFTER_S = 5


async def send_response(
    send: Send,
    method: str,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Headers | None = None,
) -> None:
    """A whole response at once; to HEAD, the headers (with the body's length) only."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def send_error(
    send: Send,
    method: str,
    path: str,
    status: int,
    code: str,
    message: str,
    detail: dict[str, Any],
    *,
    retry_after: bool = False,
) -> None:
    """An error of the edge's own: the registry format under /v2/, Quay's API format else."""
    extra: Headers = [(b"retry-after", b"%d" % RETRY_AFTER_S)] if retry_after else []
    if path == "/v2" or path.startswith("/v2/"):
        document: dict[str, Any] = {
            "errors": [{"code": code, "message": message, "detail": detail}]
        }
        extra.append((b"docker-distribution-api-version", b"registry/2.0"))
    else:
        document = {
            "status": status,
            "error_type": code.lower(),
            "error_message": message,
            "detail": detail,
        }
    body = json.dumps(document).encode()
    await send_response(send, method, status, body, b"application/json", extra)
