"""Flexible checksums (botocore >= 1.36) stay on for AWS and off, unless required, elsewhere.

S3-compatible servers (RGW, IBM COS, NooBaa, MinIO...) reject or mishandle the CRC headers
that botocore now sends by default, so every non-AWS endpoint gets `when_required`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from tests.unit.fake_http import RecordedRequest, fake_backend
from wharf.storage import build_driver
from wharf.storage.drivers.s3.driver import S3FamilyDriver

S3_KEYS = {"storage_path": "/r", "s3_bucket": "b", "s3_access_key": "a", "s3_secret_key": "s"}
STS_KEYS = {
    "storage_path": "/r",
    "s3_bucket": "b",
    "sts_role_arn": "arn:aws:iam::123456789012:role/quay",
    "sts_user_access_key": "user",
    "sts_user_secret_key": "secret",
}
RGW_KEYS = {
    "hostname": "rgw.example",
    "is_secure": True,
    "storage_path": "/r",
    "access_key": "a",
    "secret_key": "s",
    "bucket_name": "b",
}

AWS_DRIVERS: list[tuple[str, dict[str, Any]]] = [
    ("S3Storage", S3_KEYS),  # no endpoint: botocore's AWS default
    ("S3Storage", {**S3_KEYS, "s3_region": "eu-west-1"}),
    ("S3Storage", {**S3_KEYS, "endpoint_url": "https://s3.eu-west-1.amazonaws.com"}),
    ("STSS3Storage", {**STS_KEYS, "s3_region": "us-west-2"}),
]
COMPATIBLE_DRIVERS: list[tuple[str, dict[str, Any]]] = [
    ("S3Storage", {**S3_KEYS, "endpoint_url": "http://minio:9000"}),
    ("S3Storage", {**S3_KEYS, "host": "s3.example", "port": 8443}),
    ("STSS3Storage", {**STS_KEYS, "endpoint_url": "http://minio:9000"}),
    ("RadosGWStorage", RGW_KEYS),
    ("RHOCSStorage", RGW_KEYS),
    ("IBMCloudStorage", {**RGW_KEYS, "hostname": "s3.eu.cloud-object-storage.appdomain.cloud"}),
]
CHECKSUM_OPTIONS = ("request_checksum_calculation", "response_checksum_validation")


def config_of(driver_name: str, params: dict[str, Any]) -> AioConfig:
    """The client configuration the driver would open with (building it connects nowhere)."""
    driver = build_driver("loc", driver_name, params)
    assert isinstance(driver, S3FamilyDriver)
    return driver.connection._config()


@pytest.fixture(autouse=True)
def no_checksum_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment and the shared config file also set these; only the driver's may count.
    for name in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


async def effective(config: AioConfig) -> tuple[str, str]:
    """What botocore resolves the options to once a client is created with `config`."""
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="s",
        config=config,
    ) as client:
        request, response = (getattr(client.meta.config, name) for name in CHECKSUM_OPTIONS)
        return request, response


@pytest.mark.parametrize(("driver_name", "params"), AWS_DRIVERS)
async def test_aws_keeps_botocores_default_checksums(
    driver_name: str, params: dict[str, Any]
) -> None:
    config = config_of(driver_name, params)
    assert [getattr(config, option) for option in CHECKSUM_OPTIONS] == [None, None]
    assert await effective(config) == ("when_supported", "when_supported")


@pytest.mark.parametrize(("driver_name", "params"), COMPATIBLE_DRIVERS)
async def test_s3_compatible_endpoints_send_checksums_only_when_required(
    driver_name: str, params: dict[str, Any]
) -> None:
    config = config_of(driver_name, params)
    assert [getattr(config, option) for option in CHECKSUM_OPTIONS] == ["when_required"] * 2
    assert await effective(config) == ("when_required", "when_required")


def checksum_headers(request: RecordedRequest) -> dict[str, str]:
    return {
        name: value
        for name, value in request.headers.items()
        if name.startswith("x-amz-checksum-") or name == "x-amz-sdk-checksum-algorithm"
    }


async def test_no_checksum_headers_reach_an_s3_compatible_server() -> None:
    async with fake_backend(b"200 OK", b"") as backend:
        # The control: botocore's own default does send them, so the check below means something.
        async with get_session().create_client(
            "s3",
            endpoint_url=backend.endpoint,
            region_name="us-east-1",
            aws_access_key_id="a",
            aws_secret_access_key="s",
        ) as client:
            await client.put_object(Bucket="b", Key="k", Body=b"hello")
        assert checksum_headers(backend.requests[-1])

        driver = build_driver("rgw", "RadosGWStorage", {**RGW_KEYS, "hostname": backend.endpoint})
        await driver.put_content("k", b"hello")
        await driver.aclose()
    put = backend.requests[-1]
    assert put.method == "PUT"
    assert checksum_headers(put) == {}
