"""`wharf edge render-nginx`: a table file in, an nginx config out; bad tables refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.main import main

TABLE = """
upstreams:
  legacy: {url: "http://127.0.0.1:5000"}
  wharf: {url: "http://127.0.0.1:8080"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*"], percent: 10}
"""


def test_renders_a_table_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "table.yaml"
    table.write_text(TABLE)
    assert main(["edge", "render-nginx", "--table", str(table), "--listen", "127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert "listen 127.0.0.1:9" in out
    assert "split_clients" in out
    assert "127.0.0.1:5000" in out


def test_refuses_an_invalid_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "table.yaml"
    table.write_text("upstreams: {a: http://x}\ndefault_owner: b\n")
    assert main(["edge", "render-nginx", "--table", str(table)]) == 1
    assert "default_owner: unknown upstream 'b'" in capsys.readouterr().err
