"""The initial schema: review queue, model registry, API users (and the append-only triggers).

A database made before migrations existed (tables created by the components themselves) adopts this
revision: a table that already exists is kept as it is, only what is missing is created.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from forecast.db.engine import install_append_only

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = {
    "review_audit": "the audit log",
    "model_stage_changes": "the stage history",
}


def _schema() -> str | None:
    return op.get_context().opts.get("version_table_schema")


def _exists(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name, schema=_schema())


def _table(name: str, *columns) -> None:
    if not _exists(name):
        op.create_table(name, *columns)


def _index(name: str, table: str, columns: list[str], **kw) -> None:
    have = {
        ix["name"]
        for ix in sa.inspect(op.get_bind()).get_indexes(table, schema=_schema())
    }
    if name not in have:
        op.create_index(name, table, columns, **kw)


def upgrade() -> None:
    _table(
        "api_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_users")),
        sa.UniqueConstraint("name", name=op.f("uq_api_users_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_users_token_hash")),
    )
    _table(
        "model_versions",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("snapshot", sa.String(length=200), nullable=True),
        sa.Column("catalog_hash", sa.String(length=200), nullable=True),
        sa.Column("qc_config_hash", sa.String(length=200), nullable=True),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("git_commit", sa.String(length=200), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.String(length=500), nullable=False),
        sa.Column("config", sa.String(length=500), nullable=True),
        sa.Column("checkpoint_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_model_versions_version")),
    )
    _index(
        "ix_model_versions_dataset_variable",
        "model_versions",
        ["dataset", "variable"],
        unique=False,
    )
    _index(
        "uq_model_versions_one_production",
        "model_versions",
        ["dataset", "variable"],
        unique=True,
        sqlite_where=sa.text("stage = 'production'"),
        postgresql_where=sa.text("stage = 'production'"),
    )

    _table(
        "review_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hazard", sa.Float(), nullable=False),
        sa.Column("exceeds_record", sa.Boolean(), nullable=False),
        sa.Column("t_first", TIME, nullable=False),
        sa.Column("t_last", TIME, nullable=False),
        sa.Column("n_slots", sa.Integer(), nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("n_decided", sa.Integer(), nullable=False),
        sa.Column("iy0", sa.Integer(), nullable=False),
        sa.Column("iy1", sa.Integer(), nullable=False),
        sa.Column("ix0", sa.Integer(), nullable=False),
        sa.Column("ix1", sa.Integer(), nullable=False),
        sa.Column("lat_min", sa.Float(), nullable=True),
        sa.Column("lat_max", sa.Float(), nullable=True),
        sa.Column("lon_min", sa.Float(), nullable=True),
        sa.Column("lon_max", sa.Float(), nullable=True),
        sa.Column("y_min", sa.Float(), nullable=True),
        sa.Column("y_max", sa.Float(), nullable=True),
        sa.Column("x_min", sa.Float(), nullable=True),
        sa.Column("x_max", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("peak_value", sa.Float(), nullable=True),
        sa.Column("peak_time", TIME, nullable=False),
        sa.Column("peak_iy", sa.Integer(), nullable=False),
        sa.Column("peak_ix", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=3), nullable=True),
        sa.Column("record", sa.Float(), nullable=True),
        sa.Column("excess", sa.Float(), nullable=True),
        sa.Column("relative_excess", sa.Float(), nullable=True),
        sa.Column("tests", sa.BigInteger(), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("pending_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("key", name=op.f("uq_review_items_key")),
    )
    _index(
        "ix_review_items_dataset_state",
        "review_items",
        ["dataset", "state"],
        unique=False,
    )
    _index(
        "ix_review_items_state_hazard",
        "review_items",
        ["state", "hazard"],
        unique=False,
    )

    _table(
        "model_stage_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=True),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_model_stage_changes_version_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_stage_changes")),
    )
    _index(
        op.f("ix_model_stage_changes_version"),
        "model_stage_changes",
        ["version"],
        unique=False,
    )

    _table(
        "review_decisions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("cells", sa.LargeBinary(), nullable=False),
        sa.Column("resolves", ID, nullable=True),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("item_state", sa.String(length=16), nullable=False),
        sa.Column("written_snapshot", sa.String(length=200), nullable=True),
        sa.Column("written_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_decisions_item_id_review_items"),
        ),
        sa.ForeignKeyConstraint(
            ["resolves"],
            ["review_decisions.id"],
            name=op.f("fk_review_decisions_resolves_review_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    _index(
        op.f("ix_review_decisions_item_id"),
        "review_decisions",
        ["item_id"],
        unique=False,
    )
    _index(
        "ix_review_decisions_status_written",
        "review_decisions",
        ["status", "written_snapshot"],
        unique=False,
    )

    _table(
        "review_item_cells",
        sa.Column("item_id", ID, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_item_cells_item_id_review_items"),
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_review_item_cells")),
    )
    _table(
        "review_audit",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("item_id", ID, nullable=True),
        sa.Column("decision_id", ID, nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["review_decisions.id"],
            name=op.f("fk_review_audit_decision_id_review_decisions"),
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_audit_item_id_review_items"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_audit")),
    )
    _index(op.f("ix_review_audit_item_id"), "review_audit", ["item_id"], unique=False)
    bind = op.get_bind()
    for table, what in APPEND_ONLY.items():
        install_append_only(
            bind,
            table,
            bind.dialect.name,
            _schema(),
            owner="service database",
            what=what,
        )


def downgrade() -> None:
    for name in (
        "review_audit",
        "review_item_cells",
        "review_decisions",
        "model_stage_changes",
        "review_items",
        "model_versions",
        "api_users",
    ):
        op.drop_table(name)
