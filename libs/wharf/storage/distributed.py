"""Many locations behind one facade: Quay's `DistributedStorage`, location-aware.

Every call names the set of locations that hold (or should hold) the object; the facade uses
the first preferred location in that set, else the lowest-sorted one (Quay picks at random;
a deterministic choice makes reads repeatable and tests exact).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from datetime import timedelta

from wharf.storage.config import StorageConfig
from wharf.storage.errors import ReadOnlyStorage, StorageConfigError, StorageError
from wharf.storage.protocol import (
    ChunkResult,
    ChunkTap,
    DownloadContext,
    JSONDict,
    ObjectInfo,
    StorageDriver,
)
from wharf.storage.registry import build_driver

Locations = Collection[str]


class DistributedStorage:
    def __init__(
        self,
        drivers: Mapping[str, StorageDriver],
        preferred_locations: list[str] | None = None,
        default_locations: list[str] | None = None,
        readonly: bool = False,
    ) -> None:
        if not drivers:
            raise StorageConfigError("at least one storage location is required")
        self.drivers = dict(drivers)
        self.preferred_locations = list(preferred_locations or self.drivers)
        self.default_locations = list(default_locations or [])
        self.readonly = readonly
        for name in [*self.preferred_locations, *self.default_locations]:
            if name not in self.drivers:
                raise StorageConfigError(f"unknown storage location {name!r}", location=name)

    @classmethod
    def from_config(cls, config: StorageConfig) -> DistributedStorage:
        drivers = {
            name: build_driver(name, entry.driver, entry.params)
            for name, entry in config.locations.items()
        }
        return cls(drivers, config.preference, config.default_locations, config.readonly)

    @property
    def locations(self) -> list[str]:
        return list(self.drivers)

    def driver_for(self, locations: Locations, *, write: bool = False) -> StorageDriver:
        if write and self.readonly:
            raise self._read_only(locations)
        if not locations:
            raise StorageConfigError("no storage location given for this object")
        unknown = [name for name in locations if name not in self.drivers]
        if unknown:
            raise StorageConfigError(
                f"unknown storage location {unknown[0]!r}", location=unknown[0]
            )
        target = self._target(locations)
        assert target is not None  # every location is known and there is at least one
        return self.drivers[target]

    def _read_only(self, locations: Locations) -> ReadOnlyStorage:
        """The refusal of a write, naming where it would have gone (the location and its
        driver) when the target is known."""
        target = self._target(locations)
        return ReadOnlyStorage(
            "the registry is in read-only mode; writes are refused",
            location=target,
            driver=self.drivers[target].driver_name if target else None,
        )

    def _target(self, locations: Locations) -> str | None:
        """The location `driver_for` picks from `locations`; None if none is configured."""
        known = [name for name in locations if name in self.drivers]
        for name in self.preferred_locations:
            if name in known:
                return name
        return sorted(known)[0] if known else None

    # -- reads -----------------------------------------------------------------------------

    async def get_content(self, locations: Locations, path: str) -> bytes:
        return await self.driver_for(locations).get_content(path)

    def stream_read(
        self, locations: Locations, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.driver_for(locations).stream_read(path, offset, length)

    async def exists(self, locations: Locations, path: str) -> bool:
        return await self.driver_for(locations).exists(path)

    async def stat(self, locations: Locations, path: str) -> ObjectInfo:
        return await self.driver_for(locations).stat(path)

    async def get_checksum(self, locations: Locations, path: str) -> str:
        return await self.driver_for(locations).get_checksum(path)

    def supports_resumable_downloads(self, locations: Locations) -> bool:
        return self.driver_for(locations).supports_resumable_downloads()

    async def direct_download_url(
        self,
        locations: Locations,
        path: str,
        *,
        expires_in: int = 600,
        context: DownloadContext | None = None,
        head: bool = False,
        requires_cors: bool = False,
    ) -> str | None:
        return await self.driver_for(locations).direct_download_url(
            path, expires_in=expires_in, context=context, head=head, requires_cors=requires_cors
        )

    # -- writes ----------------------------------------------------------------------------

    async def put_content(self, locations: Locations, path: str, content: bytes) -> None:
        await self.driver_for(locations, write=True).put_content(path, content)

    async def stream_write(
        self,
        locations: Locations,
        path: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        tap: ChunkTap | None = None,
    ) -> int:
        return await self.driver_for(locations, write=True).stream_write(
            path, chunks, content_type=content_type, content_encoding=content_encoding, tap=tap
        )

    async def remove(self, locations: Locations, path: str) -> None:
        await self.driver_for(locations, write=True).remove(path)

    async def validate(self, locations: Locations) -> None:
        await self.driver_for(locations, write=True).validate()

    async def initiate_chunked_upload(self, locations: Locations) -> tuple[str, JSONDict]:
        return await self.driver_for(locations, write=True).initiate_chunked_upload()

    async def upload_chunk(
        self,
        locations: Locations,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        metadata: JSONDict,
        *,
        length: int | None = None,
        tap: ChunkTap | None = None,
    ) -> ChunkResult:
        driver = self.driver_for(locations, write=True)
        return await driver.upload_chunk(
            upload_id, offset, chunks, metadata, length=length, tap=tap
        )

    async def complete_chunked_upload(
        self, locations: Locations, upload_id: str, final_path: str, metadata: JSONDict
    ) -> None:
        driver = self.driver_for(locations, write=True)
        await driver.complete_chunked_upload(upload_id, final_path, metadata)

    async def cancel_chunked_upload(
        self, locations: Locations, upload_id: str, metadata: JSONDict
    ) -> None:
        await self.driver_for(locations, write=True).cancel_chunked_upload(upload_id, metadata)

    async def clean_partial_uploads(self, locations: Locations, older_than: timedelta) -> int:
        return await self.driver_for(locations, write=True).clean_partial_uploads(older_than)

    async def clean_orphaned_multipart_uploads(
        self, locations: Locations, older_than: timedelta
    ) -> int:
        driver = self.driver_for(locations, write=True)
        return await driver.clean_orphaned_multipart_uploads(older_than)

    async def copy_between(self, path: str, source: str, destination: str) -> None:
        """Copy one object from one location to another (replication)."""
        if self.readonly:
            raise self._read_only([destination])
        src = self.driver_for([source])
        dst = self.driver_for([destination])
        try:
            await src.copy_to(dst, path)
        except StorageError as exc:
            exc.message = f"copying {path} from {source} to {destination} failed: {exc.message}"
            raise

    async def aclose(self) -> None:
        await asyncio.gather(*(driver.aclose() for driver in self.drivers.values()))
