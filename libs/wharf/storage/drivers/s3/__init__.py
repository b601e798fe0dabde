"""Quay's S3-family drivers: S3, STS-assumed-role S3, RadosGW, RHOCS (NooBaa/ODF), IBM COS."""

from __future__ import annotations

from wharf.storage.drivers.s3.driver import S3FamilyDriver
from wharf.storage.drivers.s3.settings import (
    ibm_settings,
    radosgw_settings,
    s3_settings,
    sts_settings,
)
from wharf.storage.params import (
    IBMCloudStorageParams,
    RadosGWStorageParams,
    RHOCSStorageParams,
    S3StorageParams,
    STSS3StorageParams,
)


class S3Storage(S3FamilyDriver):
    driver_name = "S3Storage"

    def __init__(self, location: str, params: S3StorageParams) -> None:
        super().__init__(location, s3_settings(params))


class STSS3Storage(S3FamilyDriver):
    driver_name = "STSS3Storage"

    def __init__(self, location: str, params: STSS3StorageParams) -> None:
        super().__init__(location, sts_settings(params))


class RadosGWStorage(S3FamilyDriver):
    driver_name = "RadosGWStorage"

    def __init__(self, location: str, params: RadosGWStorageParams) -> None:
        super().__init__(location, radosgw_settings(params))


class RHOCSStorage(RadosGWStorage):
    driver_name = "RHOCSStorage"

    def __init__(self, location: str, params: RHOCSStorageParams) -> None:
        super().__init__(location, params)


class IBMCloudStorage(S3FamilyDriver):
    driver_name = "IBMCloudStorage"

    def __init__(self, location: str, params: IBMCloudStorageParams) -> None:
        super().__init__(location, ibm_settings(params))


__all__ = ["IBMCloudStorage", "RHOCSStorage", "RadosGWStorage", "S3Storage", "STSS3Storage"]
