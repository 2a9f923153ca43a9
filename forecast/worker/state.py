"""The worker's state in the service database: the cycle log (every init forecast, skipped or failed, with
its stages, inputs and lateness; append-only) and the writer lease of each store (one active worker per
store; a standby takes over when the holder stops renewing it).

Lease times are wall-clock times (they are about processes being alive), cycle times are the clock's
(a replay's own time). When the database cannot be reached the worker keeps cycling and keeps the rows
in a spool file (`Spool`), written to the database when it is back: nothing is lost.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from forecast.db.engine import SQLStore
from forecast.db.tables import worker_cycles, worker_leases
from forecast.serialize import jsonable
from forecast.timeutil import iso, parse_time

log = logging.getLogger(__name__)

__all__ = ["CYCLE_STATUSES", "Spool", "WorkerState"]

CYCLE_STATUSES = ("done", "skipped", "failed")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class WorkerState(SQLStore):
    """The cycle log and the leases on one database (the service database)."""

    def __init__(self, url: str, *, schema: str | None = None):
        self._open(url, schema=schema)

    def ping(self) -> None:
        """A round trip to the database (raises when it cannot be reached)."""
        with self._read.begin() as conn:
            conn.execute(select(1))

    # -- the cycle log ----------------------------------------------------------------------------

    def record(self, rows: list[dict[str, Any]]) -> int:
        """Append cycle outcomes; a second ``done`` of one init (a restarted worker redoing it) is dropped.
        Returns how many rows were added."""
        added = 0
        for row in rows:
            values = {**row, "init_time": _dt(row["init_time"]), "started_at": _dt(row["started_at"]),
                      "finished_at": _dt(row["finished_at"]), "due_at": _dt(row.get("due_at")),
                      "deadline_at": _dt(row.get("deadline_at"))}
            try:
                with self._write.begin() as conn:
                    conn.execute(insert(worker_cycles).values(**values))
                added += 1
            except IntegrityError:
                log.info("cycle of %s/%s %s is already recorded as done", row["dataset"], row["variable"],
                         iso(values["init_time"]))
        return added

    def outcomes(self, dataset: str, variable: str, since: datetime) -> dict[datetime, str]:
        """Per init time from ``since`` on: ``done`` when it was forecast, else its last outcome."""
        q = (select(worker_cycles.c.init_time, worker_cycles.c.status)
             .where(worker_cycles.c.dataset == dataset, worker_cycles.c.variable == variable,
                    worker_cycles.c.init_time >= since)
             .order_by(worker_cycles.c.id))
        out: dict[datetime, str] = {}
        with self._read.begin() as conn:
            for t, status in conn.execute(q):
                if out.get(t) != "done":
                    out[t] = status
        return out

    def last_outcome_time(self, dataset: str, variable: str) -> datetime | None:
        """The newest init time that has an outcome (done or skipped)."""
        q = select(func.max(worker_cycles.c.init_time)).where(
            worker_cycles.c.dataset == dataset, worker_cycles.c.variable == variable,
            worker_cycles.c.status.in_(("done", "skipped")))
        with self._read.begin() as conn:
            return conn.execute(q).scalar_one_or_none()

    def recent(self, dataset: str | None = None, *, limit: int = 50, status: str | None = None) -> list[dict]:
        """The newest cycle outcomes, newest first."""
        q = select(worker_cycles)
        if dataset is not None:
            q = q.where(worker_cycles.c.dataset == dataset)
        if status is not None:
            q = q.where(worker_cycles.c.status == status)
        q = q.order_by(worker_cycles.c.id.desc()).limit(limit)
        with self._read.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def summary(self, dataset: str | None = None, *, since: datetime | None = None) -> dict[str, Any]:
        """Counts for status reports and metrics: cycles done, deadline misses, skipped inits (with their
        reasons), fallbacks by reason; ``since`` limits them to recent finishes."""
        c = worker_cycles.c
        where = [c.dataset == dataset] if dataset is not None else []
        if since is not None:
            where.append(c.finished_at >= since)
        with self._read.begin() as conn:
            by_status = dict(conn.execute(select(c.status, func.count()).where(*where).group_by(c.status)).all())
            misses = conn.execute(select(func.count()).where(*where, c.deadline_missed.is_(True))).scalar_one()
            skipped = conn.execute(select(c.reason, func.count()).where(*where, c.status == "skipped")
                                   .group_by(c.reason)).all()
            fallbacks = conn.execute(select(c.fallback).where(*where, c.status == "done", c.fallback.is_not(None))
                                     ).scalars().all()
        reasons: dict[str, int] = {}
        for fb in fallbacks:
            key = _fallback_kind((fb or {}).get("reason", "")) if isinstance(fb, dict) else "unknown"
            reasons[key] = reasons.get(key, 0) + 1
        return {"done": int(by_status.get("done", 0)), "failed": int(by_status.get("failed", 0)),
                "deadline_misses": int(misses),
                "skipped": {"count": int(by_status.get("skipped", 0)),
                            "reasons": {r or "": int(n) for r, n in skipped}},
                "fallbacks": reasons}

    # -- the lease ----------------------------------------------------------------------------------

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take (or renew) the lease ``name`` for ``holder`` unless another holder's lease is still valid."""
        now = _utc_now()
        exp = now + timedelta(seconds=ttl_s)
        with self._write.begin() as conn:
            got = conn.execute(
                update(worker_leases)
                .where(worker_leases.c.name == name,
                       or_(worker_leases.c.holder == holder, worker_leases.c.expires_at < now))
                .values(holder=holder, heartbeat_at=now, expires_at=exp,
                        acquired_at=case((worker_leases.c.holder == holder, worker_leases.c.acquired_at), else_=now))
            ).rowcount
            if got:
                return True
            exists = conn.execute(select(worker_leases.c.name).where(worker_leases.c.name == name)).first()
            if exists is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(worker_leases).values(name=name, holder=holder, acquired_at=now,
                                                              heartbeat_at=now, expires_at=exp))
                return True
            except IntegrityError:  # another worker inserted it first
                return False

    def renew(self, name: str, holder: str, ttl_s: float) -> bool:
        """Extend a lease we hold; False when it is no longer ours (another worker took it over)."""
        now = _utc_now()
        with self._write.begin() as conn:
            return bool(conn.execute(
                update(worker_leases).where(worker_leases.c.name == name, worker_leases.c.holder == holder)
                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s))).rowcount)

    def release(self, name: str, holder: str) -> None:
        """Give the lease up (a clean exit): a standby may take it at once."""
        with self._write.begin() as conn:
            conn.execute(update(worker_leases).where(worker_leases.c.name == name, worker_leases.c.holder == holder)
                         .values(expires_at=_utc_now() - timedelta(seconds=1)))

    def leases(self) -> list[dict[str, Any]]:
        now = _utc_now()
        with self._read.begin() as conn:
            rows = [dict(r) for r in conn.execute(select(worker_leases).order_by(worker_leases.c.name)).mappings()]
        for r in rows:
            r["active"] = r["expires_at"] > now
        return rows


def _fallback_kind(reason: str) -> str:
    """A short, stable label of a fallback reason for counting (the full sentence is in the log)."""
    r = reason.lower()
    for key, words in (("deadline", ("deadline",)), ("no_model", ("no model", "in production", "no model registry")),
                       ("checkpoint", ("checkpoint", "sha256")), ("degraded_inputs", ("fail, rejected or missing",)),
                       ("model_error", ("failed:", "died"))):
        if any(w in r for w in words):
            return key
    return "other"


def _dt(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return parse_time(str(v))


class Spool:
    """Rows that could not reach the database, kept in a JSON-lines file until they can (one line per
    row; written before the worker moves on, so a crash loses nothing either)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def add(self, kind: str, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"kind": kind, "row": jsonable(row)}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            if line.strip():
                doc = json.loads(line)
                out.append((doc["kind"], doc["row"]))
        return out

    def __len__(self) -> int:
        return len(self.pending())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
