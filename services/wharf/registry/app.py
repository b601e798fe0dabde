"""The registry application. The full /v2 API arrives with the registry work (issue 3)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from wharf.storage import DistributedStorage

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def create_app(storage: DistributedStorage) -> FastAPI:
    app = FastAPI(title="Wharf registry", docs_url=None, redoc_url=None)
    app.state.storage = storage

    @app.get("/v2/")
    async def version_check() -> JSONResponse:
        return JSONResponse({}, headers=API_VERSION_HEADER)

    @app.get("/healthz")
    async def health() -> JSONResponse:
        await storage.validate(storage.preferred_locations[:1])
        return JSONResponse({"status": "ok", "locations": storage.locations})

    return app
