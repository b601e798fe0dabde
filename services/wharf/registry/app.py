"""The registry application: the OCI Distribution API under /v2/ on Quay's tables."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sql_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wharf.db.engine import Database
from wharf.db.migrate import upgrade_database
from wharf.db.seed import ensure_storage_locations
from wharf.logs import RateLimitedLog
from wharf.registry import db_errors
from wharf.registry.access import authenticate
from wharf.registry.auth import SigningKey
from wharf.registry.context import RegistryAuth, RegistryContext
from wharf.registry.errors import (
    BLOB_UNKNOWN,
    BLOB_UPLOAD_INVALID,
    TOO_MANY_REQUESTS,
    UNSUPPORTED,
    ErrorCode,
    RegistryError,
)
from wharf.registry.listing_routes import router as listing_router
from wharf.registry.manifest_routes import router as manifest_router
from wharf.registry.routes import router
from wharf.registry.token_route import router as token_router
from wharf.storage import (
    BackendUnavailable,
    DistributedStorage,
    InvalidUpload,
    ObjectNotFound,
    StorageError,
)

API_VERSION_RAW = (b"docker-distribution-api-version", b"registry/2.0")
UNAVAILABLE = ErrorCode("UNAVAILABLE", 503, "storage is unavailable; retry later")
DATABASE_UNAVAILABLE = ErrorCode("UNAVAILABLE", 503, "the database is unavailable; retry later")
STORAGE_FAILED = ErrorCode("UNKNOWN", 500, "storage refused the operation")
UNEXPECTED = ErrorCode("UNKNOWN", 500, "unexpected server error")
NO_ROUTE = ErrorCode("UNSUPPORTED", 404, "no such endpoint")
log = logging.getLogger("wharf.registry")


class ApiVersionHeader:
    """Adds `Docker-Distribution-API-Version` to every response. A plain ASGI middleware:
    Starlette's `BaseHTTPMiddleware` wraps every body read in task groups, measurably slow."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), API_VERSION_RAW]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


async def prepare_context(
    storage: DistributedStorage,
    db: Database,
    *,
    public_on_create: bool,
    auth: RegistryAuth | None = None,
) -> RegistryContext:
    """Create Wharf's schema when the database is empty, and the storage location rows.

    Without `auth`, tokens are signed by a key that lives as long as the process and the
    default policy applies: nothing is reachable without a token this process issued.
    """
    await upgrade_database(db.url)
    async with db.writer() as session:
        location_ids = await ensure_storage_locations(session, storage.locations)
    if auth is None:
        auth = RegistryAuth.create(SigningKey.generate(), service="wharf")
    return RegistryContext(storage, db, location_ids, auth=auth, public_on_create=public_on_create)


def create_app(context: RegistryContext) -> FastAPI:
    app = FastAPI(title="Wharf registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.registry = context
    app.state.storage = context.storage

    app.add_middleware(ApiVersionHeader)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Response:
        return exc.response(head=request.method == "HEAD")

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> Response:
        head = request.method == "HEAD"
        if isinstance(exc, ObjectNotFound):
            return RegistryError(BLOB_UNKNOWN, {"reason": "missing from storage"}).response(
                head=head
            )
        if isinstance(exc, InvalidUpload):
            return RegistryError(BLOB_UPLOAD_INVALID, {"reason": exc.message}).response(head=head)
        log.warning("storage failure: %s", exc)
        if isinstance(exc, BackendUnavailable):
            return RegistryError(UNAVAILABLE, headers={"Retry-After": "5"}).response(head=head)
        return RegistryError(STORAGE_FAILED).response(head=head)

    # Busy-pool warnings come in floods: one line per 10 s says it.
    busy_pool_log = RateLimitedLog(log, every=10.0)

    @app.exception_handler(sql_errors.TimeoutError)
    async def pool_exhausted(request: Request, exc: sql_errors.TimeoutError) -> Response:
        # Every pooled connection stayed busy for the pool timeout: the registry is saturated.
        busy_pool_log.warning("pool", "database pool exhausted")
        error = RegistryError(
            TOO_MANY_REQUESTS,
            {"reason": "every database connection is busy"},
            headers={"Retry-After": "1"},
        )
        return error.response(head=request.method == "HEAD")

    @app.exception_handler(sql_errors.DBAPIError)
    @app.exception_handler(OSError)
    async def database_error(request: Request, exc: Exception) -> Response:
        head = request.method == "HEAD"
        if not db_errors.is_unavailable(exc):
            log.error(
                "unexpected failure on %s %s: %s",
                request.method,
                request.url.path,
                db_errors.describe(exc),
            )
            return RegistryError(UNEXPECTED).response(head=head)
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            db_errors.describe(exc),
        )
        return RegistryError(DATABASE_UNAVAILABLE, headers={"Retry-After": "5"}).response(head=head)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Paths and methods no route serves: still the registry's error format.
        code = UNSUPPORTED if exc.status_code == 405 else NO_ROUTE
        detail = {"method": request.method, "path": request.url.path}
        error = RegistryError(code, detail, status=exc.status_code, headers=dict(exc.headers or {}))
        return error.response(head=request.method == "HEAD")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # Still a registry error body, never a traceback; the exception is logged by the server.
        log.error("unexpected failure on %s %s: %r", request.method, request.url.path, exc)
        return RegistryError(UNEXPECTED).response(head=request.method == "HEAD")

    @app.get("/v2/")
    async def version_check(request: Request) -> JSONResponse:
        authenticate(request)
        return JSONResponse({})

    @app.get("/healthz")
    async def health() -> JSONResponse:
        await context.storage.validate(context.storage.preferred_locations[:1])
        return JSONResponse({"status": "ok", "locations": context.storage.locations})

    app.include_router(token_router)
    app.include_router(listing_router)
    app.include_router(manifest_router)
    app.include_router(router)
    return app
