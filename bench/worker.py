"""The worker as operators run it: file-to-served latency, a day of the feed with every fault, and a
kill -9 loop.

1. **latency**: a file lands complete in the inbox (renamed into place) -> its init's forecast is readable
   through the API (a real uvicorn server polled on loopback); p50 / p95 over the cycles with the stage
   breakdown from the cycle log, at 256 x 256 and 1000 x 1000. The worker and the API are resident
   processes (imports and the model's process paid once).
2. **replay**: a recorded feed (default 24 hours, every fault planted) replayed at N times real time:
   every slot that arrived is stored, every init has an outcome (forecast, or skipped with a reason), the
   worker's memory (RSS of its process tree) in the first and the last hour.
3. **kill**: the same replay with the worker killed (-9) at random moments and restarted: the same final
   observation store (values, revisions, hashes), the same forecasts for the inits both runs made from the
   same input revisions, no init forecast twice.

``--quick`` runs small versions of each (256 x 256 only, fewer cycles, 2 hours of feed, 3 kills).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "forecast" / "worker"))

from bench.common import REPO, Table, scratch_dir  # noqa: E402

START = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)


def _pct(vals, q):
    return float(np.percentile(vals, q)) if vals else float("nan")


def _env(home: Path, catalogs: Path, **extra) -> dict[str, str]:
    env = {**os.environ, "FORECAST_HOME": str(home), "FORECAST_CATALOGS": str(catalogs), "FORECAST_WORKERS": "1",
           "FORECAST_WORKER_POLL_S": "0.1", "FORECAST_API_HEAD_CHECK_S": "0.1", "PYTHONPATH": str(REPO), **extra}
    env.pop("FORECAST_DATABASE_URL", None)
    return env


def _world(tmp: Path, size: int, hours: float, faults: list[str], seed: int = 42):
    from forecast.catalog import parse_catalog
    from forecast.settings import Settings
    from forecast.synthetic import generate_sample
    from testkit import catalog_doc, write_catalog

    doc = catalog_doc("radar_precip")
    doc["grid"]["x"]["size"] = doc["grid"]["y"]["size"] = size
    if size > 500:
        doc["storage"]["blocksize"] = 4 * 2**20
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs", workers=1)
    sample = tmp / "sample"
    manifest = generate_sample(cat, start=START, hours=hours, out=sample, faults=faults, seed=seed)
    return st, cat, sample, manifest


def _history_and_model(st, cat, sample, manifest, n_slots: int, *, model: bool) -> str | None:
    """The first ``n_slots`` slots as a backfill, QC, and a quick model in production (by override)."""
    from forecast.ingest import ingest
    from forecast.quality import run_qc
    from forecast.stores import store_for

    files = [sample / f for f in manifest["batches"]["main"]][:n_slots]
    ingest(cat, files, store=store_for(st), latency=timedelta(minutes=1), scheduler="sync")
    run_qc(cat, store=store_for(st))
    if not model:
        return None
    import yaml

    from forecast.registry import ModelRegistry, promote
    from forecast.registry.training import train_model

    cfg = st.home / "quick.yaml"
    cfg.write_text(yaml.safe_dump({"training": {"max_epochs": 1, "samples_per_epoch": 32, "max_val_windows": 2}}))
    doc = train_model(st, cat.id, "precipitation_rate", config_path=cfg, by="bench")
    with ModelRegistry(st.db_url, st.models_dir) as reg:
        promote(st, reg, doc["version"], by="bench", reason="bench: a quick model", override=True)
    return doc["version"]


def _start(argv, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), cwd=REPO)


def _wait_http(url: str, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _latest_init(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/collections/radar_precip.forecast", timeout=2) as r:
            return json.loads(r.read())["latest_init"]
    except OSError:
        return None


def latency(size: int, n_cycles: int, *, model: bool, keep: bool) -> dict:
    from forecast.clock import write_replay_clock
    from forecast.timeutil import iso
    from forecast.worker.inbox import feed_folders
    from forecast.worker.state import WorkerState
    from workerkit import drop, slot_file

    hist = 216 if model else 24  # a model needs 18 hours of history to train on
    with scratch_dir(f"bench-worker-{size}-", keep=keep) as tmp:
        t0 = time.perf_counter()
        st, cat, sample, manifest = _world(tmp, size, (hist + n_cycles + 1) * 5 / 60, faults=[])
        version = _history_and_model(st, cat, sample, manifest, hist, model=model)
        setup = time.perf_counter() - t0
        env = _env(st.home, st.catalogs)
        port = 18000 + size % 1000
        first = START + hist * STEP
        write_replay_clock(st.home, cat.id, sim0=first - STEP + timedelta(seconds=30), speed=1.0)
        api = _start([sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port), "--log-level", "warning"],
                     env, tmp / "api.log")
        worker = _start([sys.executable, "-m", "forecast.cli", "worker", cat.id], env, tmp / "worker.log")
        inbox, _, _ = feed_folders(st, cat)
        lat, inits = [], []
        try:
            _wait_http(f"http://127.0.0.1:{port}/health")
            time.sleep(8 if model else 3)  # the worker's start and its model process warm-up, not measured
            for i in range(n_cycles):
                t = first + i * STEP
                # the feed's clock: the file lands 30 s after its slot
                write_replay_clock(st.home, cat.id, sim0=t + timedelta(seconds=30), speed=1.0)
                w0 = time.perf_counter()
                drop(slot_file(sample, manifest, t), inbox)
                while _latest_init(port) != iso(t):
                    if time.perf_counter() - w0 > 120:
                        raise RuntimeError(f"no forecast of {iso(t)} served within 120 s (see {tmp})")
                    time.sleep(0.02)
                lat.append(time.perf_counter() - w0)
                inits.append(t)
        finally:
            for p in (worker, api):
                p.send_signal(signal.SIGTERM)
            for p in (worker, api):
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        with WorkerState(st.db_url) as state:
            rows = [r for r in state.recent(cat.id, limit=10 * n_cycles, status="done")]
        stages: dict[str, list[float]] = {}
        methods: dict[str, int] = {}
        for r in rows:
            methods[r["method"]] = methods.get(r["method"], 0) + 1
            for k, v in r["stages"].items():
                stages.setdefault(k, []).append(v)
        return {"size": size, "cycles": len(lat), "p50": _pct(lat, 50), "p95": _pct(lat, 95), "max": max(lat),
                "stages": {k: statistics.median(v) for k, v in stages.items()}, "methods": methods,
                "model": version, "setup_s": setup}


def _rss_tree(pid: int, *, own: bool = False) -> int:
    """The resident memory of the process and its children (``own``: of the process alone)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return sum(c.memory_info().rss for c in [p, *([] if own else p.children(recursive=True))])
    except psutil.Error:
        return 0


