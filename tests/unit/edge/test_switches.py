"""Switch rules (validation, versions, rollback, audit) and the polled table, on a store in
memory; the real backends run the same operations in tests/integration/edge."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.unit.edge.memory_store import TABLE, TABLE_2, TABLE_3, MemorySwitchStore
from wharf.edge.store import (
    MAX_TABLE_BYTES,
    LocalPins,
    NoSuchVersion,
    StoreUnavailable,
    Switches,
    TableRecord,
    VersionConflict,
    now,
)
from wharf.edge.table import TableError
from wharf.edge.table_source import PolledTableSource
from wharf.logs import RateLimitedLog


@pytest.fixture
def store() -> MemorySwitchStore:
    return MemorySwitchStore()


async def test_set_validates_first_and_reports_every_problem(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    bad = TABLE.replace("owner: legacy", "owner: nowhere").replace("wharf, rep", "ghost, rep")
    with pytest.raises(TableError) as caught:
        await switches.set(bad, author="a", reason="r")
    assert caught.value.problems == [
        "default_owner: unknown upstream 'nowhere'",
        "capabilities.registry-pull.owner: unknown upstream 'nowhere'",
        "capabilities.registry-pull.canary.upstream: unknown upstream 'ghost'",
    ]
    with pytest.raises(TableError, match="not valid YAML"):
        await switches.set("upstreams: [", author="a", reason="r")
    with pytest.raises(TableError, match="larger than"):
        await switches.set("#" * (MAX_TABLE_BYTES + 1), author="a", reason="r")
    with pytest.raises(ValueError, match="reason"):
        await switches.set(TABLE, author="a", reason="  ")
    assert store.records == {}


async def test_versions_are_consecutive_and_conditional(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    first = await switches.set(TABLE, author="alice", reason=" first ")
    assert (first.version, first.author, first.reason) == (1, "alice", "first")
    assert first.created_at.tzinfo is not None
    second = await switches.set(TABLE_2, author="bob", reason="second", expected_version=1)
    assert second.version == 2
    with pytest.raises(VersionConflict) as caught:
        await switches.set(TABLE_3, author="carol", reason="stale", expected_version=1)
    assert (caught.value.expected, caught.value.current) == (1, 2)
    assert (await switches.latest()) == second


async def test_a_lost_race_is_retried_without_expected_version(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    await switches.set(TABLE, author="a", reason="one")
    store.lose_inserts = 2
    record = await switches.set(TABLE_2, author="a", reason="two")
    assert record.version == 4
    assert store.records[4].yaml == TABLE_2
    store.lose_inserts = 1
    with pytest.raises(VersionConflict):  # with expected_version, a lost race is a conflict
        await switches.set(TABLE_3, author="a", reason="three", expected_version=4)


async def test_rollback_stores_the_previous_table_as_a_new_version(
    store: MemorySwitchStore,
) -> None:
    switches = Switches(store)
    with pytest.raises(NoSuchVersion):
        await switches.rollback(author="a", reason="nothing yet")
    await switches.set(TABLE, author="a", reason="one")
    with pytest.raises(NoSuchVersion, match="no version 0"):
        await switches.rollback(author="a", reason="only one version")
    await switches.set(TABLE_2, author="a", reason="two")
    await switches.set(TABLE_3, author="a", reason="three")
    back = await switches.rollback(author="sre", reason="errors on orga")
    assert (back.version, back.yaml, back.reason) == (4, TABLE_2, "rollback to v2: errors on orga")
    further = await switches.rollback(author="sre", reason="", to_version=1)
    assert (further.version, further.yaml, further.reason) == (5, TABLE, "rollback to v1")
    with pytest.raises(NoSuchVersion):
        await switches.rollback(author="sre", reason="x", to_version=5)
    with pytest.raises(VersionConflict):
        await switches.rollback(author="sre", reason="x", expected_version=3)


async def test_history_pairs_each_change_with_the_table_before(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    for text, reason in ((TABLE, "one"), (TABLE_2, "two"), (TABLE_3, "three")):
        await switches.set(text, author="alice", reason=reason)
    entries = await switches.history(limit=2)
    assert [e.record.version for e in entries] == [3, 2]
    assert (entries[0].previous_yaml, entries[0].record.yaml) == (TABLE_2, TABLE_3)
    assert entries[1].previous_yaml == TABLE  # read beyond the limit for the oldest shown
    as_json = entries[0].to_json()
    assert set(as_json) == {
        "version",
        "author",
        "reason",
        "created_at",
        "yaml",
        "previous_yaml",
    }
    assert (await switches.history(limit=10))[-1].previous_yaml is None


async def test_source_seeds_an_empty_store_and_follows_it(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    source = PolledTableSource(switches, bootstrap_yaml=TABLE, interval=0.01)
    await source.start()
    try:
        assert source.current().version == 1
        assert source.record is not None
        assert source.record.author == "bootstrap"
        await switches.set(TABLE_2, author="a", reason="two")
        await _until(lambda: source.current().version == 2)
        assert source.current().table.capability("registry-pull").canary.repositories == (  # type: ignore[union-attr]
            "orgb/*",
            "orga/app",
        )
    finally:
        await source.aclose()
    assert store.closed == 1


async def test_source_keeps_the_last_good_table(
    store: MemorySwitchStore, caplog: pytest.LogCaptureFixture
) -> None:
    switches = Switches(store)
    await switches.set(TABLE, author="a", reason="one")
    source = PolledTableSource(switches, interval=0.01, log_every=60)
    await source.start()
    try:
        served = source.current()
        store.down = True
        await asyncio.sleep(0.1)
        assert source.current() is served
        assert "ConnectionRefusedError" in source.health()["error"]
        unavailable = [r for r in caplog.records if "switch store unavailable" in r.message]
        assert len(unavailable) == 1  # rate-limited: one line, not one per poll
        store.down = False
        await _until(lambda: source.health()["error"] is None)
        assert any("reachable again" in r.message for r in caplog.records)

        # A table this replica cannot apply (written around the admin API, or by a newer
        # Wharf) is skipped; the next good one is taken.
        store.records[2] = TableRecord(2, "upstreams: 5", "x", "bad", now())
        await _until(lambda: source.health()["rejected_version"] == 2)
        assert source.current() is served
        await switches.set(TABLE_3, author="a", reason="three")
        await _until(lambda: source.current().version == 3)
        assert source.health()["rejected_version"] is None

        # An emptied store (a Redis without persistence restarted) does not reset us.
        store.records.clear()
        await asyncio.sleep(0.05)
        assert source.current().version == 3
    finally:
        await source.aclose()


async def test_a_store_rewritten_during_an_outage_is_noticed(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    await switches.set(TABLE, author="a", reason="one")
    source = PolledTableSource(switches, interval=0.01)
    await source.start()
    try:
        store.down = True
        await _until(lambda: source.health()["error"] is not None)
        # The store came back reset, and got a new v1 before the next poll.
        store.records = {1: TableRecord(1, TABLE_2, "b", "after the reset", now())}
        store.down = False
        await _until(lambda: source.record is not None and source.record.author == "b")
        assert source.current().version == 1
    finally:
        await source.aclose()


async def test_a_hanging_store_is_bounded_by_the_timeout(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    await switches.set(TABLE, author="a", reason="one")
    source = PolledTableSource(switches, interval=0.01, timeout=0.05)
    await source.start()
    try:
        store.hang = True
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no answer within"):
            await source.refresh()
        assert time.monotonic() - started < 1
        assert source.current().version == 1
    finally:
        await source.aclose()


async def test_store_down_at_start(store: MemorySwitchStore) -> None:
    store.down = True
    with pytest.raises(StoreUnavailable):
        await PolledTableSource(Switches(store)).start()
    source = PolledTableSource(Switches(store), bootstrap_yaml=TABLE, interval=0.01)
    await source.start()  # serves the initial table as v0 until the store answers
    try:
        assert source.current().version == 0
        assert source.record is None
        store.down = False
        await _until(lambda: source.current().version == 1)
        assert store.records[1].author == "bootstrap"
        assert store.opened == 1
    finally:
        await source.aclose()


async def test_empty_store_without_initial_table(store: MemorySwitchStore) -> None:
    with pytest.raises(RuntimeError, match="empty"):
        await PolledTableSource(Switches(store)).start()
    with pytest.raises(TableError):
        PolledTableSource(Switches(store), bootstrap_yaml="upstreams: {}")


async def test_two_replicas_seeding_at_once_store_one_version(store: MemorySwitchStore) -> None:
    sources = [PolledTableSource(Switches(store), bootstrap_yaml=TABLE) for _ in range(2)]
    await asyncio.gather(*(source.start() for source in sources))
    try:
        assert list(store.records) == [1]
        assert {source.current().version for source in sources} == {1}
    finally:
        for source in sources:
            await source.aclose()


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelimit")
    limited = RateLimitedLog(logger, every=0.05)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for _ in range(10):
            limited.warning("k", "trouble")
        limited.warning("other", "different trouble")
        time.sleep(0.06)
        limited.warning("k", "trouble")
        limited.recovered("k", "fine again")
        limited.recovered("never-failed", "not logged")
    assert [r.getMessage() for r in caplog.records] == [
        "trouble",
        "different trouble",
        "trouble (9 similar messages suppressed)",
        "fine again",
    ]


def test_local_pins() -> None:
    pins = LocalPins(ttl=0.2, size=2)
    assert pins.get("a") is None
    pins.put("a", "legacy")
    assert pins.get("a") == ("legacy", False)
    pins.put("b", "wharf")
    pins.get("a")  # a is now the most recently used
    pins.put("c", "wharf")
    assert pins.get("b") is None
    assert pins.get("a") is not None
    time.sleep(0.12)
    assert pins.get("a") == ("legacy", True)  # past half its life: extend it in the store
    time.sleep(0.1)
    assert pins.get("a") is None
    pins.drop("c")
    assert pins.get("c") is None


async def _until(condition: object, timeout: float = 2.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)
