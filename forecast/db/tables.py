"""The service database's tables, all on one `METADATA` (the schema the Alembic migrations in
`forecast.db.migrations` build; a test checks that migrating an empty database to head gives exactly
these tables).

Review queue (`forecast.review`):

    - ``review_items``: id, key (sha256, unique), dataset, variable, state (open / pending /
      decided), version (optimistic concurrency), hazard, exceeds_record, t_first, t_last,
      n_slots, n_cells, n_decided, iy0, iy1, ix0, ix1, lat/lon and y/x boxes, max/min/peak value,
      peak_time / peak_iy / peak_ix, side, record, excess, relative_excess, tests (bitmask),
      resolution (accepted / rejected / mixed once decided), pending_by, created_at, updated_at,
      updated_by.
    - ``review_item_cells``: item_id, n, encoding, data (zlib of little-endian int64 triplets
      ``(slot epoch s, iy, ix)``, sorted).
    - ``review_decisions``: id, item_id, action (accept / reject), status (final /
      awaiting_second / confirmed / overruled), outcome (accepted / rejected for final rows),
      by, comment, at, n_cells, cells (same encoding), resolves (the pending reject a confirmation
      or an accept resolved), item_version and item_state (what the decision left the item at),
      written_snapshot, written_at (the store commit carrying it into the flags).
    - ``review_audit``: id, at, actor, action, item_id, decision_id, details (JSON). Append-only:
      the queue has no update or delete for it, and a database trigger refuses both.

Model registry (`forecast.registry`): ``model_versions`` (one row per registered model; a partial
unique index allows one ``production`` row per dataset and variable) and ``model_stage_changes``
(append-only stage history).

API users (`forecast.db.users`): ``api_users`` (name, role, sha256 of the token, hint, created /
revoked).

The worker (`forecast.worker`): ``worker_cycles`` (append-only: every init done, skipped or failed,
with its stages and inputs) and ``worker_leases`` (the writer lease of each store).

Monitoring (`forecast.monitoring`): ``monitor_verifications`` (every verification of a forecast and its
references per init and method, with the observation revisions it used; a revised observation adds a
``final`` version beside the ``preliminary`` one), ``monitor_features`` (input features per slot, for
drift), ``monitor_state`` (the detector, rule counters and the latest snapshot), ``monitor_alerts`` (one
row per alert: firing / resolved, acknowledgement) and ``monitor_alert_events`` (append-only: fired,
resolved, acknowledged, delivered, undelivered).

Append-only tables (`APPEND_ONLY`) refuse UPDATE and DELETE by database triggers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from forecast.db.engine import NAMING_CONVENTION, Id, UTCDateTime

#: every table of the service database
METADATA = MetaData(naming_convention=NAMING_CONVENTION)

#: tables whose rows can be neither updated nor deleted (table -> what it is)
APPEND_ONLY = {"review_audit": "the audit log", "model_stage_changes": "the stage history",
               "worker_cycles": "the cycle log", "monitor_alert_events": "the alert history"}


class Base(DeclarativeBase):
    metadata = METADATA


# -- review queue ------------------------------------------------------------------------------------

#: how cell triplets are stored in the blob columns
CELLS_ENCODING = "zlib+int64le(t,iy,ix)"

class ItemRow(Base):
    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    dataset: Mapped[str] = mapped_column(String(200))
    variable: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    hazard: Mapped[float] = mapped_column(Float)
    exceeds_record: Mapped[bool] = mapped_column(Boolean)
    t_first: Mapped[datetime] = mapped_column(UTCDateTime)
    t_last: Mapped[datetime] = mapped_column(UTCDateTime)
    n_slots: Mapped[int] = mapped_column(Integer)
    n_cells: Mapped[int] = mapped_column(Integer)
    n_decided: Mapped[int] = mapped_column(Integer)
    iy0: Mapped[int] = mapped_column(Integer)
    iy1: Mapped[int] = mapped_column(Integer)
    ix0: Mapped[int] = mapped_column(Integer)
    ix1: Mapped[int] = mapped_column(Integer)
    lat_min: Mapped[float | None] = mapped_column(Float)
    lat_max: Mapped[float | None] = mapped_column(Float)
    lon_min: Mapped[float | None] = mapped_column(Float)
    lon_max: Mapped[float | None] = mapped_column(Float)
    y_min: Mapped[float | None] = mapped_column(Float)
    y_max: Mapped[float | None] = mapped_column(Float)
    x_min: Mapped[float | None] = mapped_column(Float)
    x_max: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    min_value: Mapped[float | None] = mapped_column(Float)
    peak_value: Mapped[float | None] = mapped_column(Float)
    peak_time: Mapped[datetime] = mapped_column(UTCDateTime)
    peak_iy: Mapped[int] = mapped_column(Integer)
    peak_ix: Mapped[int] = mapped_column(Integer)
    side: Mapped[str | None] = mapped_column(String(3))
    record: Mapped[float | None] = mapped_column(Float)
    excess: Mapped[float | None] = mapped_column(Float)
    relative_excess: Mapped[float | None] = mapped_column(Float)
    tests: Mapped[int] = mapped_column(BigInteger)
    resolution: Mapped[str | None] = mapped_column(String(16))
    pending_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_review_items_state_hazard", "state", "hazard"),
        Index("ix_review_items_dataset_state", "dataset", "state"),
    )


class ItemCellsRow(Base):
    __tablename__ = "review_item_cells"

    item_id: Mapped[int] = mapped_column(Id, ForeignKey("review_items.id"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DecisionRow(Base):
    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(Id, ForeignKey("review_items.id"), index=True)
    action: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    n_cells: Mapped[int] = mapped_column(Integer)
    cells: Mapped[bytes] = mapped_column(LargeBinary)
    resolves: Mapped[int | None] = mapped_column(Id, ForeignKey("review_decisions.id"))
    item_version: Mapped[int] = mapped_column(Integer)
    item_state: Mapped[str] = mapped_column(String(16))
    written_snapshot: Mapped[str | None] = mapped_column(String(200))
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_review_decisions_status_written", "status", "written_snapshot"),)


class AuditRow(Base):
    __tablename__ = "review_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int | None] = mapped_column(Id, ForeignKey("review_items.id"), index=True)
    decision_id: Mapped[int | None] = mapped_column(Id, ForeignKey("review_decisions.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- model registry ----------------------------------------------------------------------------------

model_versions = Table(
    "model_versions",
    METADATA,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("version", String(32), nullable=False, unique=True),
    Column("dataset", String(200), nullable=False),
    Column("variable", String(200), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("snapshot", String(200)),
    Column("catalog_hash", String(200)),
    Column("qc_config_hash", String(200)),
    Column("hyperparameters", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("git_commit", String(200)),
    Column("versions", JSON, nullable=False),
    Column("extra", JSON, nullable=False),
    Column("checkpoint", String(500), nullable=False),
    Column("config", String(500)),
    Column("checkpoint_sha256", String(64), nullable=False),
    Index("ix_model_versions_dataset_variable", "dataset", "variable"),
    # the database itself refuses a second production model of one (dataset, variable)
    Index(
        "uq_model_versions_one_production",
        "dataset",
        "variable",
        unique=True,
        sqlite_where=text("stage = 'production'"),
        postgresql_where=text("stage = 'production'"),
    ),
)

model_stage_changes = Table(
    "model_stage_changes",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", String(32), ForeignKey("model_versions.version"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("by", String(200), nullable=False),
    Column("from_stage", String(16)),
    Column("to_stage", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("override", Boolean, nullable=False),
    Column("report", JSON),
)


# -- API users ---------------------------------------------------------------------------------------

api_users = Table(
    "api_users",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(16), nullable=False),  # prefix + 4 chars: tells tokens apart in listings
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=True),
)


# -- the worker ----------------------------------------------------------------------------------------

#: one row per cycle outcome of an init (append-only): forecast ``done``, ``skipped`` (and why), ``failed``
worker_cycles = Table(
    "worker_cycles",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("variable", String(200), nullable=False),
    Column("init_time", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("method", String(32)),
    Column("fallback", JSON),
    Column("model_version", String(32)),
    Column("due_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("lateness_s", Float),
    Column("deadline_missed", Boolean, nullable=False),
    Column("stages", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("forecast_snapshot", String(200)),
    Column("worker", String(200), nullable=False),
    Index("ix_worker_cycles_dataset_init", "dataset", "variable", "init_time"),
    # an init is forecast at most once (a restarted worker finds it done)
    Index("uq_worker_cycles_one_done", "dataset", "variable", "init_time", unique=True,
          sqlite_where=text("status = 'done'"), postgresql_where=text("status = 'done'")),
)

#: who holds the writer's lease of a store (one active worker per store; a standby takes over)
worker_leases = Table(
    "worker_leases",
    METADATA,
    Column("name", String(500), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


# -- monitoring ----------------------------------------------------------------------------------------

#: one row per verification of one method's forecast at one init: ``stage`` preliminary (first) or final
#: (recomputed after an observation it used was revised or arrived late); ``current`` marks the newest
monitor_verifications = Table(
    "monitor_verifications",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("variable", String(200), nullable=False),
    Column("init_time", UTCDateTime, nullable=False),
    Column("method", String(32), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("forecast_method", String(32)),
    Column("model_version", String(32)),
    Column("fallback", Text),
    Column("lead_s", JSON, nullable=False),
    Column("obs_revisions", JSON, nullable=False),
    Column("obs_snapshot", String(200)),
    Column("inputs", JSON, nullable=False),
    Column("regimes", JSON, nullable=False),
    Column("skill", Float),
    Column("scores", JSON, nullable=False),
    Column("record", LargeBinary, nullable=False),
    Column("strata", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Index("ix_monitor_verifications_current", "dataset", "variable", "current", "init_time"),
    Index("uq_monitor_verifications_version", "dataset", "variable", "init_time", "method", "version", unique=True),
)

#: input features of one observation slot (its newest revision), for input drift
monitor_features = Table(
    "monitor_features",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("variable", String(200), nullable=False),
    Column("slot_time", UTCDateTime, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("features", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Index("uq_monitor_features_slot", "dataset", "variable", "slot_time", unique=True),
)

#: small named documents of the monitor per dataset and variable (detector, rule counters, snapshot, ...)
monitor_state = Table(
    "monitor_state",
    METADATA,
    Column("dataset", String(64), primary_key=True),
    Column("variable", String(200), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: one row per alert; at most one firing alert per key (rule, dataset, variable, subject): deduplication
monitor_alerts = Table(
    "monitor_alerts",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("variable", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("value", Float),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("acknowledged_by", String(200)),
    Column("acknowledged_at", UTCDateTime),
    Column("ack_comment", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_monitor_alerts_dataset_state", "dataset", "state"),
    Index("uq_monitor_alerts_one_firing", "key", unique=True,
          sqlite_where=text("state = 'firing'"), postgresql_where=text("state = 'firing'")),
)

#: what happened to each alert (append-only): fired, resolved, acknowledged, delivered, undelivered
monitor_alert_events = Table(
    "monitor_alert_events",
    METADATA,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, ForeignKey("monitor_alerts.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("details", JSON, nullable=False),
)