def replay_run(tmp: Path, hours: float, speed: float, *, kills: int = 0, seed: int = 42, keep: bool = False) -> dict:
    """A replay of ``hours`` of the feed (every fault) with a worker process, killed ``kills`` times."""
    from forecast.worker.replay import replay, schedule
    from forecast.worker.state import WorkerState

    st, cat, sample, manifest = _world(tmp, 256, hours, faults=["all"], seed=seed)
    env = _env(st.home, st.catalogs, FORECAST_WORKER_LEASE_TTL_S="3")
    drops = schedule(sample, cat, seed=seed)
    proc = _start([sys.executable, "-m", "forecast.cli", "worker", cat.id], env, tmp / "worker.log")
    time.sleep(3)
    done = threading.Event()
    out: dict = {}

    def feed():
        out.update(replay(st, cat.id, sample, speed=speed, seed=seed, start=drops[0].at - timedelta(seconds=1)))
        done.set()

    rss: list[tuple[float, int]] = []
    rss_own: list[tuple[float, int]] = []  # the worker process without its model process
    th = threading.Thread(target=feed, daemon=True)
    th.start()
    t0 = time.time()
    wall = hours * 3600 / speed
    kill_at = sorted(random.Random(seed).uniform(0.05, 0.9) * wall for _ in range(kills))
    n_killed = 0
    try:
        while not done.is_set():
            time.sleep(1.0)
            rss.append((time.time() - t0, _rss_tree(proc.pid)))
            rss_own.append((time.time() - t0, _rss_tree(proc.pid, own=True)))
            if kill_at and time.time() - t0 >= kill_at[0]:
                kill_at.pop(0)
                proc.kill()
                proc.wait(10)
                n_killed += 1
                proc = _start([sys.executable, "-m", "forecast.cli", "worker", cat.id], env, tmp / "worker.log")
        time.sleep(max(5.0, 900 / speed))  # the last inits fall due (15 feed minutes)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    with WorkerState(st.db_url) as state:
        rows = state.recent(cat.id, limit=100_000)
    return {"settings": st, "catalog": cat, "manifest": manifest, "rows": rows, "rss": rss, "rss_own": rss_own,
            "kills": n_killed, "log": tmp / "worker.log",
            "replay": out, "wall": wall}


