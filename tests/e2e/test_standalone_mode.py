"""`wharf serve --mode standalone|full` on PostgreSQL: database users, private repositories,
a read replica in full mode, and precise refusals of a config it cannot run with."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.registries import Registry, bearer_token, wharf_bin
from tests.postgres import create_database, drop_database, postgres_url  # noqa: F401
from tests.servers import unavailable
from wharf.db.engine import Database
from wharf.db.models import User
from wharf.registry.auth import hash_password

USER = "alice"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def add_user(url: str, username: str, password: str) -> None:
    async with Database(url) as db, db.writer() as session:
        hashed = hash_password(password, rounds=4)
        session.add(User(username=username, password_hash=hashed, verified=True))


def write_config(path: Path, db_url: str, storage: Path, **extra: object) -> Path:
    config = {
        "DB_URI": db_url,
        "DISTRIBUTED_STORAGE_CONFIG": {"disk": ["LocalStorage", {"storage_path": str(storage)}]},
        "DISTRIBUTED_STORAGE_PREFERENCE": ["disk"],
        "SERVER_HOSTNAME": "registry.example",
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def push_and_pull(registry: Registry, repo: str) -> None:
    token = bearer_token(registry, f"repository:{repo}:pull,push")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=registry.url, headers=headers, timeout=30) as client:
        layer, config = b"standalone layer", b'{"architecture":"amd64","os":"linux"}'
        for blob in (layer, config):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            created = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=blob)
            assert created.status_code == 201, created.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
        assert client.get(f"/v2/{repo}/manifests/v1").content == manifest


@pytest.mark.parametrize("mode", ["standalone", "full"])
async def test_modes_on_postgresql(
    mode: str,
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = await create_database(postgres_url, prefix=f"wharf_{mode}")
    try:
        extra: dict[str, object] = {}
        if mode == "full":
            # The primary itself stands in for the replica: the wiring is what is tested.
            extra["DB_READ_REPLICAS"] = [{"DB_URI": url}]
        config = write_config(tmp_path / "config.yaml", url, tmp_path / "storage", **extra)
        registry = Registry("wharf", tmp_path / "run", mode=mode, config_file=config)
        registry.username = USER
        with registry:
            await add_user(url, USER, registry.password)
            await asyncio.to_thread(push_and_pull, registry, f"{USER}/app")
            # Repositories a push creates are private: an anonymous token grants no pull.
            anonymous = bearer_token(registry, f"repository:{USER}/app:pull", anonymous=True)
            refused = httpx.get(
                f"{registry.url}/v2/{USER}/app/manifests/v1",
                headers={"Authorization": f"Bearer {anonymous}"},
            )
            assert refused.status_code == 401
            # No bootstrap admin in these modes.
            assert not (tmp_path / "run" / "wharf-data" / "admin-password").exists()
    finally:
        await drop_database(url)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "standalone mode needs DB_URI in the --config file"),
        ({"DB_URI": "postgresql://x@127.0.0.1:9/db"}, "needs DISTRIBUTED_STORAGE_CONFIG"),
        (
            {
                "DB_URI": "notaurl:hunter2",
                "DISTRIBUTED_STORAGE_CONFIG": {"d": ["LocalStorage", {"storage_path": "/tmp"}]},
            },
            "DB_URI is not a usable database URL",
        ),
        (
            {
                "DB_URI": "postgresql://x:hunter2@127.0.0.1:9/db",
                "DISTRIBUTED_STORAGE_CONFIG": {"d": ["LocalStorage", {"storage_path": "/tmp"}]},
                "MAXIMUM_LAYER_SIZE": "lots",
            },
            "MAXIMUM_LAYER_SIZE must be a positive size",
        ),
    ],
)
def test_unusable_config_is_a_clear_error(
    config: dict[str, object], message: str, tmp_path: Path
) -> None:
    binary = wharf_bin()
    if binary is None:
        unavailable("the wharf command")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            str(binary),
            "serve",
            "--mode",
            "standalone",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
