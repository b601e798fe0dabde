"""Fixtures of this package only. `topology` is module-scoped: the tests of one module share
one set of servers and keep apart by repository and organisation names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import home  # noqa: F401 - the same isolated HOME for skopeo
from tests.integration.edge_migration.topology import Topology, module_topology


@pytest.fixture(scope="module")
def topology(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """Legacy, wharf and two edge replicas, started once per test module."""
    yield from module_topology(tmp_path_factory, request.module.__name__.rpartition(".")[2])
