"""`wharf serve` at run time: the edge in front of the services, in one process on one port.

`--service all` (the default) puts the edge first: every request is routed by the table and
dispatched in process to the registry (`inproc:registry`), or to any HTTP upstream the table
names (a legacy Quay during a migration). The table lives in the service's own database
(Wharf's `wharf_edge_*` tables); on first start it is the config's `WHARF_EDGE_TABLE` file or
the default below. With `WHARF_EDGE_ADMIN_TOKEN` set (or `WHARF_EDGE_ADMIN_TOKENS_FILE` in the
config), the admin API answers under `/_edge` on the same port.

`--service registry` serves the registry alone, for compose and Helm, where the edge runs as
its own process (`wharf serve --service edge`, or `wharf edge serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from wharf.cli.allocator import tune_allocator

SERVICES = ("all", "registry", "edge")
DEFAULT_TABLE = """\
# Everything to the registry in this process. Add upstreams and canaries to migrate.
upstreams:
  registry: {url: "inproc:registry"}
default_owner: registry
"""
ADMIN_PREFIX = "/_edge"
GRACEFUL_SHUTDOWN_S = 30
"""Requests still running after this at shutdown are cut; an interrupted upload resumes."""


def edge_table_text(config: dict[str, Any]) -> str:
    """The table stored on first start: `WHARF_EDGE_TABLE` (a file) or the default."""
    path = config.get("WHARF_EDGE_TABLE")
    if path is None:
        return DEFAULT_TABLE
    if not isinstance(path, str):
        raise ValueError("WHARF_EDGE_TABLE must be the path of a table file")
    return Path(path).read_text(encoding="utf-8")


def admin_tokens_text(config: dict[str, Any]) -> str | None:
    path = config.get("WHARF_EDGE_ADMIN_TOKENS_FILE")
    if isinstance(path, str):
        return Path(path).read_text(encoding="utf-8")
    return os.environ.get("WHARF_EDGE_ADMIN_TOKEN") or None


def run_event_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """uvloop when it is installed (uvicorn's choice too), else asyncio's loop; the allocator
    tuned for a server first (see allocator.py)."""
    tune_allocator()
    factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


async def serve_all(
    registry_app: ASGIApp,
    *,
    db_url: str,
    table_text: str,
    admin_tokens: str | None,
    host: str,
    port: int,
) -> int:
    """The edge and the registry on one port until SIGINT/SIGTERM."""
    import uvicorn

    from wharf.edge.admin import AdminAuth, create_admin_app
    from wharf.edge.app import create_edge_app
    from wharf.edge.metrics import metrics_response
    from wharf.edge.store import open_stores
    from wharf.edge.table_source import PolledTableSource

    stores = open_stores(db_url)
    source = PolledTableSource(stores.switches, bootstrap_yaml=table_text)
    await source.start()
    edge = create_edge_app(
        source,
        stores.sticky,
        in_process={"registry": registry_app},
        push_pins=stores.push_pins,
    )
    app: ASGIApp = edge
    if admin_tokens is not None:
        admin = create_admin_app(
            stores.switches,
            source,
            AdminAuth.parse(admin_tokens),
            metrics=lambda: metrics_response(edge.metrics),
        )
        app = _with_admin(edge, admin)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    print(f"wharf: edge and registry on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await source.aclose()
        await stores.aclose()
    return 0


def _with_admin(edge: ASGIApp, admin: ASGIApp) -> ASGIApp:
    from starlette.routing import Mount, Router

    mounted = Router(routes=[Mount(ADMIN_PREFIX, app=admin)])

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (
            path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        ):
            await mounted(scope, receive, send)
        else:
            await edge(scope, receive, send)  # lifespan too: the edge runs the registry's

    return dispatch
