"""Fixtures of this package only. `topology` is module-scoped: the tests of one module share
one set of servers and keep apart by repository and organisation names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.edge_migration.topology import Topology, module_topology


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, so skopeo reads and writes no credentials or caches of the real one."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path / "run"))
    monkeypatch.setenv("XDG_DATA_HOME", str(path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path / "config"))
    return path


@pytest.fixture(scope="module")
def topology(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """Legacy, wharf and two edge replicas, started once per test module."""
    yield from module_topology(tmp_path_factory, request.module.__name__.rpartition(".")[2])
