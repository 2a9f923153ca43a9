"""The model registry: numbered model versions (v1, v2, ...) with their checkpoints, provenance and an
append-only history of stage changes (candidate -> production -> retired), in SQL beside the review queue.

Tables (their own ``MetaData``; they share the review queue's database):

- ``model_versions``: one row per registered model: number (the N of ``vN``), version, dataset,
  variable, stage, created_at / created_by, snapshot, catalog_hash, qc_config_hash, hyperparameters,
  metrics, git_commit, versions (software), extra (any other keys of the training record), checkpoint
  and config (paths relative to the registry folder), checkpoint_sha256. A partial unique index
  allows one ``production`` row per (dataset, variable).
- ``model_stage_changes``: id, version, at, by, from_stage, to_stage, reason, override, report.
  Append-only: the registry only inserts, and a database trigger refuses updates and deletes.

Files: ``ROOT/vN/model.ckpt`` and ``ROOT/vN/config.yaml``, copied at registration under a temporary
name and renamed into place inside the registering transaction. This module never imports torch.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from forecast.db.engine import SQLStore
from forecast.db.tables import model_stage_changes, model_versions
from forecast.errors import BadInputError
from forecast.fileutil import sha256_file
from forecast.serialize import jsonable
from forecast.timeutil import iso_ms as _iso

__all__ = [
    "ModelRegistry",
    "ModelRecord",
    "StageChange",
    "STAGES",
    "RECORD_FIELDS",
    "UnknownModelError",
    "InvalidStageChangeError",
    "CheckpointMissingError",
    "CheckpointMismatchError",
]

log = logging.getLogger(__name__)

STAGES = ("candidate", "production", "retired")

#: stage changes a model may make; a model is a candidate only by being registered, and a retired
#: model may return to production (a rollback; the promotion gate, once it exists, judges it)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("production", "retired"),
    "production": ("retired",),
    "retired": ("production",),
}

#: keys of the training record stored in their own columns (anything else goes to ``extra``)
RECORD_FIELDS = ("snapshot", "catalog_hash", "qc_config_hash", "hyperparameters", "metrics", "git_commit",
                 "versions")
_TEXT_FIELDS = ("snapshot", "catalog_hash", "qc_config_hash", "git_commit")
_DICT_FIELDS = ("hyperparameters", "metrics", "versions")
# keys the registry sets itself; a training record may not carry them
_RESERVED = ("version", "stage", "created_at", "created_by", "checkpoint", "checkpoint_sha256", "history")

CHECKPOINT_NAME = "model.ckpt"
CONFIG_NAME = "config.yaml"

# PostgreSQL advisory lock id (arbitrary, fixed): version allocation
_REGISTER_LOCK = 0x70DE1_0002


class UnknownModelError(BadInputError, KeyError):
    """No registered model has this version; the message lists the known versions."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class InvalidStageChangeError(BadInputError):
    """An unknown stage, a transition the registry does not allow, or a change without who / why."""


class CheckpointMissingError(BadInputError):
    """The registered checkpoint file is gone from the registry folder."""


class CheckpointMismatchError(BadInputError):
    """The registered checkpoint file no longer has the sha256 recorded at registration."""

    def __init__(self, version: str, path: Path, expected: str, actual: str):
        self.version, self.path, self.expected, self.actual = version, path, expected, actual
        super().__init__(
            f"checkpoint of model {version} at {path} has sha256 {actual} but the registry recorded {expected}; "
            "the file was changed after registration, so it is refused (restore it or register the model again)"
        )


# --------------------------------------------------------------------------------------------
# tables


_versions = model_versions
_changes = model_stage_changes


# --------------------------------------------------------------------------------------------
# what the registry returns


