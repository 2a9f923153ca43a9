"""Schema migrations of the service database (Alembic, scripts in `forecast.db.migrations`).

`ensure_schema` brings a database to the newest revision the first time a process opens it (every
component that opens the database calls it, so `forecast db upgrade` is needed only to migrate ahead of
time or to see what would change); `upgrade` is that command. Concurrent first openings are serialised:
a PostgreSQL advisory lock, SQLite's ``BEGIN IMMEDIATE`` write lock.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, func, select, text

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "current_revision", "ensure_schema", "head_revision", "upgrade"]

#: the folder of the Alembic scripts
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# PostgreSQL advisory lock id serialising migrations (arbitrary, fixed)
_MIGRATE_LOCK = 0x70DE1_0000
_done: set[tuple[str, str | None]] = set()
_done_lock = threading.Lock()


def _config(schema: str | None, connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["schema"] = schema
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision of the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()


def current_revision(write: Engine, schema: str | None = None) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with write.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return ctx.get_current_revision()


def upgrade(write: Engine, *, dialect: str, schema: str | None = None, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the database behind ``write`` to ``revision``; returns (revision before, revision after).

    ``write`` is the engine writes go through (on PostgreSQL with the schema translate map of
    ``schema``; on SQLite one that begins transactions ``IMMEDIATE``, see `forecast.db.engine`)."""
    from alembic import command

    with write.connect() as conn:
        with conn.begin():
            if dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATE_LOCK)))
                if schema is not None:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            else:
                conn.execute(text("SELECT 1"))  # take SQLite's write lock now (BEGIN IMMEDIATE)
            before = _current(conn, schema)
            command.upgrade(_config(schema, conn), revision)
            after = _current(conn, schema)
    if before != after:
        log.info("service database migrated from %s to %s", before or "empty", after)
    return before, after


def _current(conn, schema: str | None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table_schema": schema}).get_current_revision()


def ensure_schema(write: Engine, *, dialect: str, schema: str | None = None) -> None:
    """Bring the database to the head revision, once per process and database (a cheap check after)."""
    key = (write.url.render_as_string(hide_password=False), schema)
    with _done_lock:
        if key in _done:
            return
    if current_revision(write, schema) != head_revision():
        upgrade(write, dialect=dialect, schema=schema)
    with _done_lock:
        _done.add(key)
