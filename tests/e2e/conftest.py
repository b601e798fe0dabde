from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.registries import Registry, selected_kinds


@pytest.fixture(scope="session", params=selected_kinds())
def registry_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(scope="session")
def registry(registry_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One server per kind for the whole session; tests keep apart by repository name."""
    with Registry(registry_kind, tmp_path_factory.mktemp(registry_kind)) as server:
        yield server


@pytest.fixture
def own_registry(registry_kind: str, tmp_path: Path) -> Iterator[Registry]:
    """A server of the test's own, for tests that stop and restart it."""
    with Registry(registry_kind, tmp_path / registry_kind) as server:
        yield server


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses, so no blob or tag leaks from one to another."""
    return f"ns/app-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, so no client reads or writes credentials or caches of the real one."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path / "run"))
    monkeypatch.setenv("XDG_DATA_HOME", str(path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path / "config"))
    return path
