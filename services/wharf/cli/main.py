"""`wharf` command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from wharf.storage import (
    DistributedStorage,
    InvalidDigest,
    StorageError,
    content_path,
    load_storage_config,
)

MODES = ("mirror", "standalone", "full")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        result: int = args.handler(args)
    except (StorageError, ConfigFileError) as exc:
        print(f"wharf: error: {exc}", file=sys.stderr)
        return 2
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wharf", description="Wharf: a container registry platform compatible with Quay."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run Wharf (edge and services) in one process")
    serve.add_argument("--mode", choices=MODES, default="mirror")
    serve.add_argument("--config", type=Path, help="Quay-style config.yaml; overrides the preset")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", type=Path, default=Path("wharf-data"))
    serve.set_defaults(handler=_serve)

    storage = commands.add_parser("storage", help="inspect and check storage configuration")
    storage_commands = storage.add_subparsers(title="storage commands", metavar="COMMAND")
    validate = storage_commands.add_parser(
        "validate", help="build every configured location and write a probe object to it"
    )
    validate.add_argument("--config", type=Path, required=True)
    validate.set_defaults(handler=_storage_validate)
    path = storage_commands.add_parser("path", help="print the object key of a blob digest")
    path.add_argument("digest")
    path.set_defaults(handler=_storage_path)
    return parser


class ConfigFileError(Exception):
    pass


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigFileError(f"{path} must hold a mapping of configuration keys")
    return loaded


def mirror_config(data_dir: Path) -> dict[str, Any]:
    return {
        "DISTRIBUTED_STORAGE_CONFIG": {
            "local": ["LocalStorage", {"storage_path": str(data_dir / "storage")}]
        },
        "DISTRIBUTED_STORAGE_PREFERENCE": ["local"],
    }


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from wharf.db.engine import Database
    from wharf.registry.app import create_app, prepare_context
    from wharf.registry.context import RegistryContext

    config = mirror_config(args.data_dir)
    if args.config:
        config.update(read_config_file(args.config))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    storage = DistributedStorage.from_config(load_storage_config(config))
    db_url = str(config.get("DB_URI") or f"sqlite+aiosqlite:///{args.data_dir / 'wharf.db'}")
    db = Database(db_url)

    async def prepare() -> RegistryContext:
        await storage.validate(storage.preferred_locations[:1])
        context = await prepare_context(storage, db, public_on_create=args.mode == "mirror")
        await db.dispose()  # pools are bound to this loop; uvicorn's loop opens fresh ones
        return context

    app = create_app(asyncio.run(prepare()))
    print(f"wharf: serving {args.mode} mode on http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _storage_validate(args: argparse.Namespace) -> int:
    storage = DistributedStorage.from_config(load_storage_config(read_config_file(args.config)))

    async def check() -> int:
        failures = 0
        try:
            for location in storage.locations:
                try:
                    await storage.validate([location])
                    print(f"{location}: ok")
                except StorageError as exc:
                    failures += 1
                    print(f"{location}: FAILED: {exc}")
        finally:
            await storage.aclose()
        return 1 if failures else 0

    return asyncio.run(check())


def _storage_path(args: argparse.Namespace) -> int:
    try:
        print(content_path(args.digest))
    except InvalidDigest as exc:
        print(f"wharf: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
