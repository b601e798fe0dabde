"""Debian's nginx running a rendered table in front of two tiny upstreams that say who they are.

Each upstream answers every method with `X-Upstream: <name>` and a JSON echo of what reached
it (request target, body length, headers), so a test sees both where nginx routed a request
and what nginx passed on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wharf.edge.nginx import render_nginx
from wharf.edge.table import RouteTable


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.name = name


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # nginx keeps its upstream connections alive
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: EchoServer

    def _answer(self) -> None:
        body = self._body()
        if delay := re.search(r"[?&]sleep=([0-9.]+)", self.path):
            time.sleep(float(delay.group(1)))  # a slow upstream, for nginx's read timeout
        payload = json.dumps(
            {
                "upstream": self.server.name,
                "method": self.command,
                "target": self.path,
                "body": len(body),
                "headers": {key.lower(): value for key, value in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("X-Upstream", self.server.name)
        self.send_header("X-Request-ID", "made-by-the-upstream")  # nginx must replace it
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:
        pass  # thousands of requests; the assertions say what went wrong


@dataclass(frozen=True)
class Upstreams:
    legacy: str
    wharf: str
    closed: str
    """A URL where nothing listens."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_nginx(binary: str, table: RouteTable, directory: Path) -> Iterator[str]:
    """nginx in the foreground with `table` rendered as a full nginx.conf; yields its URL."""
    port = free_port()
    prefix = directory / f"nginx-{port}"
    (prefix / "temp").mkdir(parents=True)
    config = prefix / "nginx.conf"
    config.write_text(render_nginx(table, listen=f"127.0.0.1:{port}", full=True, workers=2))
    log = prefix / "stderr.log"
    command = [binary, "-p", f"{prefix}/", "-c", str(config)]
    command += ["-g", f"daemon off; pid {prefix}/nginx.pid; error_log stderr notice;"]
    with log.open("wb") as stderr:
        # Its own process group: should nginx ignore SIGTERM, SIGKILL reaches its workers too.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    try:
        _wait_listening(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on {port} within 10 s:\n{log.read_text()}")
