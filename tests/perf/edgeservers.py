"""The proxies the edge benchmark puts in front of Wharf's registry, started on loopback.

* edge: `wharf edge serve` as deployed beside the registry (its own process, switch store in
  a scratch SQLite file, a table whose single upstream is the registry's URL). Its stderr,
  which carries one JSON access line per request at INFO, goes to a file, as in production.
* nginx: Debian's nginx as a streaming reverse proxy with its own prefix, pid and port (never
  the system service), configured like the edge: HTTP/1.1 keep-alive to the upstream, no
  buffering either way, no body size limit, `Host` passed through.
* relay: relay.py, a bare zero-copy (splice) TCP relay with no HTTP at all: the ceiling for
  any proxy in a process of its own on this machine, so the edge's and nginx's ratios can be
  read against it.

Each is returned as a `registryservers.Server` that carries the registry's token headers and
blob layout, so the registry client drives a proxy exactly as it drives the registry.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.perf import registryservers as rs

NGINX_BIN = "/usr/sbin/nginx"
SERVING_RE = re.compile(r"wharf edge: serving proxy=(\S+) admin=(\S+)")
READY_TIMEOUT = 30.0


def nginx_available() -> bool:
    return os.access(NGINX_BIN, os.X_OK)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


# -- the edge --------------------------------------------------------------------------------


EDGE_TABLE = """\
upstreams:
  registry: {{url: "{url}"}}
default_owner: registry
"""


UVLOOP_LAUNCHER = """\
import asyncio, sys
import uvloop
from wharf.cli.main import main
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
sys.exit(main(sys.argv[1:]))
"""
"""`wharf ...` with uvloop under `asyncio.run`: `wharf edge serve` runs its loop with
`asyncio.run` (the stdlib selector loop), where `wharf serve` uses uvloop; this launcher
measures what that costs without touching Wharf."""


@contextmanager
def edge(workdir: Path, upstream: rs.Server, *, uvloop: bool = False) -> Iterator[rs.Server]:
    """`wharf edge serve --port 0` in front of `upstream`; its URL is read from its stderr.

    `uvloop`: run the same command under uvloop (UVLOOP_LAUNCHER), a diagnostic path."""
    name = "edge-uvloop" if uvloop else "edge"
    workdir = workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    table = workdir / "edge-table.yaml"
    table.write_text(EDGE_TABLE.format(url=upstream.base_url))
    # The edge refuses to start without an admin token; the admin API (under /_edge on the
    # proxy's port, the default) is never called here.
    tokens = workdir / "edge-admin-tokens"
    tokens.write_text(f"bench {os.urandom(16).hex()}\n")
    tokens.chmod(0o600)
    log = workdir / "edge.log"
    python = rs.WHARF_BIN.parent / "python"
    command = [str(python), "-c", UVLOOP_LAUNCHER] if uvloop else [str(rs.WHARF_BIN)]
    command += ["edge", "serve", "--store"]
    command += [f"sqlite+aiosqlite:///{workdir / 'edge.db'}", "--table", str(table)]
    command += ["--host", "127.0.0.1", "--port", "0", "--admin-token-file", str(tokens)]
    # A file, not a pipe: the access log writes a line per request, and a pipe nobody reads
    # would fill up and stall the edge.
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = _edge_url(process, log)
        yield rs.Server(
            name,
            url,
            process,
            "wharf edge serve (this tree)" + (", under uvloop" if uvloop else ""),
            upstream.blob_file,
            dict(upstream.headers),
        )
    finally:
        _stop(process)


def _edge_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        found = SERVING_RE.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"the edge exited with {process.returncode}:\n{_tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"the edge did not start in {READY_TIMEOUT} s:\n{_tail(log)}")


# -- nginx -----------------------------------------------------------------------------------


NGINX_CONF = """\
worker_processes 1;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    # nginx closes a keep-alive connection after 1000 requests by default (both sides);
    # uvicorn and the edge never do, so the latency runs would otherwise pay reconnects
    # that only nginx pays.
    keepalive_requests 1000000;
    upstream registry {{
        server 127.0.0.1:{upstream_port};
        keepalive 32;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
            # The edge reads the upstream 256 KiB at a time (proxy.READ_BUFSIZE); nginx's
            # default is one page, which would make it the slower proxy for no reason.
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
}}
"""


def _nginx_version() -> str:
    done = subprocess.run([NGINX_BIN, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ") or "nginx"


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx does not listen on {port}:\n{_tail(log)}")


@contextmanager
def nginx(workdir: Path, upstream: rs.Server) -> Iterator[rs.Server]:
    """One nginx worker (the edge is one process too) in front of `upstream`."""
    scratch = workdir / "nginx"
    scratch.mkdir(parents=True, exist_ok=True)
    port = rs.free_port()
    conf = scratch / "nginx.conf"
    upstream_port = upstream.base_url.rsplit(":", 1)[1]
    conf.write_text(NGINX_CONF.format(scratch=scratch, upstream_port=upstream_port, port=port))
    log = scratch / "nginx-error.log"
    # -e: the error log before the config is read (the default one is the system's path).
    command = [NGINX_BIN, "-c", str(conf), "-p", str(scratch), "-e", str(log)]
    command += ["-g", "daemon off;"]
    process = subprocess.Popen(command)
    try:
        _wait_listening(port, process, log)
        yield rs.Server(
            "nginx",
            f"http://127.0.0.1:{port}",
            process,
            _nginx_version(),
            upstream.blob_file,
            dict(upstream.headers),
        )
    finally:
        _stop(process)


# -- the bare relay --------------------------------------------------------------------------


RELAY_SCRIPT = Path(__file__).with_name("relay.py")


@contextmanager
def relay(workdir: Path, upstream: rs.Server) -> Iterator[rs.Server]:
    """relay.py in front of `upstream`, under the same Python as Wharf."""
    scratch = workdir / "relay"
    scratch.mkdir(parents=True, exist_ok=True)
    port = rs.free_port()
    upstream_port = upstream.base_url.rsplit(":", 1)[1]
    log = scratch / "relay.log"
    python = rs.WHARF_BIN.parent / "python"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(python), str(RELAY_SCRIPT), str(port), upstream_port],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process, log)
        yield rs.Server(
            "relay",
            f"http://127.0.0.1:{port}",
            process,
            "relay.py (bare splice relay, no HTTP)",
            upstream.blob_file,
            dict(upstream.headers),
        )
    finally:
        _stop(process)
