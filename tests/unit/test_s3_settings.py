from __future__ import annotations

import pytest

from wharf.storage.drivers.s3.settings import (
    build_endpoint_url,
    radosgw_settings,
    s3_settings,
)
from wharf.storage.params import RadosGWStorageParams, S3StorageParams


@pytest.mark.parametrize(
    ("hostname", "port", "secure", "expected"),
    [
        ("somehost.withport:8080", 9090, True, "https://somehost.withport:8080"),
        ("somehost", 9090, True, "https://somehost:9090"),
        ("somehost", None, False, "http://somehost"),
        ("http://somehost", 9090, True, "http://somehost:9090"),
        ("https://somehost:443/", 9090, False, "https://somehost:443/"),
    ],
)
def test_endpoint_builder_matches_quay(
    hostname: str, port: int | None, secure: bool, expected: str
) -> None:
    assert build_endpoint_url(hostname, port, secure) == expected


def s3(**kwargs: object) -> S3StorageParams:
    return S3StorageParams.model_validate({"storage_path": "/r", "s3_bucket": "b", **kwargs})


def test_region_pins_the_aws_endpoint_and_wins_over_endpoint_url() -> None:
    settings = s3_settings(s3(s3_region="eu-west-1", endpoint_url="http://ignored"))
    assert settings.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert settings.is_aws
    china = s3_settings(s3(s3_region="cn-north-1"))
    assert china.endpoint_url == "https://s3.cn-north-1.amazonaws.com.cn"


def test_endpoint_url_then_host() -> None:
    assert s3_settings(s3(endpoint_url="http://minio:9000")).endpoint_url == "http://minio:9000"
    assert s3_settings(s3(host="s3.example", port=8443)).endpoint_url == "https://s3.example:8443"
    assert s3_settings(s3()).endpoint_url is None


def test_s3_defaults() -> None:
    settings = s3_settings(s3(s3_access_key="", s3_secret_key=""))
    assert settings.access_key is None  # empty means the default credential chain
    assert settings.minimum_chunk_size == 5 * 1024 * 1024
    assert settings.maximum_chunk_size == 5 * 1024**3
    assert settings.upload_params == {"ServerSideEncryption": "AES256"}
    assert settings.signature_version == "s3v4"


def test_radosgw_defaults() -> None:
    params = RadosGWStorageParams.model_validate(
        {
            "hostname": "rgw",
            "is_secure": True,
            "storage_path": "/r",
            "access_key": "a",
            "secret_key": "s",
            "bucket_name": "b",
        }
    )
    settings = radosgw_settings(params)
    assert settings.upload_params == {}
    assert settings.maximum_chunk_size == 100 * 1024 * 1024
    assert not settings.is_aws
    assert not settings.presign_with_cors
    no_assembly = radosgw_settings(params.model_copy(update={"server_side_assembly": False}))
    assert no_assembly.timeout_seconds == 600
