"""`wharf serve` settings: mode presets, Quay keys, and precise refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.cli.serve_config import ServeConfigError, build_settings

DATA = Path("/srv/wharf")
STANDALONE = {
    "DB_URI": "postgresql://wharf@db/quay",
    "DISTRIBUTED_STORAGE_CONFIG": {"s3": ["S3Storage", {}]},
}


def settings(mode: str, config: dict[str, object]):  # type: ignore[no-untyped-def]
    return build_settings(mode, config, data_dir=DATA, host="127.0.0.1", port=8080)


def test_mirror_defaults() -> None:
    mirror = settings("mirror", {})
    assert mirror.db_url == "sqlite+aiosqlite:////srv/wharf/wharf.db"
    assert mirror.storage_config["DISTRIBUTED_STORAGE_CONFIG"] == {
        "local": ["LocalStorage", {"storage_path": "/srv/wharf/storage"}]
    }
    assert mirror.public_on_create
    assert mirror.anonymous_access
    assert mirror.bootstraps_admin
    assert mirror.push_anywhere == {"admin"}
    assert mirror.service == "127.0.0.1:8080"
    assert mirror.max_blob_size == 20 * 1024**3
    assert mirror.blob_redirects
    assert (mirror.upload_max_age_minutes, mirror.clean_upload_folder) == (2880, True)
    assert mirror.upload_cleanup_interval_s == 3600


def test_standalone_reads_quay_keys() -> None:
    config = {
        **STANDALONE,
        "SERVER_HOSTNAME": "quay.example",
        "SUPER_USERS": ["root"],
        "FEATURE_ANONYMOUS_ACCESS": False,
        "MAXIMUM_LAYER_SIZE": "512M",
        "WHARF_BLOB_REDIRECTS": False,
        "BLOBUPLOAD_DELETION_DATE_THRESHOLD": 60,
        "CLEAN_BLOB_UPLOAD_FOLDER": False,
        "WHARF_UPLOAD_CLEANUP_INTERVAL": 0,
        "DB_CONNECTION_ARGS": {"max_connections": 7, "stale_timeout": 60},
        "DB_READ_REPLICAS": [{"DB_URI": "postgresql://wharf@replica/quay"}],
    }
    standalone = settings("standalone", config)
    assert standalone.db_url == STANDALONE["DB_URI"]
    assert standalone.reader_url is None  # replicas are used in full mode
    assert not standalone.public_on_create
    assert not standalone.bootstraps_admin
    assert standalone.superusers == {"root"}
    assert standalone.push_anywhere == frozenset()
    assert not standalone.anonymous_access
    assert not standalone.blob_redirects
    assert (standalone.upload_max_age_minutes, standalone.clean_upload_folder) == (60, False)
    assert standalone.upload_cleanup_interval_s == 0
    assert standalone.max_blob_size == 512 * 1024**2
    assert (standalone.pool.pool_size, standalone.pool.max_overflow) == (7, 0)
    assert standalone.service == "quay.example"
    assert settings("full", config).reader_url == "postgresql://wharf@replica/quay"
    public = settings("standalone", {**STANDALONE, "CREATE_PRIVATE_REPO_ON_PUSH": False})
    assert public.public_on_create


@pytest.mark.parametrize(
    ("mode", "config", "message"),
    [
        ("standalone", {}, "standalone mode needs DB_URI"),
        ("full", {"DB_URI": "postgresql://x/y"}, "needs DISTRIBUTED_STORAGE_CONFIG"),
        ("mirror", {"MAXIMUM_LAYER_SIZE": "0G"}, "MAXIMUM_LAYER_SIZE"),
        ("mirror", {"MAXIMUM_LAYER_SIZE": True}, "MAXIMUM_LAYER_SIZE"),
        ("mirror", {"FEATURE_ANONYMOUS_ACCESS": "yes"}, "FEATURE_ANONYMOUS_ACCESS must be"),
        ("mirror", {"SUPER_USERS": "root"}, "SUPER_USERS must be a list"),
        ("mirror", {"DB_CONNECTION_ARGS": {"max_connections": 0}}, "max_connections"),
        ("full", {**STANDALONE, "DB_READ_REPLICAS": [{"URI": "x"}]}, "DB_READ_REPLICAS"),
        ("mirror", {"DB_URI": 5}, "DB_URI must be a string"),
        ("mirror", {"BLOBUPLOAD_DELETION_DATE_THRESHOLD": 0}, "BLOBUPLOAD_DELETION_DATE"),
        ("mirror", {"WHARF_UPLOAD_CLEANUP_INTERVAL": -1}, "WHARF_UPLOAD_CLEANUP_INTERVAL"),
        ("mirror", {"CLEAN_BLOB_UPLOAD_FOLDER": "no"}, "CLEAN_BLOB_UPLOAD_FOLDER must be"),
        ("turbo", {}, "unknown mode"),
    ],
)
def test_refusals_name_the_key(mode: str, config: dict[str, object], message: str) -> None:
    with pytest.raises(ServeConfigError, match=message):
        settings(mode, config)


@pytest.mark.parametrize(
    ("value", "expected"), [("20G", 20 * 1024**3), ("1024", 1024), ("3 MiB", 3 * 1024**2), (99, 99)]
)
def test_sizes(value: object, expected: int) -> None:
    assert settings("mirror", {"MAXIMUM_LAYER_SIZE": value}).max_blob_size == expected
