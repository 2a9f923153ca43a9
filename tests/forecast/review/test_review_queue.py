"""The review queue (qc.review.queue) on SQLite and PostgreSQL: enqueue, list, decide, four-eyes,
concurrency, audit log, writeback contract.

Every test runs on both backends. PostgreSQL comes from ``REVIEW_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets its own schema, dropped
afterwards. An unreachable server fails these tests: CI provides one.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest

from testkit import PG_URL, pg_schema
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from qc.flags import QCFlag, TestBit
from forecast.review import (
    FourEyesError,
    InvalidDecision,
    InvalidRequest,
    ItemNotFound,
    ReviewConflict,
    ReviewError,
    ReviewQueue,
    find_events,
)
from forecast.db.tables import METADATA, AuditRow, ItemRow

T0 = np.datetime64("2026-07-15T12:00:00")


# --------------------------------------------------------------------------------------------
# fixtures


@dataclass(frozen=True)
class DB:
    url: str
    schema: str | None

    def queue(self) -> ReviewQueue:
        return ReviewQueue(self.url, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        yield DB(f"sqlite:///{tmp_path}/home/review.db", None)
        return
    with pg_schema("review_test") as schema:
        yield DB(PG_URL, schema)


@pytest.fixture
def queue(db):
    q = db.queue()
    yield q
    q.close()


def make_events(dataset: str = "radar", *, shift: int = 0):
    """Three events: a storm over 3 slots beyond the record, a wild pixel beyond it, and a
    spike that is SUSPECT without being beyond the record."""
    nt, ny, nx = 4, 30, 40
    values = np.full((nt, ny, nx), 1.0, dtype=np.float32)
    qc = np.ones((nt, ny, nx), dtype=np.uint8)
    tests = np.zeros((nt, ny, nx), dtype=np.uint32)
    for k in range(3):
        idx = (k, slice(5, 12), slice(5 + 3 * k + shift, 15 + 3 * k + shift))
        values[idx], qc[idx], tests[idx] = 280.0, QCFlag.SUSPECT, TestBit.CLIMATOLOGY
    values[1, 25, 35], qc[1, 25, 35], tests[1, 25, 35] = 600.0, QCFlag.SUSPECT, TestBit.CLIMATOLOGY
    values[3, 2, 30], qc[3, 2, 30], tests[3, 2, 30] = 40.0, QCFlag.SUSPECT, TestBit.SPIKE
    times = T0 + np.arange(nt) * np.timedelta64(5, "m")
    evs = find_events(
        values, qc, tests, times=times, variable="precipitation_rate", dataset=dataset, record=250.0
    )
    assert [e.n_cells for e in evs] == [1, 210, 1] and [e.exceeds_record for e in evs] == [True, True, False]
    return evs


@pytest.fixture
def items(queue):
    """(pixel, storm, spike) item ids of one enqueued batch."""
    res = queue.enqueue(make_events())
    return res.item_ids


# --------------------------------------------------------------------------------------------
# set-up


def test_tables_are_created_once_and_reopened(db, queue):
    queue.enqueue(make_events())
    with db.queue() as again:  # a second process / replica on the same database
        assert len(again.list()) == 3
    if db.schema is None:
        with queue.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    else:
        with queue.engine.connect() as c:
            names = set(
                c.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                    {"s": db.schema},
                ).scalars()
            )
        # the one service database: every table of the schema, at the migrations' head
        assert names == set(METADATA.tables) | {"alembic_version"}


def test_several_processes_create_the_tables_at_once(db):
    errors, queues = [], []

    def start():
        try:
            queues.append(db.queue())
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for q in queues:
        q.close()
    assert errors == [] and len(queues) == 4


def test_schema_is_refused_on_sqlite(tmp_path):
    with pytest.raises(InvalidRequest, match="only supported on PostgreSQL"):
        ReviewQueue(f"sqlite:///{tmp_path}/r.db", schema="x")


# --------------------------------------------------------------------------------------------
# enqueue, list, get


def test_enqueue_is_idempotent_by_key(queue):
    evs = make_events()
    first = queue.enqueue(evs)
    assert (first.added, first.existing) == (3, 0)
    again = queue.enqueue(reversed(evs))
    assert (again.added, again.existing) == (0, 3)
    assert again.item_ids == tuple(reversed(first.item_ids))
    # a later QC run finds the same three plus a moved storm: only the new one is added
    more = queue.enqueue([*evs, make_events(shift=10)[1]])
    assert (more.added, more.existing) == (1, 3)
    assert len(queue.list()) == 4
    assert [a.action for a in queue.audit_log()].count("enqueue") == 4
    assert queue.enqueue([]).added == 0


def test_concurrent_enqueue_of_the_same_events(db, queue):
    evs = make_events()
    barrier = threading.Barrier(3)
    results, errors = [], []

    def worker():
        with db.queue() as q:
            barrier.wait()
            try:
                results.append(q.enqueue(evs, by="worker"))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.added for r in results) == 3
    assert len({r.item_ids for r in results}) == 1
    assert len(queue.list()) == 3


def test_list_is_ordered_by_hazard_and_filtered(queue, items):
    queue.enqueue(make_events("other"))
    listed = queue.list(dataset="radar")
    assert [i.id for i in listed] == list(items)
    assert [i.hazard for i in listed] == sorted((i.hazard for i in listed), reverse=True)
    assert all(i.state == "open" and i.version == 1 for i in listed)
    assert len(queue.list()) == 6
    assert {i.dataset for i in queue.list(dataset="other")} == {"other"}
    assert queue.list(state="decided") == []
    assert len(queue.list(limit=2)) == 2 and queue.list(offset=5)[0].dataset in ("radar", "other")
    with pytest.raises(InvalidRequest, match="state must be one of open, pending, decided"):
        queue.list(state="closed")


def test_counts_per_state_and_the_since_filter(queue, items):
    assert queue.counts() == {"open": 3, "pending": 0, "decided": 0}
    queue.decide(items[0], "accept", by="ana", comment="real")
    queue.enqueue(make_events("other"))
    assert queue.counts("radar") == {"open": 2, "pending": 0, "decided": 1}
    assert queue.counts() == {"open": 5, "pending": 0, "decided": 1}
    assert queue.counts("nothing") == {"open": 0, "pending": 0, "decided": 0}
    latest = max(i.t_last for i in queue.list())
    recent = queue.list(since=latest)
    assert recent and all(i.t_last >= latest for i in recent) and len(recent) < len(queue.list())


def test_get_returns_the_item_its_cells_decisions_and_audit(queue, items):
    ev = make_events()[1]
    item = queue.get(items[1])
    assert item.key == ev.key and item.n_cells == 210 and item.n_slots == 3
    assert item.bbox == ev.bbox and item.t_first == ev.t_first and item.t_last == ev.t_last
    assert item.record == 250.0 and item.excess == pytest.approx(30.0) and item.exceeds_record
    assert item.test_names == ("climatology",) and item.hazard == pytest.approx(ev.hazard)
    assert item.t_first.tzinfo is not None and item.t_first.utcoffset().total_seconds() == 0
    assert np.array_equal(item.cells, ev.cells) and item.cells.dtype == np.int64
    assert item.decisions == () and [a.action for a in item.audit] == ["enqueue"]
    with pytest.raises(ItemNotFound, match="review item 9999 does not exist") as e:
        queue.get(9999)
    assert isinstance(e.value, KeyError) and isinstance(e.value, ReviewError)


# --------------------------------------------------------------------------------------------
# decisions


def test_accept_decides_the_whole_item(queue, items):
    d = queue.decide(items[1], "accept", by="alice", comment="radar and gauges agree: record storm")
    assert (d.action, d.status, d.outcome, d.by, d.n_cells) == ("accept", "final", "accepted", "alice", 210)
    assert d.item_state == "decided" and d.item_version == 2
    item = queue.get(items[1])
    assert (item.state, item.version, item.resolution, item.n_decided) == ("decided", 2, "accepted", 210)
    assert np.array_equal(item.decisions[0].cells, item.cells)


def test_reject_of_an_item_within_its_record_needs_one_operator(queue, items):
    spike = queue.get(items[2])
    assert not spike.exceeds_record
    d = queue.decide(spike.id, "reject", by="alice", comment="single-pixel spike, radar artefact")
    assert (d.status, d.outcome, d.item_state) == ("final", "rejected", "decided")


def test_four_eyes_reject(queue, items):
    storm = items[1]
    first = queue.decide(storm, "reject", by="alice", comment="anomalous propagation")
    assert (first.status, first.outcome, first.item_state) == ("awaiting_second", None, "pending")
    item = queue.get(storm)
    assert (item.state, item.pending_by, item.n_decided) == ("pending", "alice", 0)
    assert queue.pending_writeback("radar") == []  # the values stay SUSPECT meanwhile

    with pytest.raises(
        FourEyesError, match="alice proposed rejecting review item .* second, different operator"
    ) as e:
        queue.decide(storm, "reject", by="alice", comment="really")
    assert isinstance(e.value, PermissionError)
    with pytest.raises(FourEyesError):
        queue.decide(storm, "reject", by=" ALICE ", comment="same person, other spelling")
    assert queue.get(storm).state == "pending"

    second = queue.decide(storm, "reject", by="bob", comment="confirmed: clutter in the raw sweep")
    assert (second.status, second.outcome, second.resolves, second.item_state) == (
        "final",
        "rejected",
        first.id,
        "decided",
    )
    item = queue.get(storm)
    assert item.resolution == "rejected" and item.pending_by is None
    assert [(d.by, d.status) for d in item.decisions] == [("alice", "confirmed"), ("bob", "final")]
    assert [a.action for a in item.audit] == [
        "enqueue",
        "decision",
        "four_eyes_refused",
        "four_eyes_refused",
        "confirmation",
    ]
    (wb,) = queue.pending_writeback("radar")
    assert (wb.decision_id, wb.outcome, wb.by, wb.accepted) == (second.id, "rejected", "bob", False)


def test_accept_while_pending_resolves_as_accepted(queue, items):
    pixel, storm = items[0], items[1]
    p = queue.decide(storm, "reject", by="alice", comment="looks like clutter")
    d = queue.decide(storm, "accept", by="bob", comment="satellite shows the storm: real")
    assert (d.status, d.outcome, d.resolves, d.item_state) == ("final", "accepted", p.id, "decided")
    assert [x.status for x in queue.get(storm).decisions] == ["overruled", "final"]
    assert queue.get(storm).resolution == "accepted"
    # the proposer may withdraw their own reject by accepting
    queue.decide(pixel, "reject", by="carol", comment="hot pixel?")
    w = queue.decide(pixel, "accept", by="carol", comment="withdrawn: gauge confirms")
    assert (w.outcome, w.item_state) == ("accepted", "decided")


@pytest.mark.parametrize(
    ("action", "by", "comment", "match"),
    [
        ("delete", "alice", "x", "action must be 'accept' or 'reject'"),
        ("accept", "alice", "", "needs a comment"),
        ("accept", "alice", "   ", "needs a comment"),
        ("reject", "", "fault", "by must name who acts"),
    ],
)
def test_malformed_decisions_are_refused(queue, items, action, by, comment, match):
    with pytest.raises(InvalidDecision, match=match) as e:
        queue.decide(items[1], action, by=by, comment=comment)
    assert isinstance(e.value, ValueError)
    assert queue.get(items[1]).version == 1


def test_decisions_on_some_cells(queue, items):
    storm = queue.get(items[1])
    first_slot = storm.cells[storm.cells[:, 0] == storm.cells[0, 0]]
    d = queue.decide(
        storm.id, "accept", by="alice", comment="first slot matches gauges", cells=first_slot.tolist()
    )
    assert (d.n_cells, d.item_state) == (70, "open")
    assert queue.get(storm.id).n_decided == 70

    with pytest.raises(InvalidDecision, match="70 of the given cells .* are already decided"):
        queue.decide(storm.id, "reject", by="bob", comment="x", cells=first_slot)
    with pytest.raises(InvalidDecision, match="1 of the given cells are not part of review item"):
        queue.decide(storm.id, "reject", by="bob", comment="x", cells=[[0, 0, 0]])
    with pytest.raises(InvalidDecision, match=r"non-empty \(n, 3\)"):
        queue.decide(storm.id, "reject", by="bob", comment="x", cells=np.zeros((0, 3), dtype=np.int64))

    p = queue.decide(storm.id, "reject", by="bob", comment="later slots: clutter")  # the remaining 140
    assert (p.n_cells, p.status, p.item_state) == (140, "awaiting_second", "pending")
    with pytest.raises(InvalidDecision, match="awaiting a second operator on 140 cell"):
        queue.decide(storm.id, "reject", by="carol", comment="x", cells=p.cells[:5])
    c = queue.decide(storm.id, "reject", by="carol", comment="agree", cells=p.cells[::-1])
    assert (c.n_cells, c.item_state) == (140, "decided")
    item = queue.get(storm.id)
    assert item.resolution == "mixed" and item.n_decided == 210
    wbs = queue.pending_writeback("radar")
    assert [(w.outcome, len(w.cells)) for w in wbs] == [("accepted", 70), ("rejected", 140)]
    both = np.concatenate([w.cells for w in wbs])
    assert np.array_equal(np.unique(both, axis=0), item.cells)


def test_stale_version_is_a_conflict_naming_who_and_when(queue, items):
    seen = queue.get(items[1]).version
    queue.decide(items[1], "reject", by="alice", comment="clutter")
    with pytest.raises(
        ReviewConflict, match=r"changed by alice at \d{4}-\d\d-\d\dT.*you saw version 1, it is now version 2"
    ) as e:
        queue.decide(items[1], "accept", by="bob", comment="real", expected_version=seen)
    assert (e.value.by, e.value.version, e.value.state) == ("alice", 2, "pending")
    assert e.value.at.tzinfo is not None
    queue.decide(items[1], "reject", by="bob", comment="confirm", expected_version=2)
    with pytest.raises(ReviewConflict, match="already decided by bob"):
        queue.decide(items[1], "accept", by="carol", comment="late")


# --------------------------------------------------------------------------------------------
# concurrency


def test_concurrent_decisions_in_threads_exactly_one_lands(db, queue, items):
    n = 4
    barrier = threading.Barrier(n)
    landed, conflicts, other = [], [], []

    def operator(i):
        with db.queue() as q:
            q.list()  # warm the connection so that the race is about the decision
            barrier.wait()
            try:
                landed.append(q.decide(items[1], "accept", by=f"op{i}", comment="real"))
            except ReviewConflict as e:
                conflicts.append(e)
            except Exception as e:  # noqa: BLE001
                other.append(e)

    threads = [threading.Thread(target=operator, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other == []
    assert len(landed) == 1 and len(conflicts) == n - 1
    winner = landed[0].by
    assert all(c.by == winner for c in conflicts)
    item = queue.get(items[1])
    assert len(item.decisions) == 1 and item.version == 2
    assert [a.action for a in item.audit].count("conflict_refused") == n - 1


def _decide_in_process(url, schema, item_id, who, barrier, out):
    """Worker of the multi-process race: each process its own queue and connections."""
    with ReviewQueue(url, schema=schema) as q:
        seen = q.get(item_id).version
        barrier.wait()
        try:
            d = q.decide(item_id, "reject", by=who, comment="fault", expected_version=seen)
            out.put(("landed", who, d.id))
        except ReviewConflict as e:
            out.put(("conflict", who, e.by))
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out.put(("error", who, repr(e)))


def test_concurrent_decisions_in_processes_exactly_one_lands(db, queue, items):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_decide_in_process, args=(db.url, db.schema, items[1], f"op{i}", barrier, out))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    kinds = sorted(r[0] for r in results)
    assert kinds == ["conflict", "conflict", "landed"], results
    winner = next(r[1] for r in results if r[0] == "landed")
    assert all(r[2] == winner for r in results if r[0] == "conflict")
    item = queue.get(items[1])
    assert (item.state, item.pending_by, len(item.decisions)) == ("pending", winner, 1)


def test_a_change_landing_while_a_decision_is_in_flight_is_a_conflict(queue, items):
    """Another writer changes the item after the decision read it: the versioned UPDATE (on
    PostgreSQL) or the write lock plus version check (on SQLite) refuses the decision."""
    items_t = ItemRow.__table__
    outcome = {}

    def decide():
        t = time.perf_counter()
        try:
            outcome["d"] = queue.decide(items[1], "accept", by="bob", comment="real", expected_version=1)
        except ReviewConflict as e:
            outcome["e"] = e
        outcome["waited"] = time.perf_counter() - t

    with queue.engine.connect() as other:
        tx = other.begin()
        other.execute(
            update(items_t)
            .where(items_t.c.id == items[1])
            .values(version=2, updated_by="mallory", updated_at=datetime.now(timezone.utc))
        )
        th = threading.Thread(target=decide)
        th.start()
        time.sleep(0.5)  # the decision is now blocked on the other writer's lock
        tx.commit()
    th.join(timeout=30)
    assert "d" not in outcome and outcome["e"].by == "mallory" and outcome["e"].version == 2
    assert outcome["waited"] >= 0.4
    assert queue.get(items[1]).decisions == ()


# --------------------------------------------------------------------------------------------
# audit log and writeback


def test_audit_log_is_complete(queue):
    t0 = datetime.now(timezone.utc)
    pixel, storm, spike = queue.enqueue(make_events(), by="qc-run-1").item_ids
    queue.decide(storm, "reject", by="alice", comment="clutter")
    with pytest.raises(FourEyesError):
        queue.decide(storm, "reject", by="alice", comment="clutter!")
    queue.decide(storm, "reject", by="bob", comment="agree")
    queue.decide(pixel, "accept", by="carol", comment="real")
    with pytest.raises(ReviewConflict):
        queue.decide(pixel, "reject", by="dave", comment="no", expected_version=1)
    ids = [w.decision_id for w in queue.pending_writeback("radar")]
    queue.mark_written(ids, "snap-1", by="worker")

    log = queue.audit_log()
    assert [(a.action, a.actor, a.item_id) for a in log] == [
        ("enqueue", "qc-run-1", pixel),
        ("enqueue", "qc-run-1", storm),
        ("enqueue", "qc-run-1", spike),
        ("decision", "alice", storm),
        ("four_eyes_refused", "alice", storm),
        ("confirmation", "bob", storm),
        ("decision", "carol", pixel),
        ("conflict_refused", "dave", pixel),
        ("writeback_applied", "worker", storm),
        ("writeback_applied", "worker", pixel),
    ]
    assert all(a.at.utcoffset().total_seconds() == 0 and a.at >= t0 for a in log)
    assert [a.at for a in log] == sorted(a.at for a in log)
    assert log[5].details["proposed_by"] == "alice" and log[5].details["comment"] == "agree"
    assert log[7].details["last_by"] == "carol" and log[7].details["attempted"] == "reject"
    assert log[8].details["snapshot_id"] == "snap-1" and log[8].decision_id == ids[0]
    assert [a.id for a in queue.audit_log(item_id=pixel)] == [log[0].id, log[6].id, log[7].id, log[9].id]
    assert queue.audit_log(since_id=log[7].id) == log[8:]


def test_audit_log_is_append_only(db, queue, items):
    public = {n for n in dir(queue) if not n.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("delete", "remove", "update", "edit", "purge"))}
    audit = AuditRow.__table__
    statements = [update(audit).values(actor="mallory"), delete(audit)]
    for stmt in statements:
        with pytest.raises(DBAPIError, match="append-only"), queue.engine.begin() as c:
            c.execute(stmt)
    if db.schema is not None:
        with pytest.raises(DBAPIError, match="append-only"), queue.engine.begin() as c:
            c.exec_driver_sql(f'TRUNCATE "{db.schema}".review_audit CASCADE')
    assert [a.actor for a in queue.audit_log()] == ["qc"] * 3


def test_pending_writeback_and_mark_written_round_trip(queue, items):
    queue.enqueue(make_events("other"))
    pixel, storm, spike = items
    a = queue.decide(pixel, "accept", by="alice", comment="real")
    queue.decide(storm, "reject", by="alice", comment="fault")  # awaiting a second operator: not final
    r = queue.decide(spike, "reject", by="bob", comment="spike")
    other_item = queue.list(dataset="other")[0]
    queue.decide(other_item.id, "accept", by="bob", comment="real")

    wbs = queue.pending_writeback("radar")
    assert [(w.decision_id, w.outcome, w.variable, w.dataset) for w in wbs] == [
        (a.id, "accepted", "precipitation_rate", "radar"),
        (r.id, "rejected", "precipitation_rate", "radar"),
    ]
    assert np.array_equal(wbs[0].cells, queue.get(pixel).cells) and wbs[0].cells.shape == (1, 3)
    assert wbs[0].at.tzinfo is not None

    assert queue.mark_written([w.decision_id for w in wbs], "snap-A") == 2
    assert queue.pending_writeback("radar") == []
    assert len(queue.pending_writeback("other")) == 1
    assert queue.mark_written([a.id], "snap-A") == 0  # idempotent for the same snapshot
    got = queue.get(pixel).decisions[0]
    assert got.written_snapshot == "snap-A" and got.written_at is not None

    with pytest.raises(InvalidRequest, match="already marked written in snapshot 'snap-A'"):
        queue.mark_written([a.id], "snap-B")
    with pytest.raises(InvalidRequest, match=r"no decision with id\(s\) \[9999\]"):
        queue.mark_written([9999], "snap-B")
    pending = queue.get(storm).decisions[0]
    with pytest.raises(InvalidRequest, match="are not final"):
        queue.mark_written([pending.id], "snap-B")
    with pytest.raises(InvalidRequest, match="snapshot_id must name"):
        queue.mark_written([a.id], "")

    # the confirmation becomes writeable once it exists
    c = queue.decide(storm, "reject", by="carol", comment="agree")
    (wb,) = queue.pending_writeback("radar")
    assert (wb.decision_id, wb.outcome, len(wb.cells)) == (c.id, "rejected", 210)
    assert queue.mark_written([c.id], "snap-B") == 1
    assert [x.action for x in queue.audit_log()].count("writeback_applied") == 3
