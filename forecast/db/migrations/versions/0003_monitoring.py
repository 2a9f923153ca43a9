"""Monitoring: verifications per init and method (preliminary / final), input features per slot, the
monitor's state, alerts and their append-only history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from forecast.db.engine import install_append_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_verifications",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("init_time", TIME, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("forecast_method", sa.String(length=32), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("fallback", sa.Text(), nullable=True),
        sa.Column("lead_s", sa.JSON(), nullable=False),
        sa.Column("obs_revisions", sa.JSON(), nullable=False),
        sa.Column("obs_snapshot", sa.String(length=200), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("regimes", sa.JSON(), nullable=False),
        sa.Column("skill", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("strata", sa.JSON(), nullable=False),
        sa.Column("computed_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_verifications")),
    )
    op.create_index("ix_monitor_verifications_current", "monitor_verifications",
                    ["dataset", "variable", "current", "init_time"])
    op.create_index("uq_monitor_verifications_version", "monitor_verifications",
                    ["dataset", "variable", "init_time", "method", "version"], unique=True)
    op.create_table(
        "monitor_features",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("slot_time", TIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("computed_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_features")),
    )
    op.create_index("uq_monitor_features_slot", "monitor_features", ["dataset", "variable", "slot_time"], unique=True)
    op.create_table(
        "monitor_state",
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("dataset", "variable", "name", name=op.f("pk_monitor_state")),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variable", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", TIME, nullable=False),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
    )
    op.create_index("ix_monitor_alerts_dataset_state", "monitor_alerts", ["dataset", "state"])
    op.create_index("uq_monitor_alerts_one_firing", "monitor_alerts", ["key"], unique=True,
                    sqlite_where=sa.text("state = 'firing'"), postgresql_where=sa.text("state = 'firing'"))
    op.create_table(
        "monitor_alert_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", ID, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["monitor_alerts.id"],
                                name=op.f("fk_monitor_alert_events_alert_id_monitor_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alert_events")),
    )
    op.create_index("ix_monitor_alert_events_alert_id", "monitor_alert_events", ["alert_id"])
    bind = op.get_bind()
    schema = op.get_context().opts.get("version_table_schema")
    install_append_only(bind, "monitor_alert_events", bind.dialect.name, schema, owner="service database",
                        what="the alert history")


def downgrade() -> None:
    op.drop_table("monitor_alert_events")
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_state")
    op.drop_table("monitor_features")
    op.drop_table("monitor_verifications")
