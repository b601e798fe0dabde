"""Quay's driver names, mapped to their parameter models and (when built) their classes."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError

from wharf.storage import params as p
from wharf.storage.errors import StorageConfigError
from wharf.storage.protocol import StorageDriver


@dataclass(frozen=True, slots=True)
class DriverSpec:
    name: str
    params: type[p.DriverParams]
    implementation: str | None
    """`module:Class`, imported on first use so each backend's client library stays optional."""
    extra: str | None = None
    """The pip extra that brings the backend's client library."""


DRIVERS: dict[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec(
            "LocalStorage", p.LocalStorageParams, "wharf.storage.drivers.local:LocalStorage"
        ),
        DriverSpec("S3Storage", p.S3StorageParams, "wharf.storage.drivers.s3:S3Storage", "s3"),
        DriverSpec(
            "STSS3Storage", p.STSS3StorageParams, "wharf.storage.drivers.s3:STSS3Storage", "s3"
        ),
        DriverSpec(
            "RadosGWStorage",
            p.RadosGWStorageParams,
            "wharf.storage.drivers.s3:RadosGWStorage",
            "s3",
        ),
        DriverSpec(
            "RHOCSStorage", p.RHOCSStorageParams, "wharf.storage.drivers.s3:RHOCSStorage", "s3"
        ),
        DriverSpec(
            "IBMCloudStorage",
            p.IBMCloudStorageParams,
            "wharf.storage.drivers.s3:IBMCloudStorage",
            "s3",
        ),
        DriverSpec("GoogleCloudStorage", p.GoogleCloudStorageParams, None),
        DriverSpec("SwiftStorage", p.SwiftStorageParams, None),
        DriverSpec("AzureStorage", p.AzureStorageParams, None),
        DriverSpec("CloudFrontedS3Storage", p.CloudFrontedS3StorageParams, None),
        DriverSpec("CloudFlareStorage", p.CloudFlareStorageParams, None),
        DriverSpec("AkamaiS3Storage", p.AkamaiS3StorageParams, None),
        DriverSpec("MultiCDNStorage", p.MultiCDNStorageParams, None),
    )
}


def validate_params(location: str, driver: str, raw: dict[str, Any]) -> p.DriverParams:
    """Check one location's parameters against its driver's model; errors name all three."""
    spec = _spec(location, driver)
    try:
        return spec.params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        parameter = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "missing":
            problem = "missing required parameter"
        elif first["type"] == "extra_forbidden":
            problem = "unknown parameter"
        else:
            problem = f"invalid value: {first['msg']}"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise StorageConfigError(
            f"{problem} {parameter!r}{more}", location=location, driver=driver, parameter=parameter
        ) from None


def build_driver(location: str, driver: str, raw: dict[str, Any]) -> StorageDriver:
    """Construct the driver for one `DISTRIBUTED_STORAGE_CONFIG` entry."""
    spec = _spec(location, driver)
    params = validate_params(location, driver, raw)
    if spec.implementation is None:
        raise StorageConfigError(
            f"storage driver {driver} is known but not implemented in this release of Wharf; "
            "a later release adds it (see docs/configuration.md for the drivers available)",
            location=location,
            driver=driver,
        )
    module_name, _, class_name = spec.implementation.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install wharf[{spec.extra}]" if spec.extra else ""
        raise StorageConfigError(
            f"cannot load driver {driver}: {exc}{hint}", location=location, driver=driver
        ) from exc
    cls = getattr(module, class_name)
    return cast(StorageDriver, cls(location, params))


def _spec(location: str, driver: str) -> DriverSpec:
    spec = DRIVERS.get(driver)
    if spec is None:
        known = ", ".join(sorted(DRIVERS))
        raise StorageConfigError(
            f"unknown storage driver {driver!r}; known drivers: {known}",
            location=location,
            driver=driver,
        )
    return spec
