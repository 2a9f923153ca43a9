"""Alembic environment of the service database. `forecast.db.migrate` runs it with the connection to
migrate (``config.attributes["connection"]``) and, on PostgreSQL, the schema that holds the tables
(``config.attributes["schema"]``); the ``alembic`` command line works too, given ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from forecast.db.tables import METADATA

config = context.config


def _run(connection) -> None:
    schema = config.attributes.get("schema")
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table_schema=schema,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=METADATA,
                      literal_binds=True, version_table_schema=config.attributes.get("schema"))
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
