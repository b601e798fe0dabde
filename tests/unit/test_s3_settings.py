from __future__ import annotations

import pytest
from pydantic import ValidationError

from wharf.storage.drivers.s3.settings import (
    build_endpoint_url,
    ibm_settings,
    radosgw_settings,
    s3_settings,
    sts_settings,
)
from wharf.storage.params import (
    IBMCloudStorageParams,
    RadosGWStorageParams,
    S3StorageParams,
    STSS3StorageParams,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/quay"


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


def ibm(**kwargs: object) -> IBMCloudStorageParams:
    return IBMCloudStorageParams.model_validate(
        {
            "hostname": "s3.eu.cloud-object-storage.appdomain.cloud",
            "is_secure": True,
            "storage_path": "/r",
            "access_key": "a",
            "secret_key": "s",
            "bucket_name": "b",
            **kwargs,
        }
    )


def test_ibm_defaults() -> None:
    settings = ibm_settings(ibm())
    assert settings.endpoint_url == "https://s3.eu.cloud-object-storage.appdomain.cloud"
    assert settings.minimum_chunk_size == 5 * 1024 * 1024
    assert settings.maximum_chunk_size == 100 * 1024 * 1024  # Quay's 100 MB copy parts
    assert settings.upload_params == {}  # unlike S3Storage, Quay sends no SSE header here
    assert not settings.is_aws
    assert settings.region is None
    assert settings.signature_version is None
    assert settings.server_side_assembly
    assert settings.presign_with_cors  # only RadosGW withholds URLs from CORS callers
    assert (settings.access_key, settings.secret_key) == ("a", "s")


def test_ibm_overrides() -> None:
    settings = ibm_settings(ibm(maximum_chunk_size_mb=50, port=8443, is_secure=False))
    assert settings.maximum_chunk_size == 50 * 1024 * 1024
    assert settings.endpoint_url == "http://s3.eu.cloud-object-storage.appdomain.cloud:8443"


def sts(**kwargs: object) -> STSS3StorageParams:
    return STSS3StorageParams.model_validate(
        {
            "storage_path": "/r",
            "s3_bucket": "b",
            "sts_role_arn": ROLE_ARN,
            "sts_user_access_key": "user",
            "sts_user_secret_key": "secret",
            **kwargs,
        }
    )


def test_sts_settings_hold_no_s3_keys() -> None:
    settings = sts_settings(sts())
    # The S3 client signs only with what AssumeRole returns, never with static keys.
    assert (settings.access_key, settings.secret_key, settings.session_token) == (None,) * 3
    assert settings.sts_role_arn == ROLE_ARN
    assert (settings.sts_access_key, settings.sts_secret_key) == ("user", "secret")
    assert settings.upload_params == {"ServerSideEncryption": "AES256"}
    assert settings.maximum_chunk_size == 5 * 1024**3
    assert settings.minimum_chunk_size == 5 * 1024 * 1024
    assert settings.signature_version == "s3v4"
    assert settings.endpoint_url is None
    assert settings.region is None
    assert settings.is_aws


@pytest.mark.parametrize("key", ["s3_access_key", "s3_secret_key", "aws_session_token", "host"])
def test_sts_params_refuse_static_s3_keys(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        sts(**{key: "x"})


def test_sts_region_pins_the_aws_endpoint() -> None:
    settings = sts_settings(sts(s3_region="eu-west-1", endpoint_url="http://ignored"))
    assert settings.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert settings.region == "eu-west-1"
    assert sts_settings(sts(s3_region="cn-northwest-1")).endpoint_url == (
        "https://s3.cn-northwest-1.amazonaws.com.cn"
    )


def test_sts_endpoint_url_and_overrides() -> None:
    settings = sts_settings(
        sts(
            endpoint_url="http://minio:9000",
            maximum_chunk_size_gb=1,
            sts_user_access_key="",
            sts_user_secret_key="",
        )
    )
    assert settings.endpoint_url == "http://minio:9000"
    assert settings.region is None
    assert not settings.is_aws
    assert settings.maximum_chunk_size == 1024**3
    # Empty user keys mean the default credential chain signs the AssumeRole call.
    assert (settings.sts_access_key, settings.sts_secret_key) == (None, None)
