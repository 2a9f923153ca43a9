"""The database unreachable for a while: cycles go on, outcomes and review events are spooled, and written
when it answers again; nothing is lost. A real PostgreSQL server behind a real TCP forwarder that is cut."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from forecast.clock import FixedClock
from forecast.worker.cycle import open_service, run_cycle
from forecast.worker.inbox import feed_folders
from forecast.worker.state import WorkerState
from workerkit import START, STEP, TcpProxy, drop, make_world, slot_file

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def database():
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    name = f"outage_{uuid.uuid4().hex[:10]}"
    try:
        eng = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(e).__name__}); every machine runs it")
    yield name
    with eng.connect() as c:
        c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    eng.dispose()


def test_cycles_go_on_while_the_database_is_away_and_nothing_is_lost(tmp_path, database):
    proxy = TcpProxy(5432)
    proxy.up()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{database}?connect_timeout=2"
    st, cat, sample, manifest = make_world(tmp_path, faults=(), database_url=url)
    clock = FixedClock(START)
    svc = open_service(st, cat.id, clock=clock)
    svc.db.retry_s = 0.0  # try the database again at every cycle
    inbox, _, _ = feed_folders(st, cat)

    def cycle(i):
        t = START + i * STEP
        clock.set(t + timedelta(minutes=1))
        drop(slot_file(sample, manifest, t), inbox)
        return run_cycle(svc)

    assert cycle(0)["forecasts"] and svc.db.available
    proxy.down()
    away = [cycle(i) for i in (1, 2, 3)]
    # the service went on: files stored, forecasts made and served, the outcomes waiting in the spool
    assert [r["forecasts"][0]["init_time"] for r in away] == [f"2026-07-15T12:{m:02d}:00Z" for m in (5, 10, 15)]
    spooled = [kind for kind, _ in svc.db.spool.pending()]
    assert not svc.db.available and spooled.count("cycles") == 3
    assert svc.fstore.provenance(cat.id, START + 3 * STEP) is not None
    proxy.up()
    back = cycle(4)
    assert back["forecasts"] and svc.db.available and len(svc.db.spool) == 0
    with WorkerState(url) as state:
        rows = state.recent(cat.id, limit=20)
    from forecast.review import ReviewQueue

    with ReviewQueue(url) as q:  # the review events QC found while the database was away were queued
        assert len(q.list(dataset=cat.id)) == spooled.count("events")
    assert sorted(r["init_time"].isoformat() for r in rows if r["status"] == "done") == [
        (START + i * STEP).isoformat() for i in range(5)]
    proxy.down()
    svc.db.close()