@dataclass(frozen=True)
class StageChange:
    """One row of a model's append-only stage history (``from_stage`` is None at registration)."""

    at: datetime
    by: str
    from_stage: str | None
    to_stage: str
    reason: str
    override: bool
    report: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "by": self.by, "from_stage": self.from_stage, "to_stage": self.to_stage,
                "reason": self.reason, "override": self.override, "report": self.report}


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version with its provenance and stage history (oldest first).

    ``checkpoint`` / ``config`` are absolute paths in the registry folder (``config`` None when no
    config was registered); ``extra`` holds the training record's keys beyond ``RECORD_FIELDS``.
    Read the checkpoint through ``ModelRegistry.checkpoint_path``, which verifies its sha256.
    """

    version: str
    dataset: str
    variable: str
    stage: str
    created_at: datetime
    created_by: str
    snapshot: str | None
    catalog_hash: str | None
    qc_config_hash: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    git_commit: str | None
    versions: dict[str, Any]
    checkpoint_sha256: str
    checkpoint: Path
    config: Path | None
    extra: dict[str, Any] = field(default_factory=dict)
    history: tuple[StageChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The record as the shared contract's JSON document (times ISO-8601 UTC ending in Z)."""
        return {
            "version": self.version,
            "dataset": self.dataset,
            "variable": self.variable,
            "stage": self.stage,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "snapshot": self.snapshot,
            "catalog_hash": self.catalog_hash,
            "qc_config_hash": self.qc_config_hash,
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "git_commit": self.git_commit,
            "versions": self.versions,
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint": str(self.checkpoint),
            "history": [h.to_json() for h in self.history],
        }


# --------------------------------------------------------------------------------------------
# the registry


