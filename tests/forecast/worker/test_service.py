"""`forecast worker` as a process: SIGTERM finishes the stage and exits 0 giving the lease back; a second
worker waits as standby and takes over within the lease's time when the first is killed; a worker killed
(-9) in the middle of a replay and restarted resumes with no duplicate and no missing forecast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from forecast.clock import write_replay_clock
from forecast.worker.state import WorkerState
from forecast.worker.status import lease_name
from testkit import ROOT
from workerkit import START, STEP, make_world

pytestmark = pytest.mark.slow  # worker processes start torch-free but take seconds each


def _env(st, **extra) -> dict[str, str]:
    env = {**os.environ, "FORECAST_HOME": str(st.home), "FORECAST_CATALOGS": str(st.catalogs),
           "FORECAST_WORKERS": "1", "FORECAST_WORKER_LEASE_TTL_S": "2", "FORECAST_WORKER_POLL_S": "0.2",
           "PYTHONPATH": str(ROOT), **extra}
    env.pop("FORECAST_DATABASE_URL", None)
    return env


def _start(st, log: Path, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forecast.cli", "worker", "radar_precip"], env=_env(st, **extra),
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=ROOT)


def _wait(cond, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _holder(st) -> str | None:
    with WorkerState(st.db_url) as state:
        lease = next((x for x in state.leases() if x["name"] == lease_name(st)), None)
    return lease["holder"] if lease and lease["active"] else None


def _pid_of(holder: str | None) -> int | None:
    return int(holder.split(":")[1]) if holder else None


def test_sigterm_finishes_and_gives_the_lease_back(tmp_path):
    st, cat, sample, manifest = make_world(tmp_path, faults=())
    write_replay_clock(st.home, cat.id, sim0=START + timedelta(minutes=1), speed=1.0)
    proc = _start(st, tmp_path / "a.log")
    try:
        _wait(lambda: _pid_of(_holder(st)) == proc.pid, 60, "the worker to hold the lease")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert _holder(st) is None  # given back: a standby may take it at once
    log = (tmp_path / "a.log").read_text()
    assert "SIGTERM received, finishing the current stage" in log


def test_a_standby_takes_over_when_the_holder_dies(tmp_path):
    st, cat, sample, manifest = make_world(tmp_path, faults=())
    write_replay_clock(st.home, cat.id, sim0=START + timedelta(minutes=1), speed=1.0)
    a = _start(st, tmp_path / "a.log")
    b = None
    try:
        _wait(lambda: _pid_of(_holder(st)) == a.pid, 60, "worker A to hold the lease")
        b = _start(st, tmp_path / "b.log")
        _wait(lambda: "is standby" in (tmp_path / "b.log").read_text(), 60, "worker B to wait as standby")
        assert _pid_of(_holder(st)) == a.pid
        a.kill()  # SIGKILL: no goodbye, the lease simply stops being renewed
        t0 = time.time()
        _wait(lambda: _pid_of(_holder(st)) == b.pid, 15, "worker B to take over")
        assert time.time() - t0 < 2 + 3  # the lease's time (2 s) plus a standby's look (ttl/3) and slack
    finally:
        for p in (a, b):
            if p is not None:
                p.kill()
                p.wait(10)


def test_killed_and_restarted_during_a_replay_resumes_without_duplicates_or_gaps(tmp_path):
    from forecast.worker.replay import replay

    # a generous deadline (an hour of feed time, a minute of wall time at 60x): a restart, even on a loaded
    # machine, stays within it, so no init may be missed
    st, cat, sample, manifest = make_world(tmp_path, hours=1.5, faults=("missing", "late", "duplicate"),
                                           feed={"deadline": "60min", "expire_after": "60min"})
    speed = 60.0
    done = threading.Event()
    result = {}
    th = threading.Thread(target=lambda: result.update(replay(st, cat.id, sample, speed=speed)) or done.set(),
                          daemon=True)
    proc = _start(st, tmp_path / "w0.log")
    _wait(lambda: _pid_of(_holder(st)) == proc.pid, 60, "the worker to hold the lease")
    th.start()
    kills = 0
    try:
        while not done.is_set() and kills < 3:
            time.sleep(12)
            proc.kill()
            proc.wait(10)
            kills += 1
            proc = _start(st, tmp_path / f"w{kills}.log")
        done.wait(300)
        # after the last file, let the restarted worker catch up (the clock keeps running at 60x)
        last_slot = START + timedelta(hours=1.5) - STEP
        with WorkerState(st.db_url) as state:
            _wait(lambda: len(state.outcomes(cat.id, "precipitation_rate", START)) >= int(1.5 * 12), 120,
                  "every init to have an outcome")
            rows = state.recent(cat.id, limit=1000)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert kills >= 2
    done_rows = [r for r in rows if r["status"] == "done"]
    inits = [r["init_time"] for r in done_rows]
    assert len(inits) == len(set(inits))  # no duplicate
    expected = {START + i * STEP for i in range(18)}
    assert {t.replace(tzinfo=t.tzinfo) for t in inits} >= {t for t in expected if t <= last_slot}, (
        sorted(expected - set(inits)), [(r["init_time"], r["status"], r["reason"]) for r in rows
                                        if r["status"] != "done"])
    # every forecast in the store was written once (idempotent writes; one commit per init)
    from forecast.stores import ForecastStore

    fs = ForecastStore(st.forecast_store_location)
    commits = [c for c in fs.log(cat.id) if c["kind"] == "forecast"]
    assert len(commits) == len(done_rows)
    assert len({c["metadata"]["init_time"] for c in commits}) == len(commits)


def test_a_worker_whose_memory_grew_past_its_limit_restarts_itself_and_goes_on(tmp_path):
    """`worker_max_rss_growth_mib`: between cycles the worker gives its lease back and executes itself again
    (same process id, fresh memory), and the replay goes on with no duplicate and no init left without an
    outcome. A limit of 1 KiB after a baseline of one cycle makes it restart after every second cycle that did
    work."""
    import json

    from forecast.worker.replay import replay

    st, cat, sample, manifest = make_world(tmp_path, hours=0.5, faults=(),
                                           feed={"deadline": "60min", "expire_after": "60min"})
    proc = _start(st, tmp_path / "w.log", FORECAST_WORKER_MAX_RSS_GROWTH_MIB="0.001",
                  FORECAST_WORKER_MEMORY_WARM_CYCLES="1")
    try:
        _wait(lambda: _pid_of(_holder(st)) == proc.pid, 60, "the worker to hold the lease")
        replay(st, cat.id, sample, speed=60.0)
        status = tmp_path / "home" / "worker" / f"status-{proc.pid}.json"
        _wait(lambda: json.loads(status.read_text()).get("memory_restarts", 0) >= 2, 120, "two restarts")
        with WorkerState(st.db_url) as state:
            _wait(lambda: len(state.outcomes(cat.id, "precipitation_rate", START)) >= 6, 120,
                  "every init to have an outcome")
            rows = state.recent(cat.id, limit=1000)
        assert proc.poll() is None  # the same process, executed again
        # it holds the lease again (between a restart's release and the new worker's start, nobody does)
        _wait(lambda: _pid_of(_holder(st)) == proc.pid, 60, "the restarted worker to hold the lease")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    log = (tmp_path / "w.log").read_text()
    assert "it gives the lease back and restarts itself" in log and "restarts (memory restart 2)" in log
    inits = [r["init_time"] for r in rows if r["status"] == "done"]
    assert len(inits) == len(set(inits)) and len(inits) >= 5
