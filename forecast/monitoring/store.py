"""The monitor's tables in the service database (`forecast.db.tables`): verifications, input features,
the monitor's state documents, alerts and their append-only history. SQLite and PostgreSQL alike.

Times are aware UTC datetimes. Verification and feature times are the clock's (a replay's own time); an
acknowledgement is stamped with the wall clock (a person acts now).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any
from collections.abc import Iterable

from sqlalchemy import delete, desc, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from forecast.db.engine import SQLStore
from forecast.db.tables import (
    monitor_alert_events,
    monitor_alerts,
    monitor_features,
    monitor_state,
    monitor_verifications,
)
from forecast.errors import BadInputError
from forecast.serialize import jsonable

log = logging.getLogger(__name__)

__all__ = ["AlertConflict", "MonitorDB", "UnknownAlertError", "alert_key"]

_V = monitor_verifications.c
_A = monitor_alerts.c
#: verification columns read for windows (everything but nothing heavy is left out; ``record`` is small)
_LIGHT = [c for c in monitor_verifications.c if c.name not in ("record", "strata", "scores")]


class UnknownAlertError(BadInputError, KeyError):
    """No alert has this id."""

    def __str__(self) -> str:
        return str(self.args[0])


class AlertConflict(BadInputError):
    """The alert was acknowledged already (the message names by whom and when)."""

    def __init__(self, msg: str, *, by: str, at: datetime):
        super().__init__(msg)
        self.by, self.at = by, at


def alert_key(rule: str, dataset: str, variable: str, subject: str) -> str:
    """The identity of an alert: one firing alert per key at a time."""
    return hashlib.sha256("\x1f".join((rule, dataset, variable, subject)).encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Alert:
    id: int
    rule: str
    kind: str
    dataset: str
    variable: str
    subject: str
    severity: str
    state: str
    since: datetime
    resolved_at: datetime | None
    value: float | None
    message: str
    details: dict
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None
    updated_at: datetime
    key: str
    events: list[dict] | None = None

    def to_json(self) -> dict[str, Any]:
        from forecast.timeutil import iso

        doc = {"id": self.id, "rule": self.rule, "kind": self.kind, "dataset": self.dataset,
               "variable": self.variable, "subject": self.subject, "severity": self.severity, "state": self.state,
               "since": iso(self.since), "resolved_at": iso(self.resolved_at) if self.resolved_at else None,
               "value": self.value, "message": self.message, "details": self.details,
               "acknowledged": self.acknowledged_by is not None, "acknowledged_by": self.acknowledged_by,
               "acknowledged_at": iso(self.acknowledged_at) if self.acknowledged_at else None,
               "ack_comment": self.ack_comment, "updated_at": iso(self.updated_at)}
        if self.events is not None:
            doc["events"] = [{**e, "at": iso(e["at"])} for e in self.events]
        return jsonable(doc)


def _alert(r) -> Alert:
    return Alert(id=r["id"], rule=r["rule"], kind=r["kind"], dataset=r["dataset"], variable=r["variable"],
                 subject=r["subject"], severity=r["severity"], state=r["state"], since=r["since"],
                 resolved_at=r["resolved_at"], value=r["value"], message=r["message"], details=dict(r["details"] or {}),
                 acknowledged_by=r["acknowledged_by"], acknowledged_at=r["acknowledged_at"],
                 ack_comment=r["ack_comment"], updated_at=r["updated_at"], key=r["key"])


class MonitorDB(SQLStore):
    """The monitor's rows on one database (the service database)."""

    def __init__(self, url: str, *, schema: str | None = None):
        self._open(url, schema=schema)

    # -- verifications --------------------------------------------------------------------------------

    def add_verifications(self, rows: list[dict[str, Any]]) -> int:
        """Insert verifications (one init, every method) and make them the current ones of their init and
        method; returns the version written. A row's ``version`` is assigned here: 0 (preliminary) for the
        first, one more than the newest for a re-verification (final)."""
        if not rows:
            return -1
        ds, var, init = rows[0]["dataset"], rows[0]["variable"], rows[0]["init_time"]
        with self._write.begin() as conn:
            newest = conn.execute(select(func.max(_V.version)).where(
                _V.dataset == ds, _V.variable == var, _V.init_time == init)).scalar_one_or_none()
            version = 0 if newest is None else int(newest) + 1
            conn.execute(update(monitor_verifications).where(
                _V.dataset == ds, _V.variable == var, _V.init_time == init, _V.current.is_(True)).values(current=False))
            for row in rows:
                conn.execute(insert(monitor_verifications).values(
                    **{**row, "version": version, "current": True,
                       "stage": "preliminary" if version == 0 else "final"}))
        return version

    def verified(self, dataset: str, variable: str, since: datetime) -> dict[datetime, dict[str, Any]]:
        """Per init from ``since`` on: the current model verification's version, observation revisions and
        lead times (what revisions are compared with)."""
        q = (select(_V.init_time, _V.version, _V.obs_revisions, _V.lead_s)
             .where(_V.dataset == dataset, _V.variable == variable, _V.current.is_(True), _V.method == "model",
                    _V.init_time >= since))
        with self._read.begin() as conn:
            return {r.init_time: {"version": r.version, "obs_revisions": list(r.obs_revisions),
                                  "lead_s": list(r.lead_s)} for r in conn.execute(q)}

    def verifications(self, dataset: str, variable: str, *, since: datetime | None = None,
                      until: datetime | None = None, methods: Iterable[str] | None = None, current: bool | None = True,
                      heavy: bool = True, init: datetime | None = None) -> list[dict[str, Any]]:
        """Verification rows in init order (``heavy``: with record, scores and strata)."""
        cols = list(monitor_verifications.c) if heavy else _LIGHT
        q = select(*cols).where(_V.dataset == dataset, _V.variable == variable)
        if current is not None:
            q = q.where(_V.current.is_(current))
        if since is not None:
            q = q.where(_V.init_time >= since)
        if until is not None:
            q = q.where(_V.init_time <= until)
        if init is not None:
            q = q.where(_V.init_time == init)
        if methods is not None:
            q = q.where(_V.method.in_(list(methods)))
        q = q.order_by(_V.init_time, _V.method, _V.version)
        with self._read.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def staged_inits(self, dataset: str, variable: str, *, since: datetime | None = None) -> list[datetime]:
        """Inits whose verification was redone (an observation they used was revised or came late)."""
        q = select(_V.init_time).where(_V.dataset == dataset, _V.variable == variable, _V.method == "model",
                                       _V.version > 0)
        if since is not None:
            q = q.where(_V.init_time >= since)
        with self._read.begin() as conn:
            return sorted(set(conn.execute(q).scalars()))

    def variables(self, dataset: str | None = None) -> list[tuple[str, str]]:
        """(dataset, variable) pairs that have verifications or features."""
        out = set()
        with self._read.begin() as conn:
            for t in (monitor_verifications, monitor_features, monitor_state):
                q = select(t.c.dataset, t.c.variable).distinct()
                if dataset is not None:
                    q = q.where(t.c.dataset == dataset)
                out |= {(a, b) for a, b in conn.execute(q) if b != "*"}
        return sorted(out)

    def last_verified(self, dataset: str, variable: str) -> datetime | None:
        q = select(func.max(_V.init_time)).where(_V.dataset == dataset, _V.variable == variable)
        with self._read.begin() as conn:
            return conn.execute(q).scalar_one_or_none()

    # -- features -------------------------------------------------------------------------------------

    def put_features(self, dataset: str, variable: str, rows: list[tuple[datetime, int, dict]], now: datetime) -> None:
        """Store (or replace: a revised slot) the features of slots."""
        if not rows:
            return
        with self._write.begin() as conn:
            for t, rev, feats in rows:
                conn.execute(delete(monitor_features).where(
                    monitor_features.c.dataset == dataset, monitor_features.c.variable == variable,
                    monitor_features.c.slot_time == t))
                conn.execute(insert(monitor_features).values(dataset=dataset, variable=variable, slot_time=t,
                                                             revision=int(rev), features=jsonable(feats),
                                                             computed_at=now))

    def features(self, dataset: str, variable: str, *, since: datetime | None = None,
                 until: datetime | None = None) -> list[tuple[datetime, int, dict]]:
        c = monitor_features.c
        q = select(c.slot_time, c.revision, c.features).where(c.dataset == dataset, c.variable == variable)
        if since is not None:
            q = q.where(c.slot_time >= since)
        if until is not None:
            q = q.where(c.slot_time <= until)
        with self._read.begin() as conn:
            return [(r.slot_time, r.revision, r.features) for r in conn.execute(q.order_by(c.slot_time))]

    def feature_revisions(self, dataset: str, variable: str, since: datetime) -> dict[datetime, int]:
        c = monitor_features.c
        q = select(c.slot_time, c.revision).where(c.dataset == dataset, c.variable == variable, c.slot_time >= since)
        with self._read.begin() as conn:
            return {r.slot_time: r.revision for r in conn.execute(q)}

    # -- state ----------------------------------------------------------------------------------------

    def get_state(self, dataset: str, variable: str, name: str, default: Any = None) -> Any:
        c = monitor_state.c
        q = select(c.value).where(c.dataset == dataset, c.variable == variable, c.name == name)
        with self._read.begin() as conn:
            v = conn.execute(q).scalar_one_or_none()
        return default if v is None else v

    def put_state(self, dataset: str, variable: str, name: str, value: Any, now: datetime | None = None) -> None:
        c = monitor_state.c
        now = now or _now()
        value = jsonable(value)
        with self._write.begin() as conn:
            got = conn.execute(update(monitor_state).where(c.dataset == dataset, c.variable == variable,
                                                           c.name == name).values(value=value, updated_at=now)).rowcount
            if not got:
                conn.execute(insert(monitor_state).values(dataset=dataset, variable=variable, name=name, value=value,
                                                          updated_at=now))

    def states(self, name: str, dataset: str | None = None) -> list[tuple[str, str, Any, datetime]]:
        c = monitor_state.c
        q = select(c.dataset, c.variable, c.value, c.updated_at).where(c.name == name)
        if dataset is not None:
            q = q.where(c.dataset == dataset)
        with self._read.begin() as conn:
            return [(r.dataset, r.variable, r.value, r.updated_at) for r in conn.execute(q.order_by(c.dataset,
                                                                                                     c.variable))]

    # -- alerts ---------------------------------------------------------------------------------------

    def firing(self, dataset: str | None = None, variable: str | None = None) -> dict[str, Alert]:
        """Firing alerts by key."""
        q = select(monitor_alerts).where(_A.state == "firing")
        if dataset is not None:
            q = q.where(_A.dataset == dataset)
        if variable is not None:
            q = q.where(_A.variable == variable)
        with self._read.begin() as conn:
            return {r["key"]: _alert(r) for r in conn.execute(q).mappings()}

    def fire(self, *, rule: str, kind: str, dataset: str, variable: str, subject: str, severity: str,
             since: datetime, value: float | None, message: str, details: dict) -> Alert | None:
        """Open a firing alert (None when one of this key fires already: deduplicated)."""
        key = alert_key(rule, dataset, variable, subject)
        try:
            with self._write.begin() as conn:
                with conn.begin_nested():
                    aid = conn.execute(insert(monitor_alerts).values(
                        key=key, rule=rule, kind=kind, dataset=dataset, variable=variable, subject=subject,
                        severity=severity, state="firing", since=since, value=value, message=message,
                        details=jsonable(details), updated_at=since).returning(_A.id)).scalar_one()
                    conn.execute(insert(monitor_alert_events).values(
                        alert_id=aid, at=since, kind="fired", actor="monitor",
                        details=jsonable({"value": value, "message": message})))
        except IntegrityError:
            return None
        return self.alert(aid)

    def update_firing(self, alert_id: int, *, value: float | None, message: str, details: dict,
                      at: datetime) -> None:
        """The newest value of a firing alert (no event: the alert history records transitions)."""
        with self._write.begin() as conn:
            conn.execute(update(monitor_alerts).where(_A.id == alert_id, _A.state == "firing").values(
                value=value, message=message, details=jsonable(details), updated_at=at))

    def resolve(self, alert_id: int, *, at: datetime, value: float | None, message: str) -> Alert | None:
        with self._write.begin() as conn:
            got = conn.execute(update(monitor_alerts).where(_A.id == alert_id, _A.state == "firing").values(
                state="resolved", resolved_at=at, value=value, message=message, updated_at=at)).rowcount
            if not got:
                return None
            conn.execute(insert(monitor_alert_events).values(alert_id=alert_id, at=at, kind="resolved",
                                                             actor="monitor",
                                                             details=jsonable({"value": value, "message": message})))
        return self.alert(alert_id)

    def acknowledge(self, alert_id: int, *, by: str, comment: str, at: datetime | None = None) -> Alert:
        """Record that ``by`` acknowledged the alert, with a comment (kept in the alert history).

        Raises:
            BadInputError: no name or no comment; UnknownAlertError: no such alert; AlertConflict: it was
                acknowledged already.
        """
        by, comment = (by or "").strip(), (comment or "").strip()
        if not by:
            raise BadInputError("an acknowledgement needs the name of who acknowledges", param="by")
        if not comment:
            raise BadInputError("an acknowledgement needs a comment saying what is being done", param="comment")
        at = at or _now()
        with self._write.begin() as conn:
            row = conn.execute(select(monitor_alerts).where(_A.id == alert_id).with_for_update()).mappings().first()
            if row is None:
                raise UnknownAlertError(f"no alert has id {alert_id}")
            if row["acknowledged_by"] is not None:
                from forecast.timeutil import iso

                raise AlertConflict(f"alert {alert_id} was acknowledged already by {row['acknowledged_by']} at "
                                    f"{iso(row['acknowledged_at'])}", by=row["acknowledged_by"],
                                    at=row["acknowledged_at"])
            conn.execute(update(monitor_alerts).where(_A.id == alert_id).values(
                acknowledged_by=by, acknowledged_at=at, ack_comment=comment, updated_at=at))
            conn.execute(insert(monitor_alert_events).values(alert_id=alert_id, at=at, kind="acknowledged", actor=by,
                                                             details={"comment": comment, "state": row["state"]}))
        return self.alert(alert_id)

    def add_event(self, alert_id: int, kind: str, *, actor: str = "monitor", details: dict | None = None,
                  at: datetime | None = None) -> None:
        with self._write.begin() as conn:
            conn.execute(insert(monitor_alert_events).values(alert_id=alert_id, at=at or _now(), kind=kind,
                                                             actor=actor, details=jsonable(details or {})))

    def alert(self, alert_id: int) -> Alert:
        with self._read.begin() as conn:
            row = conn.execute(select(monitor_alerts).where(_A.id == alert_id)).mappings().first()
            if row is None:
                raise UnknownAlertError(f"no alert has id {alert_id}")
            ev = monitor_alert_events.c
            events = [dict(r) for r in conn.execute(select(ev.id, ev.at, ev.kind, ev.actor, ev.details)
                                                    .where(ev.alert_id == alert_id).order_by(ev.id)).mappings()]
        a = _alert(row)
        a.events = events
        return a

    def alerts(self, *, state: str | None = None, dataset: str | None = None, limit: int = 200,
               events: bool = False) -> list[Alert]:
        """Alerts, firing first then newest first."""
        if state is not None and state not in ("firing", "resolved"):
            raise BadInputError(f"state must be firing or resolved, got {state!r}", param="state")
        q = select(monitor_alerts)
        if state is not None:
            q = q.where(_A.state == state)
        if dataset is not None:
            q = q.where(_A.dataset == dataset)
        q = q.order_by(desc(_A.state == "firing"), desc(_A.since), desc(_A.id)).limit(limit)
        with self._read.begin() as conn:
            out = [_alert(r) for r in conn.execute(q).mappings()]
            if events and out:
                ev = monitor_alert_events.c
                by: dict[int, list] = {}
                for r in conn.execute(select(ev.id, ev.alert_id, ev.at, ev.kind, ev.actor, ev.details)
                                      .where(ev.alert_id.in_([a.id for a in out])).order_by(ev.id)).mappings():
                    d = dict(r)
                    by.setdefault(d.pop("alert_id"), []).append(d)
                for a in out:
                    a.events = by.get(a.id, [])
        return out

    def counts(self, dataset: str | None = None) -> dict[str, int]:
        q = select(_A.state, func.count()).group_by(_A.state)
        if dataset is not None:
            q = q.where(_A.dataset == dataset)
        with self._read.begin() as conn:
            return {s: int(n) for s, n in conn.execute(q)}

    def events_since(self, after_id: int = 0, *, kinds: Iterable[str] | None = None) -> list[dict]:
        ev = monitor_alert_events.c
        q = select(monitor_alert_events).where(ev.id > after_id)
        if kinds is not None:
            q = q.where(ev.kind.in_(list(kinds)))
        with self._read.begin() as conn:
            return [dict(r) for r in conn.execute(q.order_by(ev.id)).mappings()]