class ModelRegistry(SQLStore):
    """The model registry on one database and one folder of checkpoints.

    ``url``: an SQLAlchemy URL (normally ``Settings.db_url``: the review queue's
    database; SQLite runs in WAL mode with write transactions ``BEGIN IMMEDIATE`` so that
    concurrent writers queue, PostgreSQL serialises with row and advisory locks). ``root``: the
    folder holding ``vN/model.ckpt`` (``Settings.models_dir``; created on first registration).
    ``schema``: PostgreSQL schema to hold the tables (created when missing; not on SQLite).
    Tables and triggers are created when missing, safely from several processes at once.
    """

    def __init__(self, url: str, root: Path | str, *, schema: str | None = None, busy_timeout_s: float = 30.0):
        self.root = Path(root)
        # reads: one snapshot per read (a record and its history); writes on PostgreSQL: READ COMMITTED,
        # a statement after a lock wait sees what the lock holder committed
        self._open(url, schema=schema, busy_timeout_s=busy_timeout_s, error=BadInputError)

    def _repr_args(self) -> str:
        return repr(str(self.root))

    # -- registering ------------------------------------------------------------------------

    def register(
        self,
        *,
        dataset: str,
        variable: str,
        checkpoint: Path | str,
        config: Path | str | None,
        record: dict[str, Any],
        by: str,
    ) -> ModelRecord:
        """Register a trained model as the next version ``vN``, stage ``candidate``.

        The checkpoint (and the config YAML, when given) are copied into ``ROOT/vN/`` and the copy's
        sha256 is recorded. ``record`` is the training record: the ``RECORD_FIELDS`` keys
        (``snapshot``, ``catalog_hash``, ``qc_config_hash``, ``git_commit``: strings or None;
        ``hyperparameters``, ``metrics``, ``versions``: dicts) and any other JSON-able keys, kept in
        ``extra``. Non-finite numbers become null (JSON has no NaN). Version numbers are allocated
        in the writing transaction, so concurrent registrations never share one.

        Raises:
            BadInputError: a missing checkpoint or config file, an empty ``dataset`` / ``variable``
                / ``by``, a record key of the wrong type, not JSON-able, or one the registry sets.
        """
        dataset = _required("dataset", dataset)
        variable = _required("variable", variable)
        by = _required("by", by)
        fields = _record_fields(record, dataset, variable)
        sources = {CHECKPOINT_NAME: _source_file("checkpoint", checkpoint)}
        if config is not None:
            sources[CONFIG_NAME] = _source_file("config", config)

        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".incoming-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            digests = {name: _copy(src, staging / name) for name, src in sources.items()}
            with self._write.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_REGISTER_LOCK)))
                now = datetime.now(timezone.utc)  # after the lock: later versions never look older
                number = conn.execute(select(func.coalesce(func.max(_versions.c.number), 0))).scalar_one() + 1
                version = f"v{number}"
                conn.execute(
                    insert(_versions).values(
                        number=number,
                        version=version,
                        dataset=dataset,
                        variable=variable,
                        stage="candidate",
                        created_at=now,
                        created_by=by,
                        checkpoint=f"{version}/{CHECKPOINT_NAME}",
                        config=f"{version}/{CONFIG_NAME}" if config is not None else None,
                        checkpoint_sha256=digests[CHECKPOINT_NAME],
                        **fields,
                    )
                )
                conn.execute(
                    insert(_changes).values(
                        version=version, at=now, by=by, from_stage=None, to_stage="candidate",
                        reason="registered", override=False, report=None,
                    )
                )
                # files land before the commit, so a committed version always has its files; if the
                # commit then fails the folder is an orphan, set aside when the number is reused
                self._place(staging, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("model registry: %s registered for %s.%s by %s", version, dataset, variable, by)
        return self.get(version)

    def _place(self, staging: Path, version: str) -> None:
        dest = self.root / version
        if dest.exists():
            # no row holds this version (we allocated it under the lock): an interrupted registration
            # or a second registry database sharing this folder left it; keep it, out of the way
            aside = self.root / ".orphaned" / f"{version}-{uuid.uuid4().hex[:8]}"
            aside.parent.mkdir(exist_ok=True)
            dest.rename(aside)
            log.warning("model registry: %s held files no registered model owns; moved them to %s", dest, aside)
        staging.rename(dest)

    # -- reading ----------------------------------------------------------------------------

    def get(self, version: str) -> ModelRecord:
        """One model version with its stage history.

        Raises:
            UnknownModelError: no model has this version (the message lists the known ones).
        """
        with self._read.begin() as conn:
            row = conn.execute(select(_versions).where(_versions.c.version == version)).mappings().first()
            if row is None:
                raise UnknownModelError(self._unknown_message(conn, version))
            return self._records(conn, [row])[0]

    def list(
        self, *, dataset: str | None = None, variable: str | None = None, stage: str | None = None
    ) -> builtins.list[ModelRecord]:
        """Registered models, oldest version first, optionally of one dataset / variable / stage.

        Raises:
            InvalidStageChangeError: ``stage`` is not one of ``STAGES``.
        """
        if stage is not None:
            _check_stage(stage)
        q = select(_versions)
        if dataset is not None:
            q = q.where(_versions.c.dataset == dataset)
        if variable is not None:
            q = q.where(_versions.c.variable == variable)
        if stage is not None:
            q = q.where(_versions.c.stage == stage)
        with self._read.begin() as conn:
            rows = conn.execute(q.order_by(_versions.c.number)).mappings().all()
            return self._records(conn, rows)

    def production(self, dataset: str, variable: str) -> ModelRecord | None:
        """The production model of ``(dataset, variable)``, or None when there is none."""
        found = self.list(dataset=dataset, variable=variable, stage="production")
        return found[0] if found else None

    def history(self, version: str) -> builtins.list[StageChange]:
        """The stage changes of one model, oldest first (its registration is the first).

        Raises:
            UnknownModelError: no model has this version.
        """
        return builtins.list(self.get(version).history)

    def checkpoint_path(self, version: str) -> Path:
        """The path of a model's checkpoint, after checking its sha256 against the registry.

        The whole file is hashed on every call (about a second per GB), so a changed file is never
        loaded.

        Raises:
            UnknownModelError: no model has this version.
            CheckpointMissingError: the file is gone.
            CheckpointMismatchError: the file's sha256 differs from the registered one.
        """
        rec = self.get(version)
        path = rec.checkpoint
        if not path.is_file():
            raise CheckpointMissingError(f"checkpoint of model {version} is missing at {path}")
        actual = sha256_file(path)
        if actual != rec.checkpoint_sha256:
            raise CheckpointMismatchError(version, path, rec.checkpoint_sha256, actual)
        return path

    def _unknown_message(self, conn: Connection, version: str) -> str:
        known = conn.execute(select(_versions.c.version).order_by(_versions.c.number)).scalars().all()
        if not known:
            return f"no model {version!r}: the model registry is empty; register a trained model first"
        shown = ", ".join(known[-20:]) + (f" (and {len(known) - 20} older)" if len(known) > 20 else "")
        return f"no model {version!r} in the registry; known versions: {shown}"

    def _records(self, conn: Connection, rows) -> builtins.list[ModelRecord]:
        histories: dict[str, builtins.list[StageChange]] = {r["version"]: [] for r in rows}
        if rows:
            q = select(_changes).order_by(_changes.c.id)
            if len(rows) < 500:  # else read all: fewer round trips than chunked IN lists
                q = q.where(_changes.c.version.in_(builtins.list(histories)))
            for c in conn.execute(q).mappings():
                if c["version"] in histories:
                    histories[c["version"]].append(_change(c))
        return [self._record(r, histories[r["version"]]) for r in rows]

    def _record(self, r, history: builtins.list[StageChange]) -> ModelRecord:
        return ModelRecord(
            version=r["version"],
            dataset=r["dataset"],
            variable=r["variable"],
            stage=r["stage"],
            created_at=r["created_at"],
            created_by=r["created_by"],
            snapshot=r["snapshot"],
            catalog_hash=r["catalog_hash"],
            qc_config_hash=r["qc_config_hash"],
            hyperparameters=dict(r["hyperparameters"]),
            metrics=dict(r["metrics"]),
            git_commit=r["git_commit"],
            versions=dict(r["versions"]),
            checkpoint_sha256=r["checkpoint_sha256"],
            checkpoint=(self.root / r["checkpoint"]).absolute(),
            config=(self.root / r["config"]).absolute() if r["config"] else None,
            extra=dict(r["extra"]),
            history=tuple(history),
        )

    # -- stage changes ----------------------------------------------------------------------

    def set_stage(
        self,
        version: str,
        stage: str,
        *,
        by: str,
        reason: str,
        override: bool = False,
        report: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Move a model to ``stage``, appending the change (who, when, why) to its history.

        Allowed: candidate -> production | retired, production -> retired, retired -> production
        (a rollback). Promoting to production retires the current production model of the same
        (dataset, variable) in the same transaction, recorded with the same ``by`` / ``reason``.
        ``override`` and ``report`` are stored with the change. A production stage needs the gate's
        evidence: ``report`` recording a passed gate (path, sha256, ``gate.passed``), or ``override``
        with a reason; `forecast.registry.promote` judges the report and supplies it. Concurrent changes of one (dataset, variable) are serialised
        (row locks on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so there is never more than one
        production model.

        Raises:
            UnknownModelError: no model has this version.
            InvalidStageChangeError: unknown stage, a transition not allowed, or an empty ``by`` /
                ``reason``.
            BadInputError: ``report`` is not a JSON-able dict.
        """
        _check_stage(stage)
        by = _required("by", by, InvalidStageChangeError)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidStageChangeError(
                f"moving model {version} to {stage} needs a reason saying why (got an empty one)"
            )
        reason = reason.strip()
        if stage == "production" and not override and not _passed_gate(report):
            raise InvalidStageChangeError(
                f"model {version} can become production only through the promotion gate: record the hindcast "
                "report it passed (path, sha256 and the gate's verdict) or an override with a reason "
                "(forecast.registry.promote does both)")
        if report is not None:
            if not isinstance(report, dict):
                raise BadInputError(f"report must be a dict (the gate's findings), got {type(report).__name__}")
            report = _jsonable("report", report)
        with self._write.begin() as conn:
            head = conn.execute(
                select(_versions.c.dataset, _versions.c.variable).where(_versions.c.version == version)
            ).first()
            if head is None:
                raise UnknownModelError(self._unknown_message(conn, version))
            # lock every version of the pair, in one order: two changes of one pair wait for each other
            # (and re-read the committed stages), changes of different pairs do not
            pair = (
                conn.execute(
                    select(_versions.c.version, _versions.c.stage)
                    .where(_versions.c.dataset == head.dataset, _versions.c.variable == head.variable)
                    .order_by(_versions.c.number)
                    .with_for_update()
                )
                .mappings()
                .all()
            )
            now = datetime.now(timezone.utc)  # after the locks: a pair's history stays in time order
            current = next(r["stage"] for r in pair if r["version"] == version)
            if current == stage:
                raise InvalidStageChangeError(f"model {version} is already {stage}")
            if stage not in TRANSITIONS[current]:
                allowed = " or ".join(TRANSITIONS[current])
                why = " (a model is a candidate only by being registered)" if stage == "candidate" else ""
                raise InvalidStageChangeError(
                    f"model {version} is {current} and cannot become {stage}{why}; it can become {allowed}"
                )
            change = {"at": now, "by": by, "reason": reason, "override": bool(override), "report": report}
            if stage == "production":
                for r in pair:
                    if r["stage"] == "production":
                        conn.execute(
                            update(_versions).where(_versions.c.version == r["version"]).values(stage="retired")
                        )
                        conn.execute(insert(_changes).values(version=r["version"], from_stage="production",
                                                             to_stage="retired", **change))
                        log.info("model registry: %s retired (replaced by %s) by %s", r["version"], version, by)
            conn.execute(update(_versions).where(_versions.c.version == version).values(stage=stage))
            conn.execute(insert(_changes).values(version=version, from_stage=current, to_stage=stage, **change))
        log.info("model registry: %s %s -> %s by %s: %s", version, current, stage, by, reason)
        return self.get(version)


# --------------------------------------------------------------------------------------------
# helpers


def _passed_gate(report: Any) -> bool:
    """Whether ``report`` is the record of a hindcast report that passed the gate (path, sha256, verdict)."""
    return (isinstance(report, dict) and bool(report.get("path")) and bool(report.get("sha256"))
            and isinstance(report.get("gate"), dict) and report["gate"].get("passed") is True)


def _change(c) -> StageChange:
    return StageChange(at=c["at"], by=c["by"], from_stage=c["from_stage"], to_stage=c["to_stage"],
                       reason=c["reason"], override=bool(c["override"]),
                       report=dict(c["report"]) if c["report"] is not None else None)


def _check_stage(stage: Any) -> None:
    if stage not in STAGES:
        raise InvalidStageChangeError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")


def _required(what: str, value: Any, exc: type[BadInputError] = BadInputError) -> str:
    if not isinstance(value, str) or not value.strip():
        raise exc(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def _source_file(what: str, path: Path | str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"the {what} file {p} to register does not exist or is not a file")
    return p


def _record_fields(record: Any, dataset: str, variable: str) -> dict[str, Any]:
    """The training record split into its columns and ``extra``, validated and made JSON-able."""
    if not isinstance(record, dict):
        raise BadInputError(f"the training record must be a dict, got {type(record).__name__}")
    rec = _jsonable("record", record)
    for key, expected in (("dataset", dataset), ("variable", variable)):
        if key in rec and rec.pop(key) != expected:
            raise BadInputError(f"record[{key!r}] is {record[key]!r} but the model is registered for {expected!r}")
    for key in _RESERVED:
        if key in rec:
            raise BadInputError(f"record[{key!r}] is set by the registry; leave it out of the training record")
    out: dict[str, Any] = {}
    for key in _TEXT_FIELDS:
        v = rec.pop(key, None)
        if v is not None and not isinstance(v, str):
            raise BadInputError(f"record[{key!r}] must be a string or None, got {type(v).__name__}")
        out[key] = v
    for key in _DICT_FIELDS:
        v = rec.pop(key, None)
        if v is not None and not isinstance(v, dict):
            raise BadInputError(f"record[{key!r}] must be a dict, got {type(v).__name__}")
        out[key] = v or {}
    out["extra"] = rec
    return out


def _jsonable(what: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as stored JSON (`forecast.serialize.jsonable`, then a JSON round trip that refuses what
    JSON cannot hold), naming the key at fault."""
    out = {}
    for key, value in doc.items():
        if not isinstance(key, str):
            raise BadInputError(f"{what} keys must be strings, got {key!r}")
        try:
            out[key] = json.loads(json.dumps(jsonable(value)))
        except (TypeError, ValueError) as e:
            raise BadInputError(f"{what}[{key!r}] cannot be stored as JSON ({e})") from None
    return out


def _copy(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` (flushed to disk) and return the sha256 of the bytes written."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(1 << 20):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()

