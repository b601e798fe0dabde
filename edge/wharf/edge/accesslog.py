"""One JSON line per request on the `wharf.edge.access` logger.

Fields: `time` (arrival, UTC, ISO 8601 with milliseconds), `request_id`, `method`, `path`,
`query` (see below), `status` (499 when the client left first), `bytes_in`, `bytes_out`
(bodies only), `duration_ms`, `upstream`, `reason`, `capability`, `table_version`, `client`
(the address the edge saw) and, when something failed, `error`.

Nothing secret is written: no header at all (so never `Authorization` or a cookie), and the
query string keeps the values of the registry's harmless parameters only (`QUERY_KEPT`: the
ones `wharf edge plan` needs to replay routing, such as `/v2/auth`'s `scope`); every other
value becomes `-`, since a signed URL or a token can travel there. Paths are kept whole.

The line is the log message; the same fields are on the record as `record.access` for
handlers that want them structured. Nothing is formatted when the logger is disabled.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

ACCESS_LOGGER = logging.getLogger("wharf.edge.access")
QUERY_KEPT = frozenset({"digest", "mount", "from", "n", "last", "scope", "service", "ns"})


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(key, value if key in QUERY_KEPT else "-") for key, value in pairs])


def log_access(
    *,
    started_wall: float,
    request_id: str,
    method: str,
    path: str,
    query: str,
    status: int,
    bytes_in: int,
    bytes_out: int,
    duration_s: float,
    upstream: str | None,
    reason: str | None,
    capability: str | None,
    table_version: int,
    client: str | None,
    error: str | None = None,
) -> None:
    if not ACCESS_LOGGER.isEnabledFor(logging.INFO):
        return
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(started_wall, UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "method": method,
        "path": path,
        "query": redact_query(query),
        "status": status,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "duration_ms": round(duration_s * 1000, 3),
        "upstream": upstream,
        "reason": reason,
        "capability": capability,
        "table_version": table_version,
        "client": client,
    }
    if error is not None:
        entry["error"] = error
    ACCESS_LOGGER.info(json.dumps(entry, separators=(",", ":")), extra={"access": entry})
