"""The switch store and upload pins on real backends: a SQLite file, PostgreSQL, Redis.

Each test opens the store twice, as two edge replicas would (separate pools or clients).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from tests.integration.edge.switch_servers import (  # noqa: F401
    RedisServer,
    pg_url,
    postgres_url,
    redis_session,
    redis_url,
    sqlite_url,
    store_url,
)
from tests.postgres import drop_database
from tests.unit.edge.memory_store import TABLE, TABLE_2, TABLE_3
from wharf.db.engine import Database
from wharf.edge.store import (
    EdgeStores,
    StoreUnavailable,
    TableRecord,
    VersionConflict,
    open_stores,
)
from wharf.edge.store_sql import SqlSwitchStore
from wharf.edge.table_source import PolledTableSource


@pytest.fixture
async def replicas(store_url: str) -> AsyncIterator[tuple[EdgeStores, EdgeStores]]:  # noqa: F811
    first, second = open_stores(store_url), open_stores(store_url)
    await first.switches.store.open()
    await second.switches.store.open()
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_versions_audit_and_rollback(replicas: tuple[EdgeStores, EdgeStores]) -> None:
    one, two = replicas
    before = datetime.now(UTC)
    first = await one.switches.set(TABLE, author="alice", reason="initial")
    second = await two.switches.set(TABLE_2, author="bob", reason="canary orga/app")
    assert (first.version, second.version) == (1, 2)
    assert await one.switches.store.latest_version() == 2
    stored = await one.switches.store.read(2)
    assert stored is not None
    assert (stored.yaml, stored.author, stored.reason) == (TABLE_2, "bob", "canary orga/app")
    assert stored.created_at.tzinfo is not None
    assert before <= stored.created_at <= datetime.now(UTC)
    assert await one.switches.store.read(3) is None

    back = await one.switches.rollback(author="carol", reason="errors on orga/app")
    assert (back.version, back.yaml, back.reason) == (
        3,
        TABLE,
        "rollback to v1: errors on orga/app",
    )

    entries = await two.switches.history(limit=10)
    assert [(e.record.version, e.record.author) for e in entries] == [
        (3, "carol"),
        (2, "bob"),
        (1, "alice"),
    ]
    assert [(e.previous_yaml, e.record.yaml) for e in entries] == [
        (TABLE_2, TABLE),
        (TABLE, TABLE_2),
        (None, TABLE),
    ]
    assert [e.record.version for e in await two.switches.history(limit=1)] == [3]


async def test_concurrent_sets_cannot_share_a_version(
    replicas: tuple[EdgeStores, EdgeStores],
) -> None:
    one, two = replicas
    await one.switches.set(TABLE, author="a", reason="one")
    results = await asyncio.gather(
        one.switches.set(TABLE_2, author="a", reason="from one", expected_version=1),
        two.switches.set(TABLE_3, author="b", reason="from two", expected_version=1),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, TableRecord)]
    losers = [r for r in results if isinstance(r, VersionConflict)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert winners[0].version == 2
    assert losers[0].current == 2
    stored = await two.switches.store.read(2)
    assert stored == winners[0]

    # Without expected_version every change lands, each on a version of its own.
    texts = [TABLE, TABLE_2, TABLE_3] * 2
    records = await asyncio.gather(
        *(
            (one if i % 2 else two).switches.set(text, author=f"w{i}", reason=str(i))
            for i, text in enumerate(texts)
        )
    )
    assert sorted(r.version for r in records) == list(range(3, 9))
    for record in records:
        assert await one.switches.store.read(record.version) == record


async def test_upload_pins_are_shared(store_url: str) -> None:  # noqa: F811
    one, two = open_stores(store_url, upload_ttl=1.0), open_stores(store_url, upload_ttl=1.0)
    try:
        await one.switches.store.open()
        assert await two.sticky.upstream_of("s1") is None  # a miss is not cached...
        await one.sticky.pin("s1", "legacy")
        assert await two.sticky.upstream_of("s1") == "legacy"  # ...so B sees A's pin at once
        await two.sticky.release("s1")
        assert await one.sticky.upstream_of("s1") == "legacy"  # A's own cache: pins never move
        assert await open_stores(store_url).sticky.upstream_of("s1") is None

        await one.sticky.pin("s2", "wharf")
        await asyncio.sleep(1.3)
        assert await two.sticky.upstream_of("s2") is None  # expired in the store
        assert await one.sticky.upstream_of("s2") is None  # and in A's cache
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_change_reaches_another_replica_within_a_second(
    replicas: tuple[EdgeStores, EdgeStores],
) -> None:
    one, two = replicas
    sources = [
        PolledTableSource(stores.switches, bootstrap_yaml=TABLE, interval=0.25)
        for stores in (one, two)
    ]
    for source in sources:
        await source.start()
    try:
        assert [s.current().version for s in sources] == [1, 1]
        await one.switches.set(TABLE_2, author="a", reason="canary")
        started = time.monotonic()
        while sources[1].current().version != 2:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)
        canary = sources[1].current().table.capability("registry-pull").canary
        assert canary is not None
        assert canary.repositories == ("orgb/*", "orga/app")
    finally:
        for source in sources:
            await source.aclose()


async def test_sql_schema_is_wharfs_own(pg_url: str) -> None:  # noqa: F811
    db = Database(pg_url)
    try:
        await SqlSwitchStore(db).open()
        await SqlSwitchStore(db).open()  # checkfirst: a second replica finds the tables
        async with db.writer_engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert sorted(tables) == ["wharf_edge_table", "wharf_edge_upload"]
    finally:
        await db.dispose()


async def test_postgresql_going_away_keeps_the_last_good_table(pg_url: str) -> None:  # noqa: F811
    stores = open_stores(pg_url)
    source = PolledTableSource(stores.switches, bootstrap_yaml=TABLE, interval=0.05)
    await source.start()
    try:
        served = source.current()
        await drop_database(pg_url)  # WITH (FORCE): every connection is cut
        await _until(lambda: source.health()["error"] is not None)
        assert source.current() is served
        await asyncio.sleep(0.2)
        assert source.current() is served
        assert await stores.sticky.upstream_of("any") is None  # logged, answered as a miss
    finally:
        await source.aclose()


async def test_redis_going_away_keeps_the_last_good_table(tmp_path: object) -> None:
    from pathlib import Path

    server = RedisServer(Path(str(tmp_path)))
    server.start()
    stores = open_stores(server.url)
    source = PolledTableSource(stores.switches, bootstrap_yaml=TABLE, interval=0.05)
    try:
        await source.start()
        await stores.switches.set(TABLE_2, author="a", reason="two")
        await _until(lambda: source.current().version == 2)
        served = source.current()
        await stores.sticky.pin("s1", "wharf")
        server.stop()
        await _until(lambda: source.health()["error"] is not None)
        assert source.current() is served
        assert await stores.sticky.upstream_of("s1") == "wharf"  # the local cache still knows
        assert await stores.sticky.upstream_of("s2") is None
        with pytest.raises(StoreUnavailable):
            await stores.switches.set(TABLE_3, author="a", reason="three")

        # Back without its data (no persistence): the replica keeps v2 rather than reseed.
        server.start(port=server.port)
        await _until(lambda: source.health()["error"] is None)
        await asyncio.sleep(0.2)
        assert source.current() is served
        assert await stores.switches.store.latest_version() == 0
        await stores.switches.set(TABLE_3, author="a", reason="after the restart")
        await _until(lambda: source.current().version == 1)  # the store's word is final
        assert source.record is not None
        assert source.record.reason == "after the restart"
    finally:
        await source.aclose()
        server.stop()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://wharf@127.0.0.1:{port}/none",
        "redis://127.0.0.1:{port}/0",
    ],
)
async def test_a_dead_store_at_start(url: str) -> None:
    from tests.postgres import free_port

    dead = url.format(port=free_port())
    with pytest.raises(StoreUnavailable):
        await PolledTableSource(open_stores(dead).switches).start()
    source = PolledTableSource(open_stores(dead).switches, bootstrap_yaml=TABLE, interval=0.05)
    await source.start()
    try:
        assert source.current().version == 0  # the initial table, until the store answers
        assert source.health()["error"] is not None
    finally:
        await source.aclose()


async def _until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
