"""Which HTTP client the edge forwards with: httpx or aiohttp, measured on this machine.

Three forwarders sit in front of one fast upstream (a raw ASGI app under uvicorn that answers
HEAD at once, streams zeros for `GET /bytes/<n>` and discards request bodies):

* `httpx`: a minimal streaming forwarder on `httpx.AsyncClient` (streamed `content=`,
  `aiter_raw()`), connection pool limits as the edge would set them;
* `aiohttp`: the same forwarder on `aiohttp.ClientSession` + `TCPConnector(limit=...)`;
* `edge`: Wharf's real edge (`wharf.edge.app`), routing table, metrics and access log included;
* `nginx`: Debian's nginx as a streaming reverse proxy (when /usr/sbin/nginx exists), the
  reference a proxy on this machine can be held to.

Every server is a uvicorn subprocess (uvloop, httptools) on 127.0.0.1. curl drives the 1 GiB
upload (`PUT` of a sparse file, with Content-Length) and download, so the client's cost is the
same C code whatever is measured; the latency run is `HEAD`s over one keep-alive connection
(http.client) and reports p50/p99. Rounds alternate the targets so drift on the shared
machine hits all alike. Results go to bench-results/edge-client.json and stdout; nothing is
asserted about speed (see DESIGN.md, "Quality bars").

Run: `.venv/bin/pytest tests/perf/test_edge_client_choice.py -s` or
`.venv/bin/python -m tests.perf.test_edge_client_choice`. `WHARF_BENCH_BLOB_MIB` (default
1024), `WHARF_BENCH_HEADS` (2000) and `WHARF_BENCH_RUNS` (3) size it;
`WHARF_BENCH_TARGETS` (default `httpx,aiohttp,edge,nginx`) picks what runs besides `direct`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MiB = 1024 * 1024
BLOB_MIB = int(os.environ.get("WHARF_BENCH_BLOB_MIB", "1024"))
HEADS = int(os.environ.get("WHARF_BENCH_HEADS", "2000"))
RUNS = int(os.environ.get("WHARF_BENCH_RUNS", "3"))
REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench-results" / "edge-client.json"
HOP = {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
BLOCK = bytes(MiB)
NGINX_BIN = "/usr/sbin/nginx"


# -- the upstream -----------------------------------------------------------------------------


async def upstream_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method in ("PUT", "POST", "PATCH"):
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b'{"received": %d}' % total
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    size = int(path.rsplit("/", 1)[-1]) if path.startswith("/bytes/") else 0
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", b"%d" % size),
                (b"content-type", b"application/octet-stream"),
                (b"docker-content-digest", b"sha256:" + b"0" * 64),
            ],
        }
    )
    if method == "HEAD" or size == 0:
        await send({"type": "http.response.body", "body": b""})
        return
    left = size
    while left > 0:
        chunk = BLOCK if left >= MiB else BLOCK[:left]
        left -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})


# -- two minimal forwarders -------------------------------------------------------------------


def _upstream_url() -> str:
    return os.environ["BENCH_UPSTREAM"]


def _request_parts(scope: Scope) -> tuple[str, list[tuple[bytes, bytes]], bool]:
    url = _upstream_url() + scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        url += "?" + scope["query_string"].decode("latin-1")
    headers = [(k, v) for k, v in scope["headers"] if k not in HOP]
    has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
    return url, headers, has_body


async def _request_body(receive: Receive) -> Any:
    while True:
        message = await receive()
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


def httpx_forwarder() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    import httpx

    client: list[httpx.AsyncClient] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not client:
            client.append(
                httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
                    timeout=httpx.Timeout(300.0, connect=5.0),
                )
            )
        url, headers, has_body = _request_parts(scope)
        request = client[0].build_request(
            scope["method"],
            url,
            headers=headers,
            content=_request_body(receive) if has_body else None,
        )
        response = await client[0].send(request, stream=True)
        try:
            out = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def aiohttp_forwarder() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    import aiohttp
    from yarl import URL

    session: list[aiohttp.ClientSession] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not session:
            session.append(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=100),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=300.0),
                    auto_decompress=False,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                    read_bufsize=256 * 1024,
                )
            )
        url, headers, has_body = _request_parts(scope)
        async with session[0].request(
            scope["method"],
            URL(url, encoded=True),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            data=_request_body(receive) if has_body else None,
            allow_redirects=False,
        ) as response:
            out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def wharf_edge() -> Any:
    from wharf.edge.app import create_edge_app
    from wharf.edge.state import MemoryStickyUploads, StaticTable
    from wharf.edge.table import parse_table_yaml

    table = parse_table_yaml(
        f"upstreams: {{up: {{url: '{_upstream_url()}'}}}}\ndefault_owner: up\n"
        "capabilities:\n  registry-pull:\n"
        "    canary: {upstream: up, repositories: ['orgb/*']}\n"
    )
    return create_edge_app(StaticTable(table), MemoryStickyUploads())


# -- harness ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(target: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        *(["--factory"] if not target.endswith("upstream_app") else []),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})})
    try:
        _wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _curl_seconds(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *arguments], check=True)
    return time.perf_counter() - started


def _heads(base: str, count: int) -> list[float]:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    timings = []
    for index in range(count + count // 10):
        started = time.perf_counter()
        connection.request("HEAD", "/v2/orga/app/manifests/v1")
        response = connection.getresponse()
        response.read()
        if index >= count // 10:  # the first tenth warms up
            timings.append(time.perf_counter() - started)
    connection.close()
    return timings


NGINX_CONF = """
worker_processes 1;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 256k;  # the edge's read buffer; nginx's default is one page
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
        }}
    }}
}}
"""


@contextmanager
def _nginx(upstream: str, scratch: Path) -> Iterator[str]:
    """Debian's nginx as a streaming reverse proxy (no buffering either way), the reference
    the issue asks for; never the system service: its own prefix, pid and port."""
    port = _free_port()
    conf = scratch / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(scratch=scratch, upstream_port=upstream.rsplit(":", 1)[1], port=port)
    )
    log = scratch / "nginx-error.log"
    command = [NGINX_BIN, "-c", str(conf), "-p", str(scratch), "-e", str(log), "-g", "daemon off;"]
    process = subprocess.Popen(command)
    try:
        _wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _targets(stack: ExitStack, upstream: str, scratch: Path) -> dict[str, str]:
    wanted = os.environ.get("WHARF_BENCH_TARGETS", "httpx,aiohttp,edge,nginx").split(",")
    env = {"BENCH_UPSTREAM": upstream}
    targets = {"direct": upstream}
    for name, factory in (
        ("httpx", "httpx_forwarder"),
        ("aiohttp", "aiohttp_forwarder"),
        ("edge", "wharf_edge"),
    ):
        if name in wanted:
            target = f"tests.perf.test_edge_client_choice:{factory}"
            targets[name] = stack.enter_context(_server(target, env))
    if "nginx" in wanted and os.access(NGINX_BIN, os.X_OK):
        targets["nginx"] = stack.enter_context(_nginx(upstream, scratch))
    return targets


def measure() -> dict[str, Any]:
    results: dict[str, Any] = {"blob_mib": BLOB_MIB, "heads": HEADS, "runs": RUNS}
    size = BLOB_MIB * MiB
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        upstream = stack.enter_context(_server("tests.perf.test_edge_client_choice:upstream_app"))
        sparse = scratch / "blob"
        with sparse.open("wb") as handle:
            handle.truncate(size)
        targets = _targets(stack, upstream, scratch)
        runs: dict[str, dict[str, list[float]]] = {
            name: {"upload_s": [], "download_s": [], "head_p50_ms": [], "head_p99_ms": []}
            for name in targets
        }
        for round_ in range(RUNS):
            order = list(targets.items())
            order = order if round_ % 2 == 0 else order[::-1]
            for name, base in order:
                runs[name]["upload_s"].append(
                    _curl_seconds(["-T", str(sparse), f"{base}/v2/bench/blobs/uploads/x"])
                )
                runs[name]["download_s"].append(_curl_seconds([f"{base}/bytes/{size}"]))
                timings = sorted(_heads(base, HEADS))
                runs[name]["head_p50_ms"].append(statistics.median(timings) * 1000)
                runs[name]["head_p99_ms"].append(timings[int(len(timings) * 0.99)] * 1000)
    for name, numbers in runs.items():
        results[name] = {
            "upload_MBps": round(size / min(numbers["upload_s"]) / 1e6, 1),
            "download_MBps": round(size / min(numbers["download_s"]) / 1e6, 1),
            "head_p50_ms": round(statistics.median(numbers["head_p50_ms"]), 3),
            "head_p99_ms": round(statistics.median(numbers["head_p99_ms"]), 3),
        }
    direct = results["direct"]
    for name in sorted(runs.keys() - {"direct"}):
        mine = results[name]
        mine["upload_ratio"] = round(mine["upload_MBps"] / direct["upload_MBps"], 2)
        mine["download_ratio"] = round(mine["download_MBps"] / direct["download_MBps"], 2)
        mine["added_p50_ms"] = round(mine["head_p50_ms"] - direct["head_p50_ms"], 3)
        mine["added_p99_ms"] = round(mine["head_p99_ms"] - direct["head_p99_ms"], 3)
    return results


@pytest.mark.slow
def test_edge_client_choice() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    results = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    assert results["edge"]["head_p50_ms"] > 0  # measured, not asserted: only that it ran


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
