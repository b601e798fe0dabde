"""Wharf's metadata layer: Quay's registry tables, engines and sessions, and migrations.

- `wharf.db.models`: SQLAlchemy models of Quay's tables (names, types, constraints are Quay's).
- `wharf.db.engine.Database`: writer and optional reader engines, bounded pools, sessions.
- `wharf.db.migrate.upgrade_database`: create/upgrade Wharf's schema; leaves Quay's alone
  (not re-exported here, so that `python -m wharf.db.migrate` runs cleanly).
- `wharf.db.seed`: Quay's seed rows and storage locations.
"""

from wharf.db.engine import Database, DatabaseConfigError, PoolSettings, async_url
from wharf.db.seed import ensure_seed_rows, ensure_storage_locations

__all__ = [
    "Database",
    "DatabaseConfigError",
    "PoolSettings",
    "async_url",
    "ensure_seed_rows",
    "ensure_storage_locations",
]
