"""Constructor parameters of Quay's 13 storage drivers, with Quay's names and defaults.

Each model forbids unknown keys, so a typo in `DISTRIBUTED_STORAGE_CONFIG` is a start-up error
(Quay passes them as keyword arguments and fails with a bare TypeError, or silently falls back to
an in-memory fake for an unknown driver name).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class DriverParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStorageParams(DriverParams):
    storage_path: str


class S3StorageParams(DriverParams):
    storage_path: str
    s3_bucket: str
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    host: str | None = None
    port: int | None = None
    endpoint_url: str | None = None
    maximum_chunk_size_gb: float = 5
    minimum_chunk_size_mb: float = 5
    aws_session_token: str | None = None
    signature_version: str = "s3v4"


class STSS3StorageParams(DriverParams):
    storage_path: str
    s3_bucket: str
    sts_role_arn: str | None = None
    sts_user_access_key: str | None = None
    sts_user_secret_key: str | None = None
    s3_region: str | None = None
    endpoint_url: str | None = None
    maximum_chunk_size_gb: float | None = None
    signature_version: str = "s3v4"


class RadosGWStorageParams(DriverParams):
    hostname: str
    is_secure: bool
    storage_path: str
    access_key: str
    secret_key: str
    bucket_name: str
    region_name: str | None = None
    signature_version: str | None = None
    port: int | None = None
    minimum_chunk_size_mb: float = 5
    maximum_chunk_size_mb: float = 100
    server_side_assembly: bool = True


class RHOCSStorageParams(RadosGWStorageParams):
    pass


class IBMCloudStorageParams(DriverParams):
    hostname: str
    is_secure: bool
    storage_path: str
    access_key: str
    secret_key: str
    bucket_name: str
    port: int | None = None
    maximum_chunk_size_mb: float | None = None
    signature_version: str | None = None


class GoogleCloudStorageParams(DriverParams):
    storage_path: str
    access_key: str
    secret_key: str
    bucket_name: str
    boto_timeout: float = 60
    minimum_chunk_size_mb: float | None = None
    signature_version: str | None = None


class _S3Extras(DriverParams):
    """The S3Storage keyword arguments that the CDN drivers pass through."""

    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    host: str | None = None
    port: int | None = None
    endpoint_url: str | None = None
    maximum_chunk_size_gb: float = 5
    minimum_chunk_size_mb: float = 5
    aws_session_token: str | None = None
    signature_version: str = "s3v4"


class CloudFrontedS3StorageParams(_S3Extras):
    cloudfront_distribution_domain: str
    cloudfront_key_id: str
    cloudfront_privatekey_filename: str
    storage_path: str
    s3_bucket: str
    s3_region: str
    cloudfront_distribution_org_overrides: dict[str, str] | None = None


class CloudFlareStorageParams(_S3Extras):
    cloudflare_domain: str
    cloudflare_privatekey_filename: str
    storage_path: str
    s3_bucket: str
    s3_region: str


class AkamaiS3StorageParams(_S3Extras):
    akamai_domain: str
    akamai_shared_secret: str
    storage_path: str
    s3_bucket: str
    s3_region: str


class MultiCDNStorageParams(DriverParams):
    storage_config: dict[str, Any]
    providers: dict[str, Any]
    default_provider: str
    rules: list[dict[str, Any]]


class SwiftStorageParams(DriverParams):
    swift_container: str
    storage_path: str
    auth_url: str
    swift_user: str
    swift_password: str
    auth_version: int | str | None = None
    os_options: dict[str, Any] | None = None
    ca_cert_path: str | None = None
    temp_url_key: str | None = None
    simple_path_concat: bool = False
    connect_timeout: float | None = None
    retry_count: int | str | None = None
    retry_on_ratelimit: bool = True


class AzureStorageParams(DriverParams):
    azure_container: str
    storage_path: str
    azure_account_name: str
    azure_account_key: str | None = None
    sas_token: str | None = None
    endpoint_url: str | None = None
