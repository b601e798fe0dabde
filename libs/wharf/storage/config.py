"""Quay's storage configuration keys, read and checked with precise messages.

`DISTRIBUTED_STORAGE_CONFIG` maps a location id to `[DriverName, {params}]`. A parameter value
may be given indirectly, so secrets stay out of the config file: `{env: VAR}` reads an
environment variable and `{file: PATH}` the contents of a file (trailing newline removed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.storage.errors import StorageConfigError
from wharf.storage.registry import validate_params


@dataclass(frozen=True)
class LocationConfig:
    location: str
    driver: str
    params: dict[str, Any]


@dataclass(frozen=True)
class StorageConfig:
    locations: dict[str, LocationConfig]
    preference: list[str]
    default_locations: list[str] = field(default_factory=list)
    readonly: bool = False


def load_storage_config(config: Mapping[str, Any]) -> StorageConfig:
    """Read the storage keys of a Quay `config.yaml` mapping; raise `StorageConfigError`."""
    raw_locations = config.get("DISTRIBUTED_STORAGE_CONFIG")
    if not isinstance(raw_locations, Mapping) or not raw_locations:
        raise StorageConfigError(
            "DISTRIBUTED_STORAGE_CONFIG must be a non-empty mapping of location -> "
            "[DriverName, {parameters}]",
            parameter="DISTRIBUTED_STORAGE_CONFIG",
        )
    locations = {str(name): _location(str(name), entry) for name, entry in raw_locations.items()}
    preference = _location_list(config, "DISTRIBUTED_STORAGE_PREFERENCE", locations)
    defaults = _location_list(config, "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS", locations)
    state = config.get("REGISTRY_STATE", "normal")
    if state not in ("normal", "readonly"):
        raise StorageConfigError(
            f"REGISTRY_STATE must be 'normal' or 'readonly', not {state!r}",
            parameter="REGISTRY_STATE",
        )
    return StorageConfig(
        locations=locations,
        preference=preference or list(locations),
        default_locations=defaults,
        readonly=state == "readonly",
    )


def _location(name: str, entry: Any) -> LocationConfig:
    if (
        not isinstance(entry, list | tuple)
        or len(entry) != 2
        or not isinstance(entry[0], str)
        or not isinstance(entry[1], Mapping)
    ):
        raise StorageConfigError(
            "each location must be a two-element list [DriverName, {parameters}]",
            location=name,
            parameter="DISTRIBUTED_STORAGE_CONFIG",
        )
    driver = entry[0]
    params = {
        str(key): resolve_value(value, location=name, driver=driver, parameter=str(key))
        for key, value in entry[1].items()
    }
    validate_params(name, driver, params)
    return LocationConfig(name, driver, params)


def resolve_value(value: Any, *, location: str, driver: str, parameter: str) -> Any:
    """Replace `{env: VAR}` and `{file: PATH}` with what they point at."""
    if not (
        isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("env", "file")
    ):
        return value
    ((kind, reference),) = value.items()
    if kind == "env":
        if str(reference) not in os.environ:
            raise StorageConfigError(
                f"environment variable {reference!r} is not set",
                location=location,
                driver=driver,
                parameter=parameter,
            )
        return os.environ[str(reference)]
    try:
        return Path(str(reference)).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise StorageConfigError(
            f"cannot read {reference!r}: {exc.strerror}",
            location=location,
            driver=driver,
            parameter=parameter,
        ) from None


def _location_list(
    config: Mapping[str, Any], key: str, locations: Mapping[str, LocationConfig]
) -> list[str]:
    value = config.get(key) or []
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise StorageConfigError(f"{key} must be a list of location ids", parameter=key)
    unknown = [item for item in value if item not in locations]
    if unknown:
        raise StorageConfigError(
            f"{key} names unknown location(s) {', '.join(map(repr, unknown))}; "
            f"configured: {', '.join(locations)}",
            parameter=key,
        )
    return list(value)
