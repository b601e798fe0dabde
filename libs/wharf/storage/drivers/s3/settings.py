"""How each S3-family driver turns Quay's parameters into one connection description."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wharf.storage.params import (
    IBMCloudStorageParams,
    RadosGWStorageParams,
    S3StorageParams,
    STSS3StorageParams,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
AWS_CHINA_REGIONS = ("cn-north-1", "cn-northwest-1")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    storage_path: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    signature_version: str | None = None
    minimum_chunk_size: int = 5 * MiB
    maximum_chunk_size: int = 5 * GiB
    """Largest single server-side copy part (`UploadPartCopy`)."""
    upload_params: dict[str, Any] = field(default_factory=dict)
    server_side_assembly: bool = True
    timeout_seconds: float = 60
    presign_with_cors: bool = True
    """RadosGW answers no CORS, so Quay gives no direct URL when the caller needs CORS."""
    sts_role_arn: str | None = None
    sts_access_key: str | None = None
    sts_secret_key: str | None = None

    @property
    def is_aws(self) -> bool:
        return self.endpoint_url is None or ".amazonaws.com" in self.endpoint_url


def aws_endpoint(region: str) -> str:
    suffix = ".cn" if region in AWS_CHINA_REGIONS else ""
    return f"https://s3.{region}.amazonaws.com{suffix}"


def build_endpoint_url(hostname: str, port: int | None, is_secure: bool) -> str:
    """Quay's rule: an explicit scheme beats `is_secure`, a port in the hostname beats `port`."""
    url = hostname
    if not url.startswith(("http://", "https://")):
        url = ("https://" if is_secure else "http://") + url
    if port is not None and not url.rsplit(":", 1)[-1].strip(" /").isdigit():
        url = f"{url}:{port}"
    return url


def _empty_as_none(value: str | None) -> str | None:
    return value or None


def s3_settings(params: S3StorageParams) -> S3Settings:
    # Quay: a region pins the AWS endpoint and then `endpoint_url`/`host` are ignored.
    if params.s3_region:
        endpoint: str | None = aws_endpoint(params.s3_region)
    elif params.endpoint_url:
        endpoint = params.endpoint_url
    elif params.host:
        endpoint = build_endpoint_url(params.host, params.port, is_secure=True)
    else:
        endpoint = None
    return S3Settings(
        bucket=params.s3_bucket,
        storage_path=params.storage_path,
        endpoint_url=endpoint,
        region=params.s3_region,
        access_key=_empty_as_none(params.s3_access_key),
        secret_key=_empty_as_none(params.s3_secret_key),
        session_token=_empty_as_none(params.aws_session_token),
        signature_version=params.signature_version,
        minimum_chunk_size=int(params.minimum_chunk_size_mb * MiB),
        maximum_chunk_size=int(params.maximum_chunk_size_gb * GiB),
        upload_params={"ServerSideEncryption": "AES256"},
    )


def sts_settings(params: STSS3StorageParams) -> S3Settings:
    if params.s3_region:
        endpoint: str | None = aws_endpoint(params.s3_region)
    else:
        endpoint = params.endpoint_url
    return S3Settings(
        bucket=params.s3_bucket,
        storage_path=params.storage_path,
        endpoint_url=endpoint,
        region=params.s3_region,
        signature_version=params.signature_version,
        maximum_chunk_size=int((params.maximum_chunk_size_gb or 5) * GiB),
        upload_params={"ServerSideEncryption": "AES256"},
        sts_role_arn=params.sts_role_arn,
        sts_access_key=_empty_as_none(params.sts_user_access_key),
        sts_secret_key=_empty_as_none(params.sts_user_secret_key),
    )


def radosgw_settings(params: RadosGWStorageParams) -> S3Settings:
    return S3Settings(
        bucket=params.bucket_name,
        storage_path=params.storage_path,
        endpoint_url=build_endpoint_url(params.hostname, params.port, params.is_secure),
        region=params.region_name,
        access_key=params.access_key,
        secret_key=params.secret_key,
        signature_version=params.signature_version,
        minimum_chunk_size=int(params.minimum_chunk_size_mb * MiB),
        maximum_chunk_size=int(params.maximum_chunk_size_mb * MiB),
        server_side_assembly=params.server_side_assembly,
        timeout_seconds=60 if params.server_side_assembly else 600,
        presign_with_cors=False,
    )


def ibm_settings(params: IBMCloudStorageParams) -> S3Settings:
    return S3Settings(
        bucket=params.bucket_name,
        storage_path=params.storage_path,
        endpoint_url=build_endpoint_url(params.hostname, params.port, params.is_secure),
        access_key=params.access_key,
        secret_key=params.secret_key,
        signature_version=params.signature_version,
        maximum_chunk_size=int((params.maximum_chunk_size_mb or 100) * MiB),
    )
