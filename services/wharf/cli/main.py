"""`wharf` command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from wharf.storage import (
    DistributedStorage,
    InvalidDigest,
    StorageError,
    content_path,
    load_storage_config,
)

if TYPE_CHECKING:
    from wharf.db.engine import Database

from wharf.cli.edge_commands import add_edge_commands
from wharf.cli.serve_config import ADMIN_USERNAME, MODES, ServeConfigError, build_settings
from wharf.cli.serve_runtime import (
    GRACEFUL_SHUTDOWN_S,
    SERVICES,
    admin_tokens_text,
    edge_table_text,
    run_event_loop,
    serve_all,
)

ADMIN_PASSWORD_ENV = "WHARF_ADMIN_PASSWORD"  # noqa: S105 - the variable's name
ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        result: int = args.handler(args)
    except (StorageError, ConfigFileError, ServeConfigError) as exc:
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
    serve.add_argument(
        "--service",
        choices=SERVICES,
        default="all",
        help="all: the edge in front of every service on one port (default); "
        "registry or edge: one of them alone, for compose and Helm",
    )
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
    add_edge_commands(commands)
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


def admin_password(data_dir: Path, *, has_password: bool) -> str | None:
    """The mirror admin's password: `WHARF_ADMIN_PASSWORD` when set; None (keep it) when the
    admin has one; else the one saved in the data directory, else a new one, saved there with
    mode 0600 and printed once to stderr."""
    from_env = os.environ.get(ADMIN_PASSWORD_ENV)
    if from_env:
        return from_env
    if has_password:
        return None
    path = data_dir / ADMIN_PASSWORD_FILE
    if path.exists():
        saved = path.read_text(encoding="utf-8").strip()
        if saved:
            return saved
    password = secrets.token_urlsafe(18)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    print(
        f"wharf: generated the password of user {ADMIN_USERNAME!r}: {password}\n"
        f"wharf: (saved in {path}, readable by you only; set {ADMIN_PASSWORD_ENV} to choose one)",
        file=sys.stderr,
    )
    return password


async def ensure_admin_user(db: Database, data_dir: Path, *, rounds: int = 12) -> None:
    """Create the `admin` user (verified, bcrypt password) if missing; give it the password of
    `admin_password` when that one does not match the stored hash."""
    from sqlalchemy import select

    from wharf.db.models import User
    from wharf.registry.auth import hash_password, verify_password_async

    async with db.writer() as session:
        user = (
            await session.execute(select(User).where(User.username == ADMIN_USERNAME))
        ).scalar_one_or_none()
        has_password = user is not None and user.password_hash is not None
        password = admin_password(data_dir, has_password=has_password)
        if password is None:
            return
        if user is not None and await verify_password_async(password, user.password_hash):
            return
        hashed = hash_password(password, rounds=rounds)
        if user is None:
            session.add(User(username=ADMIN_USERNAME, password_hash=hashed, verified=True))
        else:
            user.password_hash = hashed
            user.verified = True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

    from wharf.db.engine import Database, DatabaseConfigError
    from wharf.registry.app import create_app, prepare_context
    from wharf.registry.auth import AccessPolicy, load_or_create_signing_key
    from wharf.registry.auth.keys import DEFAULT_KEY_FILENAME
    from wharf.registry.context import RegistryAuth, RegistryContext
    from wharf.registry.upload_cleanup import UploadCleanup

    config = read_config_file(args.config) if args.config else {}
    settings = build_settings(
        args.mode, config, data_dir=args.data_dir, host=args.host, port=args.port
    )
    # The data directory holds the signing key (and in mirror mode the database).
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    args.data_dir.chmod(0o700)
    storage = DistributedStorage.from_config(load_storage_config(settings.storage_config))
    try:
        db = Database(settings.db_url, reader_url=settings.reader_url, pool=settings.pool)
    except (ArgumentError, DatabaseConfigError, ImportError) as exc:
        # Never echo the URL: it may carry a password.
        kind = type(exc).__name__
        raise ServeConfigError(f"DB_URI is not a usable database URL ({kind})") from None
    policy = AccessPolicy(
        superusers=settings.superusers,
        push_anywhere=settings.push_anywhere,
        anonymous_access=settings.anonymous_access,
    )
    key = load_or_create_signing_key(args.data_dir / DEFAULT_KEY_FILENAME)
    auth = RegistryAuth.create(key, service=settings.service, policy=policy)

    if args.service == "edge":
        return _serve_edge(args, config, settings.db_url)

    async def prepare() -> RegistryContext:
        await storage.validate(storage.preferred_locations[:1])
        context = await prepare_context(
            storage, db, public_on_create=settings.public_on_create, auth=auth
        )
        context.max_blob_size = settings.max_blob_size
        context.blob_redirects = settings.blob_redirects
        if settings.bootstraps_admin:
            await ensure_admin_user(db, args.data_dir)
        return context

    async def main() -> int:
        try:
            context = await prepare()
        except (OperationalError, InterfaceError, OSError) as exc:
            reason = getattr(exc, "orig", None) or exc
            raise ServeConfigError(f"cannot use the database: {reason}") from None
        registry = create_app(context)
        print(f"wharf: {args.mode} mode, service {args.service}", file=sys.stderr)
        cleanup = UploadCleanup(
            context,
            older_than=timedelta(minutes=settings.upload_max_age_minutes),
            clean_folder=settings.clean_upload_folder,
        )
        sweeper = None
        if settings.upload_cleanup_interval_s:
            sweeper = asyncio.create_task(cleanup.run_forever(settings.upload_cleanup_interval_s))
        try:
            if args.service == "registry":
                server = uvicorn.Server(
                    uvicorn.Config(
                        registry,
                        host=args.host,
                        port=args.port,
                        log_level="warning",
                        access_log=False,
                        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                    )
                )
                print(f"wharf: registry on http://{args.host}:{args.port}", file=sys.stderr)
                await server.serve()
                return 0
            try:
                table_text, tokens = edge_table_text(config), admin_tokens_text(config)
            except (OSError, ValueError) as exc:
                raise ServeConfigError(f"edge settings: {exc}") from None
            return await serve_all(
                registry,
                db_url=settings.db_url,
                table_text=table_text,
                admin_tokens=tokens,
                host=args.host,
                port=args.port,
            )
        finally:
            if sweeper is not None:
                sweeper.cancel()
                await asyncio.wait([sweeper])
            await db.dispose()
            await storage.aclose()

    return run_event_loop(main)


def _serve_edge(args: argparse.Namespace, config: dict[str, Any], db_url: str) -> int:
    """`wharf serve --service edge`: one edge replica, its table in the configured database
    (or `WHARF_EDGE_STORE`, e.g. a Redis URL), bootstrapped from `WHARF_EDGE_TABLE`."""
    from wharf.cli.edge_commands import EdgeCliError
    from wharf.cli.edge_replica import run_edge

    if not isinstance(config.get("WHARF_EDGE_TABLE"), str):
        raise ServeConfigError("--service edge needs WHARF_EDGE_TABLE (a table file) in --config")
    store = config.get("WHARF_EDGE_STORE") or db_url
    tokens = config.get("WHARF_EDGE_ADMIN_TOKENS_FILE")
    edge_args = argparse.Namespace(
        store=str(store),
        table=Path(config["WHARF_EDGE_TABLE"]),
        host=args.host,
        port=args.port,
        admin_port=None,
        admin_prefix="/_edge",
        admin_token_file=Path(tokens) if isinstance(tokens, str) else None,
        poll_interval=0.25,
        access_log=None,
    )
    try:
        return run_event_loop(lambda: run_edge(edge_args))
    except EdgeCliError as error:
        print(f"wharf: error: {error}", file=sys.stderr)
        return error.code


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