def _hourly(rss: list[tuple[float, int]], hour_s: float) -> list[list[int]]:
    """The RSS samples per hour of the feed (wall seconds ``hour_s`` each)."""
    out: list[list[int]] = []
    for t, b in rss:
        i = int(t // hour_s) if hour_s > 0 else 0
        while len(out) <= i:
            out.append([])
        out[i].append(b)
    return out


def check_replay(run: dict) -> dict:
    """What a day of the feed left behind: slots stored, inits accounted for, memory."""
    from forecast.stores import open_observations, store_for

    st, cat, manifest, rows = run["settings"], run["catalog"], run["manifest"], run["rows"]
    ds = open_observations(cat.id, store=store_for(st))
    rev = ds["precipitation_rate_revision"]
    stored = {str(np.datetime64(t, "s")) + "Z": int(r) for t, r in zip(ds["time"].values, rev.values)}
    arrived = [s["time"] for s in manifest["slots"] if s["files"] and s["status"] != "corrupt"]
    not_stored = [t for t in arrived if stored.get(t, -1) < 0]
    revised = [s["time"] for s in manifest["slots"] if s["status"] == "revised"]
    outcome: dict[str, str] = {}
    reasons: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        t = r["init_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        if outcome.get(t) != "done":
            outcome[t] = r["status"]
        if r["status"] == "skipped":
            key = r["reason"].split("(")[-1].rstrip(")") if "(" in r["reason"] else r["reason"][:60]
            reasons[key] = reasons.get(key, 0) + 1
    slots = [s["time"] for s in manifest["slots"]]
    first_arrival = next(t for t in slots if stored.get(t, -1) >= 0)
    inits = [t for t in slots if t >= first_arrival]
    no_outcome = [t for t in inits if t not in outcome]
    dones = [r for r in rows if r["status"] == "done"]
    rss = run["rss"]
    hour = 3600 / (run["wall"] / (len(manifest["slots"]) * 300 / 3600)) if rss else 0
    w = run["wall"]
    first = [b for t, b in rss if t <= w / 24 * 1 + 5] or [b for _, b in rss[:10]]
    last = [b for t, b in rss if t >= w * 23 / 24] or [b for _, b in rss[-10:]]
    return {"slots_arrived": len(arrived), "not_stored": not_stored,
            "revised_stored": all(stored.get(t, 0) >= 1 for t in revised),
            "inits": len(inits), "done": sum(1 for v in outcome.values() if v == "done"),
            "skipped": sum(1 for v in outcome.values() if v == "skipped"), "failed_only": [
                t for t, v in outcome.items() if v == "failed"], "no_outcome": no_outcome, "skip_reasons": reasons,
            "deadline_misses": sum(1 for r in dones if r["deadline_missed"]),
            "done_twice": len(dones) - len({r["init_time"] for r in dones}),
            "rss_hourly_mib": [round(statistics.median(b) / 2**20) for b in _hourly(rss, w / 24) if b],
            "rss_own_hourly_mib": [round(statistics.median(b) / 2**20) for b in _hourly(run.get("rss_own", []), w / 24)
                                   if b],
            "memory_restarts": run["log"].read_text(errors="replace").count("gives the lease back and restarts itself"),
            "rss_first_mib": statistics.median(first) / 2**20 if first else None,
            "rss_last_mib": statistics.median(last) / 2**20 if last else None, "hour_wall_s": hour}


def compare_stores(a: dict, b: dict) -> dict:
    """The observation stores (values, revisions, file hashes) and the forecasts both runs made from the
    same input revisions."""
    import hashlib

    from forecast.stores import ForecastStore, open_observations, store_for

    da = open_observations("radar_precip", store=store_for(a["settings"]))
    db = open_observations("radar_precip", store=store_for(b["settings"]))
    same_obs = (np.array_equal(da["precipitation_rate"].values, db["precipitation_rate"].values, equal_nan=True)
                and np.array_equal(da["precipitation_rate_revision"].values, db["precipitation_rate_revision"].values))
    fa, fb = ForecastStore(a["settings"].forecast_store_location), ForecastStore(b["settings"].forecast_store_location)
    xa, xb = fa.open("radar_precip"), fb.open("radar_precip")
    common = sorted(set(xa["init_time"].values) & set(xb["init_time"].values))
    same, differ, other_inputs = 0, [], 0
    for t in common:
        pa, pb = fa.provenance("radar_precip", t.astype("datetime64[s]").item()), fb.provenance(
            "radar_precip", t.astype("datetime64[s]").item())
        ka = [s["revision"] for s in pa["observations"]["input_slots"]]
        kb = [s["revision"] for s in pb["observations"]["input_slots"]]
        if ka != kb or pa["method"] != pb["method"]:
            other_inputs += 1
            continue
        ha = hashlib.sha256(xa["precipitation_rate"].sel(init_time=t).values.tobytes()).hexdigest()
        hb = hashlib.sha256(xb["precipitation_rate"].sel(init_time=t).values.tobytes()).hexdigest()
        same += ha == hb
        if ha != hb:
            differ.append(str(t))
    return {"observations_identical": bool(same_obs), "forecast_inits": (len(xa["init_time"]), len(xb["init_time"])),
            "common": len(common), "identical": same, "different": differ, "other_inputs_or_method": other_inputs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", default="latency,replay,kill")
    ap.add_argument("--cycles", type=int, default=None)
    ap.add_argument("--hours", type=float, default=None, help="hours of feed for replay and kill (default 24)")
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--kills", type=int, default=None)
    ap.add_argument("--no-model", action="store_true", help="latency without a model (the fallback serves)")
    ap.add_argument("--grids", default="256,1000", help="grid sizes of the latency part (comma-separated)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    parts = args.part.split(",")
    cycles = args.cycles or (12 if args.quick else 50)
    hours = args.hours or (2.0 if args.quick else 24.0)
    kills = args.kills if args.kills is not None else (3 if args.quick else 10)
    if "latency" in parts:
        t = Table(["grid", "cycles", "p50 s", "p95 s", "max s", "target p95 s", "ingest", "qc", "read", "forecast",
                   "write", "methods"], title="file complete in the inbox -> forecast readable through the API "
                                              "(worker and API resident; stage medians in s from the cycle log)")
        targets = {256: 5.0, 1000: 15.0}
        for size in map(int, args.grids.split(",")):
            target = targets.get(size)
            if args.quick and size > 256:
                continue
            r = latency(size, cycles, model=not args.no_model, keep=args.keep)
            s = r["stages"]
            t.add([f"{size} x {size}", r["cycles"], r["p50"], r["p95"], r["max"], target, s.get("ingest"), s.get("qc"),
                   s.get("read"), s.get("forecast"), s.get("write"),
                   ", ".join(f"{k} {n}" for k, n in r["methods"].items())])
            print(t, flush=True)  # after each grid: a failure at 1000 x 1000 keeps the 256 x 256 figures
    runs = {}
    if "replay" in parts or "kill" in parts:
        with scratch_dir("bench-worker-replay-", keep=args.keep) as tmp:
            runs["plain"] = replay_run(tmp / "plain", hours, args.speed)
            chk = check_replay(runs["plain"])
            t = Table(["what", "value"], title=f"replay of {hours:g} h of the feed (every fault) at {args.speed:g}x")
            t.add(["slots that arrived", chk["slots_arrived"]])
            t.add(["of them not stored", len(chk["not_stored"])])
            t.add(["revised slot stored as revision 1", chk["revised_stored"]])
            t.add(["inits since the first arrival", chk["inits"]])
            t.add(["forecast", chk["done"]])
            t.add(["skipped (with a reason)", chk["skipped"]])
            t.add(["only failed (no data yet)", len(chk["failed_only"])])
            t.add(["no outcome at all", len(chk["no_outcome"])])
            t.add(["forecast twice", chk["done_twice"]])
            t.add(["deadline misses", chk["deadline_misses"]])
            t.add(["worker RSS first hour (MiB)", chk["rss_first_mib"]])
            t.add(["worker RSS last hour (MiB)", chk["rss_last_mib"]])
            t.add(["worker RSS per hour of the feed (MiB, median)", " ".join(map(str, chk["rss_hourly_mib"]))])
            t.add(["  of it the worker process alone", " ".join(map(str, chk["rss_own_hourly_mib"]))])
            t.add(["memory restarts (FORECAST_WORKER_MAX_RSS_GROWTH_MIB)", chk["memory_restarts"]])
            for reason, n in sorted(chk["skip_reasons"].items()):
                t.add([f"  skipped: {reason}", n])
            print(t, flush=True)
            if "kill" in parts:
                runs["killed"] = replay_run(tmp / "killed", hours, args.speed, kills=kills)
                chk2 = check_replay(runs["killed"])
                cmp = compare_stores(runs["plain"], runs["killed"])
                t = Table(["what", "value"], title=f"the same replay with the worker killed (-9) {runs['killed']['kills']} "
                                                   "times and restarted, against the uninterrupted one")
                t.add(["observation stores identical (values, revisions)", cmp["observations_identical"]])
                t.add(["forecast inits (uninterrupted, killed)", str(cmp["forecast_inits"])])
                t.add(["inits forecast in both", cmp["common"]])
                t.add(["  identical forecasts (same input revisions, method)", cmp["identical"]])
                t.add(["  made from other input revisions or by another method", cmp["other_inputs_or_method"]])
                t.add(["  different from the same inputs", len(cmp["different"])])
                t.add(["forecast twice (killed run)", chk2["done_twice"]])
                t.add(["no outcome at all (killed run)", len(chk2["no_outcome"])])
                t.add(["skipped (killed run)", chk2["skipped"]])
                print(t, flush=True)


if __name__ == "__main__":
    main()
