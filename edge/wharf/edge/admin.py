"""The edge admin API: status, plan, set, rollback, history, kill switch.

An ASGI app for a listener of its own (or mounted under a prefix such as `/_edge` on the
proxy). Every path, including a mounted `/metrics`, needs `Authorization: Bearer <token>`;
tokens are compared in constant time and never logged. Each token has a name, recorded as
the author of the changes made with it; `X-Wharf-Author` adds who is behind a shared token
(recorded as "<header> (token <name>)", so the header cannot impersonate another token).

Writes go to the switch store, then this replica refreshes at once; the others pick the
change up on their next poll (0.25 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

# `as` re-exports them under mypy --strict: the CLI and tests import them from this module.
from wharf.edge.admin_auth import AdminAuth as AdminAuth
from wharf.edge.admin_auth import AdminToken as AdminToken
from wharf.edge.admin_auth import AdminTokenGuard, author_of
from wharf.edge.plan import (
    Sample,
    plan_requests,
    samples_from_log,
    summarise,
    table_changes,
    tail_lines,
    yaml_diff,
)
from wharf.edge.store import (
    MAX_TABLE_BYTES,
    NoSuchVersion,
    StoreUnavailable,
    Switches,
    TableRecord,
    VersionConflict,
)
from wharf.edge.table import RouteTable, TableError, parse_table_yaml
from wharf.edge.table_source import PolledTableSource

log = logging.getLogger("wharf.edge.admin")

MAX_BODY_BYTES = 16 * 1024 * 1024  # a plan may carry many access-log lines
MAX_LOG_LINES = 100_000


class BadRequest(Exception):
    pass


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        document = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = {int: "a whole number", str: "a string", list: "a list"}
        raise BadRequest(f"'{name}' must be {kinds.get(kind, kind.__name__)}")
    return value


def _reason(body: dict[str, Any]) -> str:
    reason: str = _field(body, "reason", str, required=True).strip()
    if not reason:
        raise BadRequest("'reason' must say why the table changes")
    return reason


def _table_json(table: RouteTable) -> dict[str, Any]:
    return {
        "upstreams": {name: upstream.url for name, upstream in table.upstreams.items()},
        "kill_switch": table.kill_switch,
        "capabilities": [
            {
                "name": capability.name,
                "owner": capability.owner,
                "canary": None
                if capability.canary is None
                else {
                    "upstream": capability.canary.upstream,
                    "repositories": list(capability.canary.repositories),
                    "organisations": list(capability.canary.organisations),
                    "percent": capability.canary.percent,
                },
            }
            for capability in table.capabilities
        ],
    }


class _Admin:
    def __init__(
        self, switches: Switches, source: PolledTableSource, access_log: Path | None
    ) -> None:
        self.switches, self.source, self.access_log = switches, source, access_log

    def _text(self) -> str:
        record = self.source.record
        if record is not None:
            return record.yaml
        return self.source.bootstrap_yaml or yaml.safe_dump(self.source.current().table.source)

    async def status(self, request: Request) -> Response:
        current = self.source.current()
        record = self.source.record
        return JSONResponse(
            {
                "version": current.version,
                **({"set": record.summary()} if record else {}),
                **_table_json(current.table),
                "yaml": self._text(),
                "store": self.source.health(),
            }
        )

    async def plan(self, request: Request) -> Response:
        body = await _body(request)
        text = _field(body, "yaml", str, required=True)
        new = parse_table_yaml(text)
        current = self.source.current()
        samples = []
        for item in _field(body, "paths", list) or []:
            try:
                if isinstance(item, str):
                    samples.append(Sample.parse(item))
                elif isinstance(item, dict):
                    samples.append(Sample.of(str(item.get("method")), str(item.get("path"))))
                else:
                    raise ValueError(f"{item!r} is neither 'METHOD /path' nor an object")
            except ValueError as error:
                raise BadRequest(f"paths: {error}") from None
        answer: dict[str, Any] = {
            "version": current.version,
            "valid": True,
            "changes": table_changes(current.table, new),
            "diff": yaml_diff(self._text(), text, f"v{current.version}", "proposed"),
            "requests": [p.to_json() for p in plan_requests(current.table, new, samples)],
        }
        lines = await self._log_lines(body)
        if lines is not None:
            from_log, skipped = samples_from_log(lines)
            moves, unchanged = summarise(plan_requests(current.table, new, from_log))
            answer["log"] = {
                "requests": len(from_log),
                "skipped": skipped,
                "unchanged": unchanged,
                "moves": [move.to_json() for move in moves],
            }
        return JSONResponse(answer)

    async def _log_lines(self, body: dict[str, Any]) -> list[str] | None:
        given = _field(body, "log_lines", list)
        if given is not None:
            return [str(line) for line in given[:MAX_LOG_LINES]]
        count = _field(body, "from_log", int)
        if count is None:
            return None
        if self.access_log is None:
            raise BadRequest("this edge has no access log file configured; send 'log_lines'")
        try:
            return await asyncio.to_thread(
                tail_lines, self.access_log, max(0, min(count, MAX_LOG_LINES))
            )
        except OSError as error:
            raise BadRequest(f"cannot read the access log: {error.strerror}") from None

    async def _applied(self, record: TableRecord) -> Response:
        log.warning(
            "route table v%d stored by %s: %s", record.version, record.author, record.reason
        )
        # Compared with the version before it in the store, which this replica may not have
        # loaded yet (another replica's change a moment ago).
        changes: list[str] = []
        with contextlib.suppress(StoreUnavailable, TableError):
            previous = await self.switches.store.read(record.version - 1)
            if previous is not None:
                old = parse_table_yaml(previous.yaml)
                changes = table_changes(old, parse_table_yaml(record.yaml))
        # This replica at once, the others within a poll; if the store went away after the
        # write, the change is stored all the same and the poller picks it up.
        with contextlib.suppress(StoreUnavailable):
            await self.source.refresh()
        return JSONResponse(
            {**record.summary(), "previous_version": record.version - 1, "changes": changes}
        )

    async def set_table(self, request: Request) -> Response:
        body = await _body(request)
        text = _field(body, "yaml", str, required=True)
        reason = _reason(body)
        expected = _field(body, "expected_version", int)
        record = await self.switches.set(
            text, author=author_of(request), reason=reason, expected_version=expected
        )
        return await self._applied(record)

    async def rollback(self, request: Request) -> Response:
        body = await _body(request)
        reason = _reason(body)
        record = await self.switches.rollback(
            author=author_of(request),
            reason=reason,
            to_version=_field(body, "to_version", int),
            expected_version=_field(body, "expected_version", int),
        )
        return await self._applied(record)

    async def kill_switch(self, request: Request) -> Response:
        """Set (`upstream`) or clear (`null`) the kill switch: a table change like any other,
        made on the newest stored table. YAML comments do not survive the rewrite."""
        body = await _body(request)
        upstream = _field(body, "upstream", str)
        reason = _reason(body)
        latest = await self.switches.latest()
        if latest is None:
            return _error(409, "the switch store holds no table yet")
        document = yaml.safe_load(latest.yaml)
        if not isinstance(document, dict):  # only if written around this API
            return _error(409, f"stored table v{latest.version} is not a mapping; use PUT /table")
        document["kill_switch"] = upstream
        record = await self.switches.set(
            yaml.safe_dump(document, sort_keys=False),
            author=author_of(request),
            reason=reason,
            expected_version=latest.version,
        )
        return await self._applied(record)

    async def history(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise BadRequest("limit: a number from 1 to 1000")
        entries = await self.switches.history(int(raw))
        return JSONResponse({"entries": [entry.to_json() for entry in entries]})


async def _bad_request(request: Request, error: Exception) -> Response:
    return _error(400, str(error))


async def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, TableError)
    return _error(422, "invalid table", problems=error.problems)


async def _conflict(request: Request, error: Exception) -> Response:
    assert isinstance(error, VersionConflict)
    return _error(409, str(error), current_version=error.current)


async def _no_version(request: Request, error: Exception) -> Response:
    return _error(404, str(error))


async def _unavailable(request: Request, error: Exception) -> Response:
    return _error(503, f"switch store unavailable: {error}", retry_after=1)


def create_admin_app(
    switches: Switches,
    source: PolledTableSource,
    auth: AdminAuth,
    *,
    access_log: Path | None = None,
    metrics: Callable[[], Response] | None = None,
) -> ASGIApp:
    """The admin API. `access_log`: the JSON access log `plan --from-log` reads. `metrics`:
    makes the proxy's Prometheus exposition (`metrics_response(edge.metrics)`), served at
    `/metrics` behind the token (Prometheus sends one with `authorization:` in its config)."""
    assert MAX_TABLE_BYTES < MAX_BODY_BYTES
    admin = _Admin(switches, source, access_log)
    routes = [
        Route("/status", admin.status, methods=["GET"]),
        Route("/plan", admin.plan, methods=["POST"]),
        Route("/table", admin.set_table, methods=["PUT"]),
        Route("/rollback", admin.rollback, methods=["POST"]),
        Route("/history", admin.history, methods=["GET"]),
        Route("/kill-switch", admin.kill_switch, methods=["POST"]),
    ]
    if metrics is not None:
        render = metrics

        async def exposition(request: Request) -> Response:
            return render()

        routes.append(Route("/metrics", exposition, methods=["GET"]))
    app = Starlette(
        routes=routes,
        exception_handlers={
            BadRequest: _bad_request,
            TableError: _invalid,
            VersionConflict: _conflict,
            StoreUnavailable: _unavailable,
            NoSuchVersion: _no_version,
        },
    )
    return AdminTokenGuard(app, auth)
