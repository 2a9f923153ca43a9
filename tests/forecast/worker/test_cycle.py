"""One cycle of the worker on a fixed clock: files in, forecasts out, and every bad input of an
operational feed (a file still being written, one that never comes, one dropped twice, a corrupt one, a
revision of an old slot, a clock that jumped, a full archive disk)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from forecast.catalog import exceedance_name
from forecast.clock import FixedClock
from forecast.errors import BadInputError
from forecast.stores import open_observations
from forecast.timeutil import iso
from forecast.worker.cycle import open_service, plan_inits, run_cycle
from forecast.worker.inbox import feed_folders
from workerkit import P, START, STEP, drop, make_world, slot_file


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


def _service(world, clock):
    st, cat, *_ = world
    return open_service(st, cat.id, clock=clock)


def _status(manifest, t):
    return next(s["status"] for s in manifest["slots"] if s["time"] == iso(t))


def _feed_until(svc, world, clock, until, *, ingest_every=STEP, start=START):
    """Drop the on-time files of every slot from ``start`` to ``until`` (each 1 min after its time) and run
    a cycle after each, as a live feed and worker would; returns the reports."""
    st, cat, sample, manifest = world
    inbox, _, _ = feed_folders(st, cat)
    reports = []
    t = start
    while t <= until:
        clock.set(t + timedelta(minutes=1))
        if _status(manifest, t) not in ("missing", "late"):
            drop(slot_file(sample, manifest, t), inbox)
        reports.append(run_cycle(svc))
        t += ingest_every
    return reports


def test_a_cycle_ingests_archives_and_forecasts_the_due_init_as_known_now(world):
    st, cat, sample, manifest = world
    clock = FixedClock(START)
    svc = _service(world, clock)
    reports = _feed_until(svc, world, clock, START + 4 * STEP)
    last = reports[-1]
    # the contract of `forecast cycle --json`
    assert {"init_time", "method", "fallback", "stages", "inputs"} <= set(last)
    assert last["init_time"] == iso(START + 4 * STEP)
    assert "no model of radar_precip/precipitation_rate is in production" in last["fallback"]["reason"]
    assert {"ingest", "qc", "forecast", "verify", "total"} <= set(last["stages"])
    came = [_status(manifest, START + i * STEP) not in ("missing", "late") for i in range(5)]
    slots = last["inputs"]["slots"]
    assert [s["revision"] for s in slots][-5:] == [0 if c else -1 for c in came] and last["inputs"]["late"] == []
    assert [t for t in last["inputs"]["missing"] if t >= iso(START)] == [iso(START + i * STEP) for i in range(5)
                                                                        if not came[i]]
    assert slots[-1]["available_at"] == iso(START + 4 * STEP + timedelta(minutes=1))  # its arrival time
    # every init was forecast once: as soon as its slot came, or, for a slot that never came, once the wait
    # for it was over (expected latency + wait_for_late), without it and saying so
    forecasts = {f["init_time"]: f for r in reports for f in r["forecasts"]}
    assert sorted(forecasts) == [iso(START + i * STEP) for i in range(5)]
    assert sum(len(r["forecasts"]) for r in reports) == 5 and not any(r["skipped"] for r in reports)
    for i in range(5):
        f = forecasts[iso(START + i * STEP)]
        assert (iso(START + i * STEP) in f["inputs"]["missing"]) == (not came[i])
        assert f["due_at"] == iso(START + i * STEP + (timedelta(minutes=1) if came[i] else timedelta(minutes=5)))
    inbox, _, archive = feed_folders(st, cat)
    assert list(inbox.iterdir()) == [] and len(list(archive.rglob("*.nc"))) == sum(came)
    prov = svc.fstore.provenance(cat.id, START + 4 * STEP)
    assert prov["observations"]["as_of"] == iso(START + 4 * STEP + timedelta(minutes=1))
    # the exceedance probabilities of the catalog's thresholds are stored beside the values
    names = [exceedance_name(P, t) for t in cat.variables[P].thresholds]
    assert prov["probabilities"]["parameters"] == names and prov["probabilities"]["method"] == "neighbourhood"
    stored = svc.fstore.open(cat.id)
    assert str(stored["init_time"].values[-1])[:19] == iso(START + 4 * STEP)[:19]
    for n in names:
        p = stored[n].isel(init_time=-1).values
        assert np.nanmin(p) >= 0 and np.nanmax(p) <= 1 and np.isfinite(p).any()
    # a second cycle with nothing new does nothing
    again = run_cycle(svc)
    assert again["forecasts"] == [] and again["ingest"]["files"] == 0


def test_a_file_still_being_written_is_not_taken(tmp_path):
    world = make_world(tmp_path, feed={"settle": "1s"})
    st, cat, sample, manifest = world
    clock = FixedClock(START + timedelta(minutes=1))
    svc = _service(world, clock)
    inbox, _, _ = feed_folders(st, cat)
    inbox.mkdir(parents=True, exist_ok=True)
    data = slot_file(sample, manifest, START).read_bytes()
    part = inbox / ".radar_precip_20260715T120000Z.nc.part"  # a writer that renames when done
    part.write_bytes(data[: len(data) // 2])
    slow = inbox / "radar_precip_20260715T120500Z.nc"  # a writer that cannot rename: size must settle
    slow.write_bytes(slot_file(sample, manifest, START + STEP).read_bytes()[:1000])
    rep = run_cycle(svc)
    assert rep["ingest"]["files"] == 0 and part.exists() and slow.exists()
    # the slow writer finishes; once the size has not changed for the settle time (1 s) it is taken
    slow.write_bytes(slot_file(sample, manifest, START + STEP).read_bytes())
    assert run_cycle(svc)["ingest"]["files"] == 0
    import os
    import time

    old = time.time() - 5
    os.utime(slow, (old, old))
    rep = run_cycle(svc)
    assert rep["ingest"]["files"] == 1 and rep["ingest"]["rejected"] == []
    assert not slow.exists() and part.exists()


def test_a_missing_slot_is_forecast_without_and_a_late_one_is_used_once_it_comes(world):
    st, cat, sample, manifest = world
    late = next(parse for parse in (s for s in manifest["slots"]) if parse["status"] == "late")
    t_late = START + (np.datetime64(late["time"].rstrip("Z")) - np.datetime64(START.replace(tzinfo=None))).astype(
        "timedelta64[s]").astype(int) * timedelta(seconds=1)
    clock = FixedClock(START)
    svc = _service(world, clock)
    _feed_until(svc, world, clock, t_late)
    # its own slot has not come: the init waits expected_latency + wait_for_late, then goes without it
    clock.set(t_late + timedelta(minutes=2, seconds=30))
    assert [p.init for p in plan_inits(svc, P, clock.now()) if p.action == "forecast"] == []
    clock.set(t_late + timedelta(minutes=5, seconds=1))
    rep = run_cycle(svc)
    (f,) = rep["forecasts"]
    assert f["init_time"] == iso(t_late) and iso(t_late) in f["inputs"]["missing"]
    # the late file comes 25 minutes after its slot: stored, and the next init's forecast uses it
    inbox, _, _ = feed_folders(st, cat)
    nxt = next(START + i * STEP for i in range(40) if START + i * STEP > t_late + STEP
               and _status(manifest, START + i * STEP) not in ("missing", "late"))
    _feed_until(svc, world, clock, nxt - STEP, start=t_late + STEP)
    clock.set(nxt + timedelta(minutes=1))
    drop(slot_file(sample, manifest, nxt), inbox)
    drop(sample / late["files"][0], inbox)
    rep = run_cycle(svc)
    assert iso(t_late) in rep["ingest"]["late"]
    f = max(rep["forecasts"], key=lambda f: f["init_time"])
    assert f["init_time"] == iso(nxt)
    used = next(s for s in f["inputs"]["slots"] if s["time"] == iso(t_late))
    assert used["revision"] == 0 and used["late"] is True and iso(t_late) in f["inputs"]["late"]
    # no second forecast of the init that went without it
    assert svc.fstore.provenance(cat.id, t_late)["observations"]["input_slots"][-1]["revision"] == -1


def test_duplicate_corrupt_and_revised_files(world):
    st, cat, sample, manifest = world
    clock = FixedClock(START)
    svc = _service(world, clock)
    end = START + timedelta(hours=2) - STEP  # the whole sample
    _feed_until(svc, world, clock, end)
    inbox, _, archive = feed_folders(st, cat)
    store_head = svc.store.head()
    # the same file dropped twice: archived as a duplicate, nothing new in the store
    dup = next(s for s in manifest["slots"] if s["status"] == "duplicate")
    drop(sample / dup["files"][1], inbox)
    rep = run_cycle(svc)
    assert rep["ingest"]["duplicates"] == [dup["time"]] and rep["ingest"]["written"] == []
    assert svc.store.head() == store_head and not list(inbox.iterdir())
    # the corrupt file was quarantined with its reason when it came, and left the inbox
    bad = next(f for f in manifest["faults"] if f["kind"] == "corrupt")
    q = list((st.quarantine_dir / cat.id).glob(f"*{bad['file']}"))
    assert len(q) == 1 and "cannot be read" in Path(str(q[0]) + ".reason.txt").read_text()
    # a revised file for an old slot: a new revision, the old one readable, no new forecast of the past
    rev = next(s for s in manifest["slots"] if s["status"] == "revised")
    t_rev = rev["time"]
    before = svc.fstore.provenance(cat.id, t_rev)
    drop(sample / rev["files"][1], inbox)
    rep = run_cycle(svc)
    assert rep["ingest"]["revisions"] == [t_rev] and rep["forecasts"] == []
    ds = open_observations(cat.id, store=svc.store)
    assert int(ds[f"{P}_revision"].sel(time=t_rev.rstrip("Z"))) == 1
    assert svc.fstore.provenance(cat.id, t_rev) == before


def test_a_clock_far_off_is_refused_and_a_jump_back_is_survived(world):
    st, cat, sample, manifest = world
    clock = FixedClock(START)
    svc = _service(world, clock)
    _feed_until(svc, world, clock, START + 2 * STEP)
    with pytest.raises(BadInputError, match="ahead of the clock"):
        run_cycle(svc, init=START + timedelta(days=3))
    clock.set(START + timedelta(days=30))
    with pytest.raises(BadInputError, match="behind the clock"):
        run_cycle(svc, init=START)
    # the clock jumps back a day: nothing is due, nothing breaks
    clock.set(START - timedelta(days=1))
    rep = run_cycle(svc)
    assert rep["forecasts"] == [] and rep["errors"] == []


def test_a_worker_that_fell_behind_skips_to_the_newest_init_and_records_the_rest(world):
    st, cat, sample, manifest = world
    clock = FixedClock(START)
    svc = _service(world, clock)
    _feed_until(svc, world, clock, START + STEP)
    inbox, _, _ = feed_folders(st, cat)
    # the worker was away for 40 minutes; the files came meanwhile
    for i in range(2, 10):
        t = START + i * STEP
        if _status(manifest, t) not in ("missing", "late"):
            drop(slot_file(sample, manifest, t), inbox)
    clock.set(START + 9 * STEP + timedelta(minutes=1))
    rep = run_cycle(svc)
    assert [f["init_time"] for f in rep["forecasts"]][0] == iso(START + 9 * STEP)
    skipped = {s["init_time"]: s["reason"] for s in rep["skipped"]}
    assert iso(START + 3 * STEP) in skipped and "deadline" in skipped[iso(START + 3 * STEP)]
    state = svc.db.state()
    rows = state.recent(cat.id, limit=100)
    assert {r["status"] for r in rows} >= {"done", "skipped"}
    # every init is accounted for: forecast once or skipped with a reason
    outcome = state.outcomes(cat.id, P, START)
    assert all(START + i * STEP in outcome for i in range(10))


def _tmpfs(path: Path, size: str = "256k") -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_archive_disk_leaves_the_file_in_the_inbox_and_no_half_state(world, tmp_path):
    st, cat, sample, manifest = world
    archive = tmp_path / "full-archive"
    if not _tmpfs(archive):
        pytest.fail("this test mounts a 16 kB tmpfs as a full disk (as root); mount failed")
    try:
        doc = cat.model_dump(mode="json", exclude={"path"})
        doc["feed"]["archive"] = str(archive)
        from forecast.catalog import parse_catalog
        from testkit import write_catalog

        write_catalog(st.catalogs, doc)
        # fill the disk: what is left is smaller than a file
        import shutil as _sh

        (archive / "2026" / "07" / "15").mkdir(parents=True)
        free = _sh.disk_usage(archive).free
        (archive / "filler").write_bytes(b"x" * (free - 4096))
        clock = FixedClock(START + timedelta(minutes=1))
        svc = open_service(st, cat.id, clock=clock)
        inbox, _, _ = feed_folders(st, parse_catalog(doc, "x"))
        drop(slot_file(sample, manifest, START), inbox)
        rep = run_cycle(svc)
        assert rep["ingest"]["written"] == [iso(START)] and rep["ingest"]["archived"] == 0
        (msg,) = rep["ingest"]["archive_errors"]
        assert "cannot archive radar_precip_20260715T120000Z.nc" in msg and "No space left" in msg
        assert (inbox / "radar_precip_20260715T120000Z.nc").exists()
        assert [p.name for p in archive.rglob("*") if p.is_file()] == ["filler"]  # no half-written copy
        # space again: the next cycle archives it (as a duplicate: the store already has it)
        (archive / "filler").unlink()
        rep = run_cycle(svc)
        assert rep["ingest"]["duplicates"] == [iso(START)] and rep["ingest"]["archived"] == 1
        assert not (inbox / "radar_precip_20260715T120000Z.nc").exists()
    finally:
        subprocess.run(["umount", str(archive)], capture_output=True)


def test_cycle_cli_reports_the_contract_keys(world, monkeypatch):
    from typer.testing import CliRunner

    from forecast.cli import app

    st, cat, sample, manifest = world
    monkeypatch.setenv("FORECAST_HOME", str(st.home))
    monkeypatch.setenv("FORECAST_CATALOGS", str(st.catalogs))
    inbox, _, _ = feed_folders(st, cat)
    for i in range(3):
        if slot_file(sample, manifest, START + i * STEP).exists():
            drop(slot_file(sample, manifest, START + i * STEP), inbox)
    # the dataset runs on the time of a replayed feed (as `forecast replay` sets it): 12:13 now
    from forecast.clock import write_replay_clock

    write_replay_clock(st.home, cat.id, sim0=START + 2 * STEP + timedelta(minutes=3), speed=1.0)
    res = CliRunner().invoke(app, ["cycle", cat.id, "--init", iso(START + 2 * STEP), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["init_time"] == iso(START + 2 * STEP) and doc["method"] and doc["fallback"]
    assert {"ingest", "qc", "forecast"} <= set(doc["stages"]) and len(doc["inputs"]["slots"]) >= 3
    res = CliRunner().invoke(app, ["cycle", cat.id, "--init", "2030-01-01T00:00Z", "--json"])
    assert res.exit_code == 2 and "ahead of the clock" in json.loads(res.stdout)["error"]
