"""The store under stress: concurrent writers, SIGKILL at random points, a dask.distributed cluster."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
import xarray as xr

from testkit import T0, small_doc, write_catalog
from forecast.catalog import load_catalog
from forecast.ingest.batch import ingest
from forecast.stores import ObservationStore, open_observations
from ncfiles import field, write_nc

P = "precipitation_rate"
CLI = [sys.executable, "-m", "forecast.cli"]


def _setup(tmp_path, ny=96, nx=128):
    cat_dir = tmp_path / "catalogs"
    cat = load_catalog(write_catalog(cat_dir, small_doc(ny=ny, nx=nx)))
    env = {**os.environ, "FORECAST_HOME": str(tmp_path / "home"), "FORECAST_CATALOGS": str(cat_dir)}
    return cat, env


def _files(folder, cat, slots):
    return [write_nc(folder / f"r_{i:03d}.nc", cat, T0 + timedelta(minutes=5 * i), {P: field(cat, i, seed=i)})
            for i in slots]


def _state(store: ObservationStore, dataset: str) -> xr.Dataset:
    """Everything observable about the dataset except snapshot ids and availability wall-clock times."""
    ds = open_observations(dataset, store=store).load()
    return ds.drop_vars([v for v in ds.coords if v.endswith("_available_at")]).drop_attrs()


def test_two_concurrent_ingests_both_land(tmp_path):
    cat, env = _setup(tmp_path)
    a = _files(tmp_path / "a", cat, range(0, 4))
    b = _files(tmp_path / "b", cat, range(4, 8))
    # one file in both batches: exactly one of them writes it, the other reports a duplicate
    shared = _files(tmp_path / "shared", cat, [8])
    procs = [subprocess.Popen([*CLI, "ingest", cat.id, *map(str, files + shared), "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for files in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se
    docs = [json.loads(so) for so, _ in outs]
    written = sorted(s for d in docs for s in d["written"])
    assert len(written) == 9 and len(set(written)) == 9
    assert sum(len(d["duplicates"]) for d in docs) == 1
    store = ObservationStore(tmp_path / "home" / "observations.icechunk")
    ds = open_observations(cat.id, store=store)
    assert ds.sizes["time"] == 9 and not np.isnan(ds[P].values).any()
    kinds = [c["kind"] for c in store.log(cat.id)]
    assert kinds.count("ingest") == 2


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_clean_run(tmp_path):
    cat, env = _setup(tmp_path, ny=256, nx=256)
    first = _files(tmp_path / "first", cat, range(0, 3))
    batch = _files(tmp_path / "batch", cat, range(3, 12))
    revised = write_nc(tmp_path / "batch" / "r_001_rev.nc", cat, T0 + timedelta(minutes=5), {P: field(cat, 77, seed=9)})
    batch.append(revised)
    cmd = [*CLI, "ingest", cat.id, *map(str, batch), "--available-at", "2026-07-15T13:00Z", "--json"]
    # the clean reference
    clean_env = {**env, "FORECAST_HOME": str(tmp_path / "clean")}
    for files, at in ((first, "2026-07-15T12:30Z"), (batch, "2026-07-15T13:00Z")):
        subprocess.run([*CLI, "ingest", cat.id, *map(str, files), "--available-at", at], env=clean_env,
                       check=True, capture_output=True)
    reference = _state(ObservationStore(tmp_path / "clean" / "observations.icechunk"), cat.id)
    t0 = time.perf_counter()
    subprocess.run([*CLI, "ingest", cat.id, *map(str, first), "--available-at", "2026-07-15T12:30Z"], env=env,
                   check=True, capture_output=True)
    store = ObservationStore(tmp_path / "home" / "observations.icechunk")
    before = store.head()
    duration = time.perf_counter() - t0
    rng = random.Random(20261127)
    outcomes = []
    for attempt in range(4):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(0.3, max(duration * 1.5, 1.0)))
        os.killpg(p.pid, signal.SIGKILL)  # the CLI and its worker processes
        p.wait()
        fresh = ObservationStore(tmp_path / "home" / "observations.icechunk")
        head = fresh.head()
        outcomes.append(head != before)
        # the store is at a commit: either the old one or the whole batch, never half a batch
        ds = open_observations(cat.id, store=fresh).load()
        n = int((ds[f"{P}_revision"] >= 0).sum())
        assert n in (3, 12), n  # 3 slots before, 12 after the batch (slot 1 is revised in place)
        if head != before:
            break
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    xr.testing.assert_identical(_state(ObservationStore(tmp_path / "home" / "observations.icechunk"), cat.id),
                                reference)


@pytest.mark.slow
def test_ingest_and_qc_on_a_dask_distributed_cluster(tmp_path):
    from distributed import LocalCluster

    from forecast.quality import run_qc

    cat, _ = _setup(tmp_path)
    files = _files(tmp_path / "in", cat, range(6))
    local = ObservationStore(tmp_path / "local")
    ingest(cat, files, store=local, available_at=T0, scheduler="sync")
    run_qc(cat, store=local, scheduler="sync")
    dist = ObservationStore(tmp_path / "dist")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        rep = ingest(cat, files, store=dist, available_at=T0, scheduler=cluster.scheduler_address)
        qc = run_qc(cat, store=dist, scheduler=cluster.scheduler_address)
    assert len(rep.written) == 6 and rep.committed and qc.committed and qc.slots_checked == 6
    xr.testing.assert_identical(_state(dist, cat.id), _state(local, cat.id))
    a = open_observations(cat.id, store=local)
    b = open_observations(cat.id, store=dist)
    np.testing.assert_array_equal(a[f"{P}_qc"].values, b[f"{P}_qc"].values)
