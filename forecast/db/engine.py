"""The service database's engines and the base of the components on it (review queue, model registry,
API users, monitoring).

- `make_engines`: the engines for one database URL. SQLite: the folder is created, WAL journal (the
  switch retried while another connection holds the lock: processes opening a brand-new file at
  once), busy timeout, ``synchronous = NORMAL``, foreign keys on, pysqlite's own BEGIN handling off
  and write transactions ``BEGIN IMMEDIATE`` (a second writer waits for the first, then reads the
  committed state, instead of failing on the lock upgrade); an in-memory database is one shared
  connection. PostgreSQL (and the rest): ``pool_pre_ping``, an optional schema (schema translate
  map), reads at ``REPEATABLE READ`` (several SELECTs of one read see one snapshot), writes at the
  default ``READ COMMITTED`` (a statement after a lock wait sees what the lock holder committed).
- `install_append_only`: triggers refusing UPDATE / DELETE (and TRUNCATE on PostgreSQL) of a table
  (the migrations install them).
- `SQLStore`: a base class: ``_open`` (engines, then the schema brought to the newest migration),
  ``close``, context manager, ``repr``.
- `UTCDateTime`, `Id`, `NAMING_CONVENTION`: column types and constraint naming of the tables.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Self

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Integer,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

__all__ = [
    "Engines",
    "make_engines",
    "install_append_only",
    "SQLStore",
    "UTCDateTime",
    "Id",
    "NAMING_CONVENTION",
]

log = logging.getLogger(__name__)

#: constraint and index names of the tables (stable across backends)
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere use 64-bit ids
Id = BigInteger().with_variant(Integer(), "sqlite")

# the execution option naming the SQLite BEGIN mode of a transaction (see `make_engines`)
_BEGIN_OPTION = "sqlstore_begin"


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got naive {value!r}")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Engines(NamedTuple):
    """``engine``: the pooled engine (dispose it to close); ``read`` / ``write``: the engines to open
    read and write transactions on; ``dialect``: the backend name (``sqlite``, ``postgresql``, ...)."""

    engine: Engine
    read: Engine
    write: Engine
    dialect: str


def make_engines(
    url: str,
    *,
    schema: str | None = None,
    busy_timeout_s: float = 30.0,
    echo: bool = False,
    error: type[Exception] = ValueError,
) -> Engines:
    """The engines of one database (see the module docstring for what each backend gets).

    Raises:
        error: ``schema`` is given for SQLite (the tables live in the database file).
    """
    u = make_url(url)
    dialect = u.get_backend_name()
    if dialect == "sqlite":
        if schema is not None:
            raise error(
                f"schema={schema!r} is only supported on PostgreSQL; SQLite keeps the tables in the database file"
            )
        engine = _sqlite_engine(u, busy_timeout_s, echo)
        return Engines(engine, engine, engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}), dialect)
    engine = create_engine(u, pool_pre_ping=True, echo=echo)
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    return Engines(engine, engine.execution_options(isolation_level="REPEATABLE READ"), engine, dialect)


def install_append_only(
    conn: Connection, table: str, dialect: str, schema: str | None, *, owner: str = "store", what: str | None = None
) -> None:
    """Triggers refusing UPDATE and DELETE of ``table`` (and TRUNCATE on PostgreSQL), installed when
    missing; on other backends a warning (``owner`` / ``what`` name the store and the table in it)."""
    msg = f"{table} is append-only: rows cannot be updated or deleted"
    if dialect == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{msg}'); END"
            )
    elif dialect == "postgresql":
        schema = schema or conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.exec_driver_sql(
            f'CREATE OR REPLACE FUNCTION "{schema}".{table}_append_only() RETURNS trigger '
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{msg}'; END $$"
        )
        have = set(
            conn.execute(
                text(
                    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relname = :t"
                ),
                {"s": schema, "t": table},
            ).scalars()
        )
        for name, when in (
            (f"{table}_no_change", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"),
            (f"{table}_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"),
        ):
            if name not in have:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name} "
                    + when.format(t=f'"{schema}".{table}')
                    + f' EXECUTE FUNCTION "{schema}".{table}_append_only()'
                )
    else:
        log.warning("%s on %s: %s's append-only trigger is not installed", owner, dialect, what or table)


class SQLStore:
    """Base of a component on one database: ``_open`` sets up its engines and tables; ``close`` /
    ``with`` / ``repr`` (``_repr_args`` adds to the repr after the URL, its password hidden)."""

    engine: Engine

    def _open(
        self,
        url: str,
        *,
        schema: str | None = None,
        busy_timeout_s: float = 30.0,
        echo: bool = False,
        error: type[Exception] = ValueError,
    ) -> None:
        """Set ``schema``, ``engine``, ``_read``, ``_write`` and ``dialect`` (`make_engines`), then bring
        the database to the newest schema revision (`forecast.db.migrate.ensure_schema`)."""
        from forecast.db.migrate import ensure_schema

        self.schema = schema
        self.engine, self._read, self._write, self.dialect = make_engines(
            url, schema=schema, busy_timeout_s=busy_timeout_s, echo=echo, error=error
        )
        ensure_schema(self._write, dialect=self.dialect, schema=schema)

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _repr_args(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._repr_args()
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}({url!r}{', ' + extra if extra else ''})"


# --------------------------------------------------------------------------------------------
# SQLite


def _sqlite_engine(u, busy_timeout_s: float, echo: bool) -> Engine:
    db = u.database
    memory = not db or db == ":memory:" or "mode=memory" in str(u)
    kw: dict[str, Any] = {"echo": echo}
    if memory:
        # one shared connection, so that every thread sees the same in-memory database
        kw.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif not db.startswith("file:"):
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, **kw)
    ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # pysqlite's own BEGIN handling is off: we emit BEGIN (IMMEDIATE for writes) below
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {ms}")
        if not memory:
            _wal(cur, busy_timeout_s)
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # a write transaction takes the write lock up front: a second writer waits for it (busy
        # timeout) and then reads the committed state, instead of failing on the lock upgrade
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _wal(cur, timeout_s: float) -> None:
    """Switch to WAL; the switch skips the busy handler, so retry while another connection holds
    the lock (processes opening a fresh database at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
