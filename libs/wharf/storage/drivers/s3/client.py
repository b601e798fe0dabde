"""One lazily opened aiobotocore client per driver, and the single S3 error mapping."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import get_session
from botocore import exceptions as boto
from botocore.parsers import ResponseParserError

from wharf.storage.drivers.s3.settings import S3Settings
from wharf.storage.errors import (
    BackendError,
    BackendUnavailable,
    InvalidUpload,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
UPLOAD_CODES = {"NoSuchUpload", "EntityTooSmall", "InvalidPart", "InvalidPartOrder"}
AUTH_CODES = {
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "Forbidden",
}
RETRYABLE_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "500",
    "502",
    "503",
    "504",
    "Throttling",
}
STS_SESSION_NAME = "quay"
POOL_CONNECTIONS = 32


def error_code(exc: boto.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, bucket: str, path: str | None) -> StorageError:
    """Map one aiobotocore/aiohttp failure to the library's hierarchy."""
    if isinstance(exc, boto.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code in NOT_FOUND_CODES:
            return ObjectNotFound(f"no such object: {path}")
        if code == "NoSuchBucket":
            return StorageConfigError(f"bucket {bucket!r} does not exist")
        if code in UPLOAD_CODES:
            return InvalidUpload(f"the backend refused the upload: {code}: {message}")
        if code in AUTH_CODES:
            return StorageConfigError(f"the backend refused our credentials: {code}: {message}")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in RETRYABLE_CODES or status >= 500:
            return BackendUnavailable(f"the backend failed: {code}: {message}")
        return BackendError(f"the backend refused the request: {code}: {message}")
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return StorageConfigError(f"no usable S3 credentials: {exc}")
    if isinstance(exc, ResponseParserError):
        return BackendUnavailable(f"the backend answered something that is not S3: {exc}")
    if isinstance(exc, KeyError):
        # Well-formed XML that is not S3's (a proxy's XHTML page) parses, then lacks what S3
        # and STS always send: botocore's query parser, or our reading of an answer, misses it.
        return BackendUnavailable(f"the backend answered something that is not S3: no {exc}")
    if isinstance(
        exc,
        boto.EndpointConnectionError
        | boto.ConnectionError
        | boto.HTTPClientError
        | boto.ResponseStreamingError
        | boto.IncompleteReadError
        | aiohttp.ClientError
        | TimeoutError
        | ConnectionError,
    ):
        return BackendUnavailable(f"cannot reach the backend: {exc}")
    if isinstance(exc, boto.ParamValidationError):
        return BackendError(f"invalid request: {exc}")
    return BackendError(f"{type(exc).__name__}: {exc}")


class S3Connection:
    """Opens the client on first use (checking the bucket) and closes it on `aclose`."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: S3Client | None = None
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    async def client(self) -> S3Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._open()
        return self._client

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()

    def _config(self) -> AioConfig:
        settings = self.settings
        options: dict[str, Any] = {
            "connect_timeout": settings.timeout_seconds,
            "read_timeout": settings.timeout_seconds,
            "retries": {"mode": "standard", "max_attempts": 3},
            "max_pool_connections": POOL_CONNECTIONS,
        }
        if settings.signature_version:
            options["signature_version"] = settings.signature_version
        if settings.endpoint_url is not None:
            # An explicit endpoint means path-style addressing, as Quay's boto3 ends up using.
            options["s3"] = {"addressing_style": "path"}
        if not settings.is_aws:
            # S3-compatible servers reject or mishandle the newer flexible checksums.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return AioConfig(**options)

    async def _open(self) -> S3Client:
        settings = self.settings
        session = get_session()
        access_key, secret_key, token = (
            settings.access_key,
            settings.secret_key,
            settings.session_token,
        )
        if settings.sts_role_arn:
            access_key, secret_key, token = None, None, None
            # As Quay does: refreshable assume-role credentials installed into the session.
            session._credentials = AioDeferredRefreshableCredentials(  # type: ignore[attr-defined]
                refresh_using=self._assume_role_refresher(), method="sts-assume-role"
            )
        client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region or "us-east-1",
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                aws_session_token=token,
                config=self._config(),
            )
        )
        try:
            await client.head_bucket(Bucket=settings.bucket)
        except Exception as exc:
            await self.aclose()
            error = translate(exc, settings.bucket, None)
            if isinstance(exc, boto.ClientError) and error_code(exc) in NOT_FOUND_CODES:
                error = StorageConfigError(f"bucket {settings.bucket!r} does not exist")
            raise error from exc
        return client

    def _assume_role_refresher(self) -> Any:
        settings = self.settings

        async def refresh() -> dict[str, Any]:
            # A session of its own: the S3 session's credentials are the ones being refreshed.
            async with get_session().create_client(
                "sts",
                region_name=settings.region or "us-east-1",
                aws_access_key_id=settings.sts_access_key,
                aws_secret_access_key=settings.sts_secret_key,
            ) as sts:
                response = await sts.assume_role(
                    RoleArn=str(settings.sts_role_arn), RoleSessionName=STS_SESSION_NAME
                )
            credentials = response["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        return refresh
