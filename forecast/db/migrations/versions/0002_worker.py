"""The worker: the cycle log (append-only) and the writer lease of each store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from forecast.db.engine import install_append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "worker_cycles",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("init_time", TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("fallback", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("due_at", TIME, nullable=True),
        sa.Column("deadline_at", TIME, nullable=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=False),
        sa.Column("lateness_s", sa.Float(), nullable=True),
        sa.Column("deadline_missed", sa.Boolean(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("forecast_snapshot", sa.String(length=200), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_cycles")),
    )
    op.create_index("ix_worker_cycles_dataset_init", "worker_cycles", ["dataset", "variable", "init_time"])
    op.create_index("uq_worker_cycles_one_done", "worker_cycles", ["dataset", "variable", "init_time"], unique=True,
                    sqlite_where=sa.text("status = 'done'"), postgresql_where=sa.text("status = 'done'"))
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", TIME, nullable=False),
        sa.Column("heartbeat_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )
    bind = op.get_bind()
    schema = op.get_context().opts.get("version_table_schema")
    install_append_only(bind, "worker_cycles", bind.dialect.name, schema, owner="service database",
                        what="the cycle log")


def downgrade() -> None:
    op.drop_table("worker_leases")
    op.drop_table("worker_cycles")
