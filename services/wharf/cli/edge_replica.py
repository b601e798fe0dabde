"""`wharf edge serve`: one edge replica (the switch store, the table poller, the proxy and
the admin API) in one uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import socket
import sys
from typing import Any

from wharf.cli.edge_commands import OK, USAGE, EdgeCliError, read_table_file

GRACEFUL_SHUTDOWN_S = 8


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise EdgeCliError(f"cannot listen on {host}:{port}: {error.strerror}", USAGE) from None
    return sock


def _proxy_app(source: Any, sticky: Any, push_pins: Any = None) -> tuple[Any, Any]:
    """The proxy (`wharf.edge.app`) and what renders its metrics, when this build has them;
    else an app that answers 503 with the table version (enough for the admin API)."""
    app_module: Any = None
    metrics_module: Any = None
    with contextlib.suppress(ImportError):
        app_module = importlib.import_module("wharf.edge.app")
        metrics_module = importlib.import_module("wharf.edge.metrics")
    if app_module is not None and hasattr(app_module, "create_edge_app"):
        edge = app_module.create_edge_app(source, sticky, push_pins=push_pins)
        render = getattr(metrics_module, "metrics_response", None)
        metrics = (lambda: render(edge.metrics)) if render and hasattr(edge, "metrics") else None
        return edge, metrics
    from starlette.responses import JSONResponse

    async def no_proxy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            body = {"error": "no proxy in this build", "version": source.current().version}
            await JSONResponse(body, status_code=503)(scope, receive, send)

    return no_proxy, None


async def run_edge(args: argparse.Namespace) -> int:
    """One edge replica: a switch store, the table poller, the proxy and the admin API (on
    its own port, or under `--admin-prefix` on the proxy's), served by one uvicorn."""
    from wharf.db.engine import DatabaseConfigError
    from wharf.edge.admin import AdminAuth, create_admin_app
    from wharf.edge.store import StoreUnavailable, open_stores
    from wharf.edge.table import TableError
    from wharf.edge.table_source import PolledTableSource

    if args.poll_interval <= 0:
        raise EdgeCliError("--poll-interval must be a positive number of seconds", USAGE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        text = args.admin_token_file.read_text() if args.admin_token_file else None
        auth = AdminAuth.parse(text) if text is not None else AdminAuth.from_env()
        stores = open_stores(args.store)
        bootstrap = read_table_file(args.table) if args.table else None
        source = PolledTableSource(
            stores.switches, bootstrap_yaml=bootstrap, interval=args.poll_interval
        )
    except (OSError, ValueError, DatabaseConfigError, ImportError) as error:
        problems = "".join(f"\n  - {p}" for p in getattr(error, "problems", []))
        kind = "invalid initial table" if isinstance(error, TableError) else "cannot start"
        raise EdgeCliError(f"{kind}: {error if not problems else ''}{problems}", USAGE) from None
    if args.access_log is not None:
        handler = logging.FileHandler(args.access_log)
        handler.setFormatter(logging.Formatter("%(message)s"))  # the message is the JSON line
        logging.getLogger("wharf.edge.access").addHandler(handler)
    proxy, metrics = _proxy_app(source, stores.sticky, stores.push_pins)
    admin = create_admin_app(
        stores.switches, source, auth, access_log=args.access_log, metrics=metrics
    )
    try:
        await source.start()
    except (StoreUnavailable, RuntimeError) as error:
        await source.aclose()
        raise EdgeCliError(f"cannot load the route table: {error}", USAGE) from None
    try:
        await _serve_replica(args, admin, proxy)
    finally:
        await source.aclose()
    return OK


async def _serve_replica(args: argparse.Namespace, admin: Any, proxy: Any) -> None:
    import uvicorn
    from starlette.routing import Mount, Router

    sockets = [_listen(args.host, args.port)]
    if args.admin_port is not None:
        sockets.append(_listen(args.host, args.admin_port))
    admin_port = sockets[1].getsockname()[1] if len(sockets) > 1 else None
    prefix = args.admin_prefix.rstrip("/")
    prefixed = Router(routes=[Mount(prefix, app=admin)])

    async def replica(scope: Any, receive: Any, send: Any) -> None:
        # One uvicorn for both listeners (one signal handler, one shutdown): the local port
        # of the connection says which app it is for.
        path = scope.get("path", "")
        if scope["type"] == "lifespan":  # the proxy's (its connection pools)
            await proxy(scope, receive, send)
        elif admin_port is not None and (scope.get("server") or (None, 0))[1] == admin_port:
            await admin(scope, receive, send)
        elif admin_port is None and (path == prefix or path.startswith(prefix + "/")):
            await prefixed(scope, receive, send)
        else:
            await proxy(scope, receive, send)

    host = f"[{args.host}]" if ":" in args.host else args.host
    urls = [f"http://{host}:{sock.getsockname()[1]}" for sock in sockets]
    admin_url = urls[1] if admin_port is not None else urls[0] + prefix
    print(f"wharf edge: serving proxy={urls[0]} admin={admin_url}", file=sys.stderr, flush=True)
    # A bounded shutdown: a client that keeps a connection open must not hold a replica that
    # is being replaced (uploads interrupted by it resume where they were).
    config = uvicorn.Config(
        replica,
        lifespan="auto",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    # uvicorn re-raises SIGINT/SIGTERM once it has shut down; with the default handlers that
    # would kill the process before the store is closed. These let `run_edge` finish.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: None)
    await uvicorn.Server(config).serve(sockets=sockets)
