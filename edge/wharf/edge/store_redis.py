"""The switch store and upload pins in Redis.

Keys, under a prefix (default `wharf:edge`):
- `<prefix>:table:latest`  the newest version (a decimal string); the poller's one GET.
- `<prefix>:table:<N>`     a hash: yaml, author, reason, created_at (ISO 8601, UTC).
- `<prefix>:upload:<id>`   the upstream of an upload session, with a TTL.

A version is stored by a Lua script, which Redis runs atomically: it writes version N only
if `latest` is still N - 1, which is the conditional insert the SQL store gets from its
primary key. Without persistence (`--save ''`) a restarted Redis is empty; replicas keep
serving what they hold (see `table_source.PolledTableSource._seed`), and the next `set`
starts over at 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from wharf.edge.state import PUSH_STICKINESS_S
from wharf.edge.store import (
    EdgeStores,
    LocalPins,
    StoreUnavailable,
    Switches,
    TableRecord,
    log,
)
from wharf.logs import RateLimitedLog

_INSERT = """
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
if latest ~= tonumber(ARGV[1]) - 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], 'yaml', ARGV[2], 'author', ARGV[3], 'reason', ARGV[4],
           'created_at', ARGV[5])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def _unavailable(error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")


class RedisSwitchStore:
    kind = "redis"

    def __init__(self, client: Redis, *, prefix: str = "wharf:edge") -> None:
        self.client = client
        self.prefix = prefix
        self._latest = f"{prefix}:table:latest"
        self._script = client.register_script(_INSERT)
        self._closed = False

    def _key(self, version: int) -> str:
        return f"{self.prefix}:table:{version}"

    async def open(self) -> None:
        """Nothing to create; a PING makes a wrong URL fail at start-up."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as error:
            raise _unavailable(error) from error

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.client.aclose()

    async def latest_version(self) -> int:
        try:
            found = await self.client.get(self._latest)
        except (RedisError, OSError) as error:
            raise _unavailable(error) from error
        return int(found or 0)

    async def read(self, version: int) -> TableRecord | None:
        try:
            # decode_responses=True gives str keys and values; redis-py's types cannot know.
            fields: dict[str, str] = await self.client.hgetall(self._key(version))  # type: ignore[assignment]
        except (RedisError, OSError) as error:
            raise _unavailable(error) from error
        return _record(version, fields)

    async def read_recent(self, limit: int) -> list[TableRecord]:
        latest = await self.latest_version()
        versions = list(range(latest, max(0, latest - limit), -1))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for version in versions:
                    pipe.hgetall(self._key(version))
                answers = await pipe.execute()
        except (RedisError, OSError) as error:
            raise _unavailable(error) from error
        records = (_record(v, fields) for v, fields in zip(versions, answers, strict=True))
        return [record for record in records if record is not None]

    async def insert(self, record: TableRecord) -> bool:
        try:
            stored = await self._script(
                keys=[self._latest, self._key(record.version)],
                args=[
                    record.version,
                    record.yaml,
                    record.author,
                    record.reason,
                    record.created_at.isoformat(),
                ],
            )
        except (RedisError, OSError) as error:
            raise _unavailable(error) from error
        return bool(stored)


def _record(version: int, fields: dict[str, str]) -> TableRecord | None:
    if not fields or "yaml" not in fields:
        return None
    return TableRecord(
        version=version,
        yaml=fields["yaml"],
        author=fields.get("author", ""),
        reason=fields.get("reason", ""),
        created_at=datetime.fromisoformat(fields["created_at"]),
    )


class RedisStickyUploads:
    """`StickyUploads` as Redis keys with a TTL, with a local cache in front (failures are
    logged and answered like a miss, as in `SqlStickyUploads`)."""

    def __init__(self, client: Redis, *, prefix: str = "wharf:edge", ttl: float) -> None:
        self.client, self.prefix, self.ttl = client, prefix, ttl
        self._local = LocalPins(ttl)
        self._log = RateLimitedLog(log)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:upload:{session_id}"

    async def pin(self, session_id: str, upstream: str) -> None:
        self._local.put(session_id, upstream)
        try:
            await self.client.set(self._key(session_id), upstream, ex=int(self.ttl))
        except (RedisError, OSError) as error:
            self._log.warning("pin", f"cannot store upload pin: {_unavailable(error)}")

    async def upstream_of(self, session_id: str) -> str | None:
        cached = self._local.get(session_id)
        if cached is not None:
            upstream, stale = cached
            if stale:
                self._local.put(session_id, upstream)
                try:
                    await self.client.expire(self._key(session_id), int(self.ttl))
                except (RedisError, OSError) as error:
                    self._log.warning("pin", f"cannot extend upload pin: {_unavailable(error)}")
            return upstream
        try:
            found: Any = await self.client.get(self._key(session_id))
        except (RedisError, OSError) as error:
            self._log.warning("lookup", f"cannot read upload pins: {_unavailable(error)}")
            return None
        if found is None:
            return None
        self._local.put(session_id, str(found))
        return str(found)

    async def release(self, session_id: str) -> None:
        self._local.drop(session_id)
        try:
            await self.client.delete(self._key(session_id))
        except (RedisError, OSError) as error:
            self._log.warning("release", f"cannot remove upload pin: {_unavailable(error)}")


def connect_redis(url: str, *, prefix: str, upload_ttl: float) -> EdgeStores:
    # Short socket timeouts: a Redis that hangs must not stall the poller or a request for
    # long (the poller also bounds each round with its own timeout).
    client = Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0
    )
    return EdgeStores(
        Switches(RedisSwitchStore(client, prefix=prefix)),
        RedisStickyUploads(client, prefix=prefix, ttl=upload_ttl),
        RedisStickyUploads(client, prefix=prefix, ttl=PUSH_STICKINESS_S),
    )
