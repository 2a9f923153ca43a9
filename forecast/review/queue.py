"""The operator review queue: enqueue events, list and read items, record decisions under the
four-eyes rule with optimistic concurrency, keep the audit log, hand final decisions to the
store's writer. Works unchanged on SQLite (embedded default) and PostgreSQL.

States of an item::

    open ──accept──────────────────────────────────────────► (cells decided)
      │ └─reject, item not beyond its record ──────────────► (cells decided)
      └─reject, item beyond its record ──► pending ──reject by another operator──► (cells decided)
                                             └──accept by anyone────────────────► (cells decided)

An item is ``decided`` once every one of its cells is covered by a final decision, ``open``
while cells remain, ``pending`` while a reject awaits its second operator.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from forecast.db.engine import SQLStore
from forecast.db.tables import (
    CELLS_ENCODING,
    AuditRow,
    DecisionRow,
    ItemCellsRow,
    ItemRow,
)
from forecast.review.errors import (
    InvalidDecision,
    InvalidRequest,
    ItemNotFound,
    ReviewConflict,
)
from forecast.review.records import (
    AuditEntry,
    Decision,
    EnqueueResult,
    Item,
    ItemDetail,
    Writeback,
    audit_from_row,
    decision_from_row,
    finite_or_none,
    item_fields,
    item_from_row,
    pack_cells,
    unpack_cells,
    utc_now,
)
from forecast.review.rules import FourEyesRefusal, cells_arg, plan_decision
from qc.events import Event

__all__ = [
    "ReviewQueue",
    "Item",
    "ItemDetail",
    "Decision",
    "AuditEntry",
    "Writeback",
    "EnqueueResult",
    "STATES",
    "ACTIONS",
]

log = logging.getLogger(__name__)

STATES = ("open", "pending", "decided")
ACTIONS = ("accept", "reject")

_items = ItemRow.__table__
_cells = ItemCellsRow.__table__
_decisions = DecisionRow.__table__
_audit = AuditRow.__table__



class _Lost(Exception):
    """Internal: the versioned UPDATE changed no row; the transaction is rolled back first."""

    def __init__(self, version: int):
        self.version = version


class _Refused(Exception):
    """Internal: the decision must be refused and the refusal audited after the rollback."""

    def __init__(self, error: Exception, audit: dict[str, Any]):
        self.error, self.audit = error, audit


# --------------------------------------------------------------------------------------------
# the queue


class ReviewQueue(SQLStore):
    """The review queue on one database.

    ``url``: an SQLAlchemy URL, e.g. ``sqlite:////srv/forecast/review.db`` (the folder is
    created; WAL journal, ``busy_timeout_s`` busy timeout, write transactions ``BEGIN
    IMMEDIATE`` so that concurrent writers queue instead of failing) or
    ``postgresql+psycopg://user@host/db``. ``schema``: PostgreSQL schema to hold the tables
    (created when missing; not supported on SQLite). Tables (and the audit log's
    append-only triggers) are created when missing, safely from several processes at once.
    """

    def __init__(
        self, url: str, *, schema: str | None = None, busy_timeout_s: float = 30.0, echo: bool = False
    ):
        self._open(url, schema=schema, busy_timeout_s=busy_timeout_s, echo=echo, error=InvalidRequest)

    def _repr_args(self) -> str:
        return f"schema={self.schema!r}"

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(self, events: Iterable[Event], *, by: str = "qc") -> EnqueueResult:
        """Queue events; an event whose key is already queued is left as it is (idempotent).

        Args:
            events: from ``find_events`` (anything with the same fields).
            by: the actor written to the audit log.

        Returns:
            ``EnqueueResult(added, existing, item_ids)``.
        """
        events = builtins.list(events)
        by = _name("by", by, InvalidRequest)
        if not events:
            return EnqueueResult(0, 0, ())
        for attempt in range(3):
            try:
                return self._enqueue(events, by)
            except IntegrityError:
                # another process queued one of these keys between our lookup and insert
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _enqueue(self, events: builtins.list[Event], by: str) -> EnqueueResult:
        now = utc_now()
        keys = [e.key for e in events]
        with self._write.begin() as conn:
            known: dict[str, int] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                known.update(
                    (k, i)
                    for k, i in conn.execute(select(_items.c.key, _items.c.id).where(_items.c.key.in_(chunk)))
                )
            new, seen = [], set()
            for e in events:
                if e.key not in known and e.key not in seen:
                    seen.add(e.key)
                    new.append(e)
            if new:
                rows = [_event_row(e, now, by) for e in new]
                ids = (
                    conn.execute(insert(_items).returning(_items.c.id, sort_by_parameter_order=True), rows)
                    .scalars()
                    .all()
                )
                conn.execute(
                    insert(_cells),
                    [
                        {"item_id": i, "n": e.n_cells, "encoding": CELLS_ENCODING, "data": pack_cells(e.cells)}
                        for i, e in zip(ids, new, strict=True)
                    ],
                )
                conn.execute(
                    insert(_audit),
                    [
                        {
                            "at": now,
                            "actor": by,
                            "action": "enqueue",
                            "item_id": i,
                            "decision_id": None,
                            "details": {
                                "key": e.key,
                                "dataset": e.dataset,
                                "variable": e.variable,
                                "n_cells": e.n_cells,
                                "hazard": e.hazard,
                                "t_first": e.t_first.isoformat(),
                                "t_last": e.t_last.isoformat(),
                            },
                        }
                        for i, e in zip(ids, new, strict=True)
                    ],
                )
                known.update({e.key: i for e, i in zip(new, ids, strict=True)})
        added = len(new)
        log.info("review queue: %d event(s) added, %d already queued", added, len(events) - added)
        return EnqueueResult(added, len(events) - added, tuple(known[k] for k in keys))

    # -- reading ------------------------------------------------------------------------------

    def list(
        self,
        dataset: str | None = None,
        state: str | None = None,
        *,
        variable: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        since: datetime | None = None,
    ) -> builtins.list[Item]:
        """Items, most hazardous first (then larger first, then oldest id); ``since``: only items whose
        events end at or after that time (an operator's "last 24 hours").

        Raises:
            InvalidRequest: ``state`` is not one of ``open``, ``pending``, ``decided``.
        """
        if state is not None and state not in STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATES)}, got {state!r}")
        q = select(_items)
        if dataset is not None:
            q = q.where(_items.c.dataset == dataset)
        if state is not None:
            q = q.where(_items.c.state == state)
        if variable is not None:
            q = q.where(_items.c.variable == variable)
        if since is not None:
            q = q.where(_items.c.t_last >= since)
        q = q.order_by(_items.c.hazard.desc(), _items.c.n_cells.desc(), _items.c.id).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self._read.begin() as conn:
            return [item_from_row(r) for r in conn.execute(q).mappings()]

    def counts(self, dataset: str | None = None) -> dict[str, int]:
        """Items per state (every state present, zero included), counted by the database."""
        q = select(_items.c.state, func.count()).group_by(_items.c.state)
        if dataset is not None:
            q = q.where(_items.c.dataset == dataset)
        out = dict.fromkeys(STATES, 0)
        with self._read.begin() as conn:
            out.update({state: int(n) for state, n in conn.execute(q)})
        return out

    def get(self, item_id: int) -> ItemDetail:
        """One item with its cells, decisions and audit trail.

        Raises:
            ItemNotFound: no item has this id.
        """
        with self._read.begin() as conn:
            r = conn.execute(select(_items).where(_items.c.id == item_id)).mappings().first()
            if r is None:
                raise ItemNotFound(item_id)
            blob = conn.execute(select(_cells.c.data).where(_cells.c.item_id == item_id)).scalar_one()
            decisions = (
                conn.execute(
                    select(_decisions).where(_decisions.c.item_id == item_id).order_by(_decisions.c.id)
                )
                .mappings()
                .all()
            )
            audit = (
                conn.execute(select(_audit).where(_audit.c.item_id == item_id).order_by(_audit.c.id))
                .mappings()
                .all()
            )
        return ItemDetail(
            **item_fields(r),
            cells=unpack_cells(blob),
            decisions=tuple(decision_from_row(d) for d in decisions),
            audit=tuple(audit_from_row(a) for a in audit),
        )

    def audit_log(
        self, *, item_id: int | None = None, since_id: int = 0, limit: int | None = None
    ) -> builtins.list[AuditEntry]:
        """Audit rows, oldest first (all items, or one item's); read-only by design."""
        q = select(_audit).where(_audit.c.id > since_id)
        if item_id is not None:
            q = q.where(_audit.c.item_id == item_id)
        q = q.order_by(_audit.c.id)
        if limit is not None:
            q = q.limit(limit)
        with self._read.begin() as conn:
            return [audit_from_row(r) for r in conn.execute(q).mappings()]

    # -- decisions ----------------------------------------------------------------------------

    def decide(
        self,
        item_id: int,
        action: str,
        *,
        by: str,
        comment: str,
        cells: Any = None,
        expected_version: int | None = None,
    ) -> Decision:
        """Record an operator's decision on an item (or on some of its cells).

        ``accept``: the values are real extremes (flags -> GOOD + REVIEWED_ACCEPTED).
        ``reject``: the values are faults (flags -> FAIL + REVIEWED_REJECTED).

        Four-eyes rule: rejecting an item whose values go beyond the climatological record
        (``exceeds_record``) takes two different operators. The first reject is recorded with
        status ``awaiting_second`` and puts the item in ``pending``; its cells stay SUSPECT and
        nothing is written back. While pending, the item takes only a decision on exactly the
        pending cells (``cells`` omitted or equal to them):

        - a reject by a *different* operator confirms it: a ``final`` rejected decision is
          recorded, the first one becomes ``confirmed``;
        - a reject by the *same* operator (names compared case-insensitively) is refused with
          ``FourEyesError`` (and audited);
        - an accept by anyone (the proposer included, who thereby withdraws the reject) resolves
          it as accepted: a ``final`` accepted decision, the reject becomes ``overruled``. An
          accept needs one operator: keeping an extreme value is the default the rule protects.

        A reject of an item that is not beyond its record (SUSPECT for another test) is final
        at once. Accepts are always final at once.

        ``cells``: ``None`` = every cell of the item not yet decided, or an ``(n, 3)`` array /
        sequence of ``(slot epoch s, iy, ix)`` among those cells. The item is ``decided`` once
        all its cells are finally decided.

        Concurrency: the item row carries a version. The decision is written with
        ``UPDATE ... WHERE id = :id AND version = :v`` and lands only when exactly one row
        changed; ``v`` is ``expected_version`` (the version the operator looked at) or else
        the version read in the same transaction. Two operators deciding at once: one lands,
        the other gets ``ReviewConflict`` naming who changed the item and when.

        Raises:
            InvalidDecision: unknown action, empty ``by`` or ``comment``, cells not in the item,
                already decided, or not the pending ones.
            ItemNotFound: no item has this id.
            ReviewConflict: the item changed since ``expected_version``, was already decided,
                or another decision landed first.
            FourEyesError: the operator who proposed a reject tried to confirm it.
        """
        if action not in ACTIONS:
            raise InvalidDecision(f"action must be 'accept' or 'reject', got {action!r}")
        by = _name("by", by, InvalidDecision)
        if not isinstance(comment, str) or not comment.strip():
            raise InvalidDecision("a decision needs a comment saying why (got an empty one)")
        comment = comment.strip()
        chosen = None if cells is None else cells_arg(cells)
        try:
            with self._write.begin() as conn:
                return self._decide(conn, item_id, action, by, comment, chosen, expected_version)
        except _Refused as r:
            self._audit_refusal(by, item_id, r.audit)
            raise r.error from None
        except _Lost as lost:
            with self._read.begin() as conn:
                latest = conn.execute(select(_items).where(_items.c.id == item_id)).mappings().one()
            self._audit_refusal(
                by,
                item_id,
                {
                    "action": "conflict_refused",
                    "attempted": action,
                    "expected_version": lost.version,
                    "version": latest["version"],
                    "state": latest["state"],
                    "last_by": latest["updated_by"],
                    "last_at": latest["updated_at"].isoformat(),
                },
            )
            raise ReviewConflict(
                item_id,
                by=latest["updated_by"],
                at=latest["updated_at"],
                state=latest["state"],
                version=latest["version"],
                seen=lost.version,
            ) from None

    def _decide(self, conn, item_id, action, by, comment, chosen, expected_version) -> Decision:
        row = conn.execute(select(_items).where(_items.c.id == item_id)).mappings().first()
        if row is None:
            raise ItemNotFound(item_id)
        v = row["version"] if expected_version is None else int(expected_version)
        if row["version"] != v or row["state"] == "decided":
            raise _Refused(
                ReviewConflict(
                    item_id,
                    by=row["updated_by"],
                    at=row["updated_at"],
                    state=row["state"],
                    version=row["version"],
                    seen=expected_version,
                ),
                {
                    "action": "conflict_refused",
                    "attempted": action,
                    "expected_version": expected_version,
                    "version": row["version"],
                    "state": row["state"],
                    "last_by": row["updated_by"],
                    "last_at": row["updated_at"].isoformat(),
                },
            )
        now = utc_now()
        all_cells = unpack_cells(
            conn.execute(select(_cells.c.data).where(_cells.c.item_id == item_id)).scalar_one()
        )
        prior = (
            conn.execute(
                select(_decisions.c.id, _decisions.c.status, _decisions.c.by, _decisions.c.cells, _decisions.c.outcome)
                .where(_decisions.c.item_id == item_id, _decisions.c.status.in_(("final", "awaiting_second")))
                .order_by(_decisions.c.id)
            )
            .mappings()
            .all()
        )
        try:
            plan = plan_decision(row, all_cells, prior, action, by, chosen)
        except FourEyesRefusal as r:
            raise _Refused(
                r.error, {"action": "four_eyes_refused", "attempted": action, "pending_decision": r.pending_id}
            ) from None
        target, status, outcome, resolves, state = plan.target, plan.status, plan.outcome, plan.resolves, plan.state

        res = conn.execute(
            update(_items)
            .where(_items.c.id == item_id, _items.c.version == v)
            .values(
                version=v + 1,
                state=state,
                n_decided=plan.n_decided,
                resolution=plan.resolution,
                pending_by=by if state == "pending" else None,
                updated_at=now,
                updated_by=by,
            )
        )
        if res.rowcount != 1:
            raise _Lost(v)  # another decision landed between our read and our update
        if resolves is not None:
            conn.execute(
                update(_decisions)
                .where(_decisions.c.id == resolves)
                .values(status="confirmed" if action == "reject" else "overruled")
            )
        decision_row = {
            "item_id": item_id,
            "action": action,
            "status": status,
            "outcome": outcome,
            "by": by,
            "comment": comment,
            "at": now,
            "n_cells": int(len(target)),
            "cells": pack_cells(target),
            "resolves": resolves,
            "item_version": v + 1,
            "item_state": state,
            "written_snapshot": None,
            "written_at": None,
        }
        did = conn.execute(insert(_decisions).returning(_decisions.c.id), decision_row).scalar_one()
        audit_action = "confirmation" if (resolves is not None and action == "reject") else "decision"
        details = {
            "action": action,
            "status": status,
            "outcome": outcome,
            "n_cells": int(len(target)),
            "comment": comment,
            "version": v + 1,
            "state": state,
        }
        if resolves is not None:
            details["resolves"] = int(resolves)
            details["proposed_by"] = plan.proposed_by
        conn.execute(
            insert(_audit).values(
                at=now, actor=by, action=audit_action, item_id=item_id, decision_id=did, details=details
            )
        )
        log.info("review item %s: %s by %s -> %s (%s)", item_id, action, by, state, status)
        return decision_from_row({**decision_row, "id": did})

    def _audit_refusal(self, by: str, item_id: int, details: dict[str, Any]) -> None:
        action = details.pop("action")
        with self._write.begin() as conn:
            conn.execute(
                insert(_audit).values(
                    at=utc_now(), actor=by, action=action, item_id=item_id, decision_id=None, details=details
                )
            )

    # -- writeback contract -------------------------------------------------------------------

    def pending_writeback(self, dataset: str) -> builtins.list[Writeback]:
        """Final decisions of ``dataset`` not yet written into the store's flags, oldest first.

        Cells of different final decisions never overlap, so the order only matters for
        provenance. The writer applies each, commits, then calls ``mark_written``.
        """
        q = (
            select(
                _decisions.c.id,
                _decisions.c.item_id,
                _decisions.c.outcome,
                _decisions.c.by,
                _decisions.c.at,
                _decisions.c.cells,
                _items.c.dataset,
                _items.c.variable,
            )
            .join(_items, _items.c.id == _decisions.c.item_id)
            .where(
                _items.c.dataset == dataset,
                _decisions.c.status == "final",
                _decisions.c.written_snapshot.is_(None),
            )
            .order_by(_decisions.c.id)
        )
        with self._read.begin() as conn:
            return [
                Writeback(
                    decision_id=int(r["id"]),
                    item_id=int(r["item_id"]),
                    dataset=r["dataset"],
                    variable=r["variable"],
                    outcome=r["outcome"],
                    by=r["by"],
                    at=r["at"],
                    cells=unpack_cells(r["cells"]),
                )
                for r in conn.execute(q).mappings()
            ]

    def mark_written(self, decision_ids: Sequence[int], snapshot_id: str, *, by: str = "worker") -> int:
        """Record that the store commit ``snapshot_id`` carries these decisions' flags (audited).

        Idempotent for the same snapshot. Returns how many decisions were newly marked.

        Raises:
            InvalidRequest: an id is unknown or not a final decision, a decision is already
                marked with another snapshot, or ``snapshot_id`` is empty.
        """
        snapshot_id = _name("snapshot_id", snapshot_id, InvalidRequest)
        by = _name("by", by, InvalidRequest)
        ids = sorted({int(i) for i in decision_ids})
        if not ids:
            return 0
        now = utc_now()
        with self._write.begin() as conn:
            rows = {
                r["id"]: r
                for r in conn.execute(
                    select(
                        _decisions.c.id,
                        _decisions.c.item_id,
                        _decisions.c.status,
                        _decisions.c.outcome,
                        _decisions.c.n_cells,
                        _decisions.c.written_snapshot,
                    ).where(_decisions.c.id.in_(ids))
                ).mappings()
            }
            unknown = [i for i in ids if i not in rows]
            if unknown:
                raise InvalidRequest(f"no decision with id(s) {unknown}; pass ids from pending_writeback")
            not_final = [i for i in ids if rows[i]["status"] != "final"]
            if not_final:
                raise InvalidRequest(
                    f"decision(s) {not_final} are not final (awaiting or resolved); "
                    "only final decisions are written back"
                )
            other = [i for i in ids if rows[i]["written_snapshot"] not in (None, snapshot_id)]
            if other:
                raise InvalidRequest(
                    f"decision(s) {other} are already marked written in snapshot "
                    f"{rows[other[0]]['written_snapshot']!r}, not {snapshot_id!r}"
                )
            todo = [i for i in ids if rows[i]["written_snapshot"] is None]
            if todo:
                conn.execute(
                    update(_decisions)
                    .where(_decisions.c.id.in_(todo), _decisions.c.written_snapshot.is_(None))
                    .values(written_snapshot=snapshot_id, written_at=now)
                )
                conn.execute(
                    insert(_audit),
                    [
                        {
                            "at": now,
                            "actor": by,
                            "action": "writeback_applied",
                            "item_id": rows[i]["item_id"],
                            "decision_id": i,
                            "details": {
                                "snapshot_id": snapshot_id,
                                "outcome": rows[i]["outcome"],
                                "n_cells": rows[i]["n_cells"],
                            },
                        }
                        for i in todo
                    ],
                )
        return len(todo)


# --------------------------------------------------------------------------------------------
# helpers


def _name(what: str, value: Any, exc: type[Exception]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise exc(f"{what} must name who acts (a non-empty string), got {value!r}")
    return value.strip()


def _event_row(e: Event, now: datetime, by: str) -> dict[str, Any]:
    lat = e.latlon_box or (None,) * 4
    xy = e.xy_box or (None,) * 4
    return {
        "key": e.key,
        "dataset": e.dataset,
        "variable": e.variable,
        "state": "open",
        "version": 1,
        "hazard": float(e.hazard),
        "exceeds_record": bool(e.exceeds_record),
        "t_first": e.t_first,
        "t_last": e.t_last,
        "n_slots": int(e.n_slots),
        "n_cells": int(e.n_cells),
        "n_decided": 0,
        "iy0": int(e.bbox[0]),
        "iy1": int(e.bbox[1]),
        "ix0": int(e.bbox[2]),
        "ix1": int(e.bbox[3]),
        "lat_min": finite_or_none(lat[0]),
        "lat_max": finite_or_none(lat[1]),
        "lon_min": finite_or_none(lat[2]),
        "lon_max": finite_or_none(lat[3]),
        "y_min": finite_or_none(xy[0]),
        "y_max": finite_or_none(xy[1]),
        "x_min": finite_or_none(xy[2]),
        "x_max": finite_or_none(xy[3]),
        "max_value": finite_or_none(e.max_value),
        "min_value": finite_or_none(e.min_value),
        "peak_value": finite_or_none(e.peak_value),
        "peak_time": e.peak[0],
        "peak_iy": int(e.peak[1]),
        "peak_ix": int(e.peak[2]),
        "side": e.side,
        "record": finite_or_none(e.record),
        "excess": finite_or_none(e.excess),
        "relative_excess": finite_or_none(e.relative_excess),
        "tests": int(e.tests),
        "resolution": None,
        "pending_by": None,
        "created_at": now,
        "updated_at": now,
        "updated_by": by,
    }
