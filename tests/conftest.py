from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import botocore.session
import pytest

from tests.servers import S3Server, s3_server


def raw_s3_client(server: S3Server) -> Any:
    """A plain synchronous botocore client, to set up and inspect buckets behind the driver."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )


def _bucket_on(name: str) -> Iterator[tuple[S3Server, str]]:
    server = s3_server(name)
    client = raw_s3_client(server)
    bucket = f"wharf-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield server, bucket
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=entry["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session", params=["rgw", "moto"])
def s3(request: pytest.FixtureRequest) -> Iterator[tuple[S3Server, str]]:
    """A reachable S3 server (Ceph RGW, then moto) and a bucket made for this test session."""
    yield from _bucket_on(request.param)


@pytest.fixture(scope="session")
def rgw() -> Iterator[tuple[S3Server, str]]:
    """Ceph RGW only: real S3 that checks signatures."""
    yield from _bucket_on("rgw")


@pytest.fixture(scope="session")
def moto() -> Iterator[tuple[S3Server, str]]:
    """The moto server only (it also answers STS)."""
    yield from _bucket_on("moto")


async def drain(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])
