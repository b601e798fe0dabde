"""DistributedStorage: location dispatch, read-only mode and copying between locations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from wharf.storage import (
    DistributedStorage,
    ReadOnlyStorage,
    StorageConfigError,
    load_storage_config,
)
from wharf.storage.streams import iterate_bytes


def facade(tmp_path: Path, **extra: object) -> DistributedStorage:
    config = {
        "DISTRIBUTED_STORAGE_CONFIG": {
            name: ["LocalStorage", {"storage_path": str(tmp_path / name)}]
            for name in ("us", "eu", "ap")
        },
        "DISTRIBUTED_STORAGE_PREFERENCE": ["eu"],
        **extra,
    }
    return DistributedStorage.from_config(load_storage_config(config))


async def test_first_preferred_location_in_the_set_wins(tmp_path: Path) -> None:
    storage = facade(tmp_path)
    await storage.put_content({"us", "eu"}, "k", b"v")
    assert (tmp_path / "eu" / "k").exists()
    assert not (tmp_path / "us" / "k").exists()


async def test_without_a_preferred_location_the_choice_is_deterministic(tmp_path: Path) -> None:
    storage = facade(tmp_path)
    for _ in range(5):
        await storage.put_content({"us", "ap"}, "k", b"v")
    assert (tmp_path / "ap" / "k").exists()
    assert not (tmp_path / "us").exists()
    assert storage.driver_for(["us", "ap"]).location == "ap"


async def test_unknown_or_empty_locations(tmp_path: Path) -> None:
    storage = facade(tmp_path)
    with pytest.raises(StorageConfigError, match="'mars'"):
        await storage.get_content({"mars"}, "k")
    with pytest.raises(StorageConfigError, match="no storage location"):
        await storage.get_content(set(), "k")


async def test_read_only_mode_refuses_every_write(tmp_path: Path) -> None:
    await facade(tmp_path).put_content({"eu"}, "k", b"v")
    storage = facade(tmp_path, REGISTRY_STATE="readonly")
    assert await storage.get_content({"eu"}, "k") == b"v"
    writes = [
        storage.put_content({"eu"}, "k", b"x"),
        storage.stream_write({"eu"}, "k", iterate_bytes(b"x")),
        storage.remove({"eu"}, "k"),
        storage.initiate_chunked_upload({"eu"}),
        storage.validate({"eu"}),
        storage.clean_partial_uploads({"eu"}, timedelta(days=2)),
        storage.clean_orphaned_multipart_uploads({"eu"}, timedelta(days=1)),
    ]
    for write in writes:
        with pytest.raises(ReadOnlyStorage) as refused:
            await write
        # The refusal names where the write would have gone.
        assert (refused.value.location, refused.value.driver) == ("eu", "LocalStorage")
        assert "location=eu" in str(refused.value)
    with pytest.raises(ReadOnlyStorage) as refused:
        await storage.copy_between("k", "eu", "us")
    assert refused.value.location == "us"
    assert await storage.get_content({"eu"}, "k") == b"v"
    assert not (tmp_path / "us" / "k").exists()


async def test_orphaned_multipart_uploads_through_the_facade(tmp_path: Path) -> None:
    """Local disk has no multipart uploads of its own: nothing to abort, and no error."""
    storage = facade(tmp_path)
    assert await storage.clean_orphaned_multipart_uploads({"us"}, timedelta(0)) == 0


async def test_copy_between_locations(tmp_path: Path) -> None:
    storage = facade(tmp_path)
    await storage.put_content({"eu"}, "sha256/ab/abc", b"layer")
    await storage.copy_between("sha256/ab/abc", "eu", "us")
    assert (tmp_path / "us" / "sha256" / "ab" / "abc").read_bytes() == b"layer"
    with pytest.raises(Exception, match="copying missing from eu to us"):
        await storage.copy_between("missing", "eu", "us")


async def test_chunked_upload_through_the_facade(tmp_path: Path) -> None:
    storage = facade(tmp_path)
    upload_id, metadata = await storage.initiate_chunked_upload({"eu"})
    result = await storage.upload_chunk({"eu"}, upload_id, 0, iterate_bytes(b"abc"), metadata)
    await storage.complete_chunked_upload({"eu"}, upload_id, "done", result.metadata)
    assert await storage.get_content({"eu"}, "done") == b"abc"
    assert await storage.direct_download_url({"eu"}, "done") is None
    assert not storage.supports_resumable_downloads({"eu"})
