"""What `wharf serve` runs with: a mode preset, overridden by a Quay-style config file.

Modes:
- `mirror`: SQLite and local disk under the data directory, anonymous pulls, repositories
  public when a push creates them, the bootstrap user `admin` who may push anywhere.
- `standalone`: the config file names the database (`DB_URI`) and the storage
  (`DISTRIBUTED_STORAGE_CONFIG`); users are the database's; repositories are private when a
  push creates them unless `CREATE_PRIVATE_REPO_ON_PUSH` is false (Quay's default and key).
- `full`: standalone, plus a read replica when `DB_READ_REPLICAS` lists one.

Quay keys read: `DB_URI`, `DB_READ_REPLICAS` (`[{DB_URI: ...}]`, the first is used),
`DB_CONNECTION_ARGS` (`max_connections`, `stale_timeout`), `SERVER_HOSTNAME`, `SUPER_USERS`,
`FEATURE_ANONYMOUS_ACCESS`, `CREATE_PRIVATE_REPO_ON_PUSH`, `MAXIMUM_LAYER_SIZE` (`20G`), and
`BLOBUPLOAD_DELETION_DATE_THRESHOLD` (minutes, 2880), `CLEAN_BLOB_UPLOAD_FOLDER` (true) and
the storage keys. Wharf's own: `WHARF_BLOB_REDIRECTS` (default true),
`WHARF_UPLOAD_CLEANUP_INTERVAL` (seconds between abandoned-upload sweeps, 3600; 0: never).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.db.engine import PoolSettings

MODES = ("mirror", "standalone", "full")
ADMIN_USERNAME = "admin"
DEFAULT_MAX_LAYER_SIZE = 20 * 1024**3
_SIZE_RE = re.compile(r"(\d+)\s*([KMGT]?)i?B?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class ServeConfigError(ValueError):
    """A configuration `wharf serve` cannot run with; the message names the key."""


@dataclass(frozen=True)
class ServeSettings:
    mode: str
    storage_config: dict[str, Any]
    db_url: str
    reader_url: str | None
    pool: PoolSettings
    service: str
    superusers: frozenset[str]
    push_anywhere: frozenset[str]
    anonymous_access: bool
    public_on_create: bool
    max_blob_size: int
    blob_redirects: bool
    upload_max_age_minutes: int = 60 * 48
    clean_upload_folder: bool = True
    upload_cleanup_interval_s: int = 3600

    @property
    def bootstraps_admin(self) -> bool:
        return self.mode == "mirror"


def mirror_storage(data_dir: Path) -> dict[str, Any]:
    return {
        "DISTRIBUTED_STORAGE_CONFIG": {
            "local": ["LocalStorage", {"storage_path": str(data_dir / "storage")}]
        },
        "DISTRIBUTED_STORAGE_PREFERENCE": ["local"],
    }


def build_settings(
    mode: str, config: dict[str, Any], *, data_dir: Path, host: str, port: int
) -> ServeSettings:
    """Validate `config` (the file's keys, possibly empty) for `mode`."""
    if mode not in MODES:
        raise ServeConfigError(f"unknown mode {mode!r} (choose one of {', '.join(MODES)})")
    mirror = mode == "mirror"
    if not mirror:
        for key in ("DB_URI", "DISTRIBUTED_STORAGE_CONFIG"):
            if not config.get(key):
                raise ServeConfigError(f"{mode} mode needs {key} in the --config file")
    storage = (
        dict(config)
        if "DISTRIBUTED_STORAGE_CONFIG" in config
        else {
            **config,
            **mirror_storage(data_dir),
        }
    )
    db_url = _string(config, "DB_URI") or f"sqlite+aiosqlite:///{data_dir / 'wharf.db'}"
    return ServeSettings(
        mode=mode,
        storage_config=storage,
        db_url=db_url,
        reader_url=_read_replica(config) if mode == "full" else None,
        pool=_pool(config),
        service=_string(config, "SERVER_HOSTNAME") or f"{host}:{port}",
        superusers=frozenset(_string_list(config, "SUPER_USERS")),
        push_anywhere=frozenset({ADMIN_USERNAME}) if mirror else frozenset(),
        anonymous_access=_bool(config, "FEATURE_ANONYMOUS_ACCESS", True),
        public_on_create=not _bool(config, "CREATE_PRIVATE_REPO_ON_PUSH", not mirror),
        max_blob_size=_size(config, "MAXIMUM_LAYER_SIZE", DEFAULT_MAX_LAYER_SIZE),
        blob_redirects=_bool(config, "WHARF_BLOB_REDIRECTS", True),
        upload_max_age_minutes=_count(config, "BLOBUPLOAD_DELETION_DATE_THRESHOLD", 60 * 48),
        clean_upload_folder=_bool(config, "CLEAN_BLOB_UPLOAD_FOLDER", True),
        upload_cleanup_interval_s=_count(
            config, "WHARF_UPLOAD_CLEANUP_INTERVAL", 3600, allow_zero=True
        ),
    )


def _string(config: dict[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServeConfigError(f"{key} must be a string, not {type(value).__name__}")
    return value


def _string_list(config: dict[str, Any], key: str) -> list[str]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ServeConfigError(f"{key} must be a list of strings")
    return value


def _bool(config: dict[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ServeConfigError(f"{key} must be true or false, not {value!r}")
    return value


def _count(config: dict[str, Any], key: str, default: int, *, allow_zero: bool = False) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        least = "0" if allow_zero else "1"
        raise ServeConfigError(f"{key} must be a whole number of at least {least}, not {value!r}")
    return value


def _size(config: dict[str, Any], key: str, default: int) -> int:
    """Quay's size strings (`20G`, `512M`) or a plain byte count."""
    value = config.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ServeConfigError(f"{key} must be a positive size such as 20G, not {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def _read_replica(config: dict[str, Any]) -> str | None:
    replicas = config.get("DB_READ_REPLICAS") or []
    if not isinstance(replicas, list):
        raise ServeConfigError("DB_READ_REPLICAS must be a list of {DB_URI: ...} entries")
    for entry in replicas:
        if not isinstance(entry, dict) or not isinstance(entry.get("DB_URI"), str):
            raise ServeConfigError("each DB_READ_REPLICAS entry needs a DB_URI string")
    return str(replicas[0]["DB_URI"]) if replicas else None


def _pool(config: dict[str, Any]) -> PoolSettings:
    args = config.get("DB_CONNECTION_ARGS") or {}
    if not isinstance(args, dict):
        raise ServeConfigError("DB_CONNECTION_ARGS must be a mapping")
    size, recycle = args.get("max_connections", 20), args.get("stale_timeout", 1800)
    for name, value in (("max_connections", size), ("stale_timeout", recycle)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ServeConfigError(f"DB_CONNECTION_ARGS.{name} must be a positive integer")
    # Quay's max_connections is a hard bound: no overflow beyond it.
    return PoolSettings(pool_size=size, max_overflow=0, pool_recycle=recycle)
