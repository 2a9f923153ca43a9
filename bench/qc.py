"""QC throughput end to end (store -> checks -> flags commit) against ioos_qc, on a generated radar day.

    python bench/qc.py                  # 288 slots of 1000 x 1000 (288 M cells), 3 repeats
    python bench/qc.py --slots 96 --size 500 --repeats 1
    python bench/qc.py --quick          # 48 slots of 300 x 300, < 1 minute (CI smoke)
    python bench/qc.py --breakdown      # also: where the time of one QC run goes (per phase, all threads)
    python bench/qc.py --candidate DIR  # also run the QC children on a copy of forecast/ + qc/ in DIR

Steps (inputs and store are built once, in this process; every QC figure is measured in a child process
whose whole process tree is sampled for peak RSS):

1. a bench catalog: ``catalogs/radar_precip.yaml`` with a ``size`` x ``size`` grid, id ``bench_precip``;
2. inputs from ``forecast.synthetic.generate_sample`` (one NetCDF per 5-minute slot) and
   ``forecast.ingest.batch.ingest`` into a fresh Icechunk store (timed, reported apart from QC);
3. end to end: ``forecast.quality.run.run_qc`` (read values from the store, all the catalog's ``qc:`` stages via
   ``qc.pipeline.run_checks`` on dask, write ``<v>_qc`` / ``<v>_qc_tests``, commit); the first run judges a
   fresh store (reported apart), the repeats use ``since=start`` (every slot re-checked, see
   ``forecast/quality/run.py``), one child per run, variants interleaved (A B A B ...) so that the shared
   machine's noise hits them alike: the environment as it is, glibc malloc tuned
   (``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``) and any ``--candidate``;
   wall seconds and the child's user + system CPU seconds (steadier than wall on a busy machine);
4. the parts: (a) store read only (open + ``.load()`` of the values), (b) checks only (``run_checks`` on the
   values already in memory, as a dask array chunked like ``run_qc`` does, ``.compute()``), (c) read +
   checks without writing (``run_checks`` on the lazily opened dataset, ``.compute()``);
5. baseline: ``ioos_qc.qartod`` ``gross_range_test``, ``spike_test``, ``rate_of_change_test`` and
   ``flat_line_test`` per time series (one call each per cell, times 5 minutes apart) on a random sample of
   cells of the same data, with the catalog's thresholds translated to ioos_qc's conventions.

cells/s = slots * ny * nx / wall seconds (medians over repeats). Targets: >= 30 M cells/s end to end,
>= 50x ioos_qc per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# this file is bench/qc.py: its own folder (sys.path[0] when run as a script) would shadow the qc package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
# appended, not prepended: a --candidate copy of the packages on PYTHONPATH must win over the repo
sys.path.append(str(_HERE.parent))

from bench.common import REPO, Table, dir_size, median, mib, python_child, run_child, scratch_dir, spread  # noqa: E402

SOURCE = "radar_precip"
DATASET = "bench_precip"
VAR = "precipitation_rate"
START = datetime(2026, 7, 15, tzinfo=timezone.utc)
TARGET_CELLS_S = 30e6
TARGET_RATIO = 50.0
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


# -- inputs ----------------------------------------------------------------------------------------------

def bench_catalog_doc(size: int, block: int) -> dict:
    """radar_precip.yaml with a ``size`` x ``size`` grid (same origin and 1 km step), id bench_precip."""
    import yaml

    doc = yaml.safe_load((REPO / "catalogs" / f"{SOURCE}.yaml").read_text())
    doc["id"] = DATASET
    doc["grid"]["x"]["size"] = size
    doc["grid"]["y"]["size"] = size
    doc["time"]["block"] = block
    return doc


def write_catalog(folder: Path, doc: dict):
    import yaml

    from forecast.catalog import load_catalog

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DATASET}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, load_catalog(path)


def build_inputs(tmp: Path, size: int, slots: int) -> dict:
    """Catalog, NetCDF inputs and an ingested store under ``tmp``; returns paths and timings."""
    import logging

    from forecast.ingest.batch import ingest
    from forecast.synthetic.generate import generate_sample
    from forecast.stores import ObservationStore

    logging.getLogger("icechunk").setLevel(logging.ERROR)
    cat_path, cat = write_catalog(tmp / "catalogs", bench_catalog_doc(size, max(slots, 288)))
    inputs = tmp / "inputs"
    t0 = time.perf_counter()
    generate_sample(cat, start=START, hours=slots * cat.time.step_seconds / 3600.0, out=inputs, faults=(), seed=1)
    gen_s = time.perf_counter() - t0
    files = sorted(p for p in inputs.iterdir() if p.suffix == ".nc")
    if len(files) != slots:
        raise RuntimeError(f"generate_sample wrote {len(files)} files, expected {slots} (in {inputs})")
    store = ObservationStore(tmp / "store")
    t0 = time.perf_counter()
    rep = ingest(cat, files, store=store, scheduler=None)
    ingest_s = time.perf_counter() - t0
    written = getattr(rep, "slots_written", None)
    return {"catalog": str(cat_path), "store": str(tmp / "store"), "generate_s": gen_s, "ingest_s": ingest_s,
            "files": len(files), "input_bytes": sum(f.stat().st_size for f in files),
            "ingest_report": str(written if written is not None else "")[:80]}


# -- child processes: what is measured -------------------------------------------------------------------

def _open(args):
    import logging

    from forecast.catalog import load_catalog
    from forecast.stores import ObservationStore

    logging.getLogger("icechunk").setLevel(logging.ERROR)
    cat, store = load_catalog(args.catalog), ObservationStore(args.store)
    # warm up outside the timings: imports (xarray, dask, zarr, icechunk) and the repository handle
    from forecast.stores import open_observations

    open_observations(cat.id, store=store)
    return cat, store


def child_e2e(args) -> dict:
    """``run_qc`` ``repeats`` times on the same store; the first without ``since`` (a fresh store judges
    everything), the rest with ``since=START`` (forces a re-check of every slot)."""
    from forecast.quality.run import run_qc

    cat, store = _open(args)
    secs, cpu, reports = [], [], []
    for i in range(args.repeats):
        since = None if (i == 0 and args.first_fresh) else START
        c0, t0 = os.times(), time.perf_counter()
        rep = run_qc(cat, store=store, since=since)
        secs.append(time.perf_counter() - t0)
        cpu.append(_cpu_since(c0))
        reports.append({"slots_checked": rep.slots_checked, "committed": rep.committed, "ranges": rep.ranges,
                        "counts": rep.counts, "seconds": rep.seconds})
    return {"seconds": secs, "cpu": cpu, "reports": reports}


def _cpu_since(c0) -> list[float]:
    """[user, system] CPU seconds of this process (all its threads) since ``c0 = os.times()``."""
    c1 = os.times()
    return [c1.user - c0.user, c1.system - c0.system]


def _chunked_like_run_qc(ds, cat):
    ny, nx = cat.grid.shape
    return ds.chunk({"time": -1, "y": min(ny, 500), "x": min(nx, 500)})


def child_parts(args) -> dict:
    """Store read alone, checks alone (values in memory), read + checks (no write), repeated."""
    import dask
    import numpy as np

    from forecast.quality.run import qc_config
    from forecast.stores import open_observations
    from qc.pipeline import run_checks

    cat, store = _open(args)
    cfg = qc_config(cat)
    out: dict = {"read_s": [], "checks_s": [], "read_checks_s": [], "read_cpu": [], "checks_cpu": [],
                 "read_checks_cpu": []}
    flags = None
    for _ in range(args.repeats):
        # (a) read + decode the values from Icechunk (dask, threaded: the same reader run_qc uses)
        c0, t0 = os.times(), time.perf_counter()
        ds = open_observations(cat.id, store=store)[list(cfg.variables)]
        ds = _chunked_like_run_qc(ds, cat)
        with dask.config.set(scheduler="threads"):
            mem = ds.load()
        out["read_s"].append(time.perf_counter() - t0)
        out["read_cpu"].append(_cpu_since(c0))
        # (b) checks only: in-memory values, chunked as run_qc chunks them
        dsm = _chunked_like_run_qc(mem, cat)
        c0, t0 = os.times(), time.perf_counter()
        with dask.config.set(scheduler="threads"):
            flags = run_checks(dsm, cfg, variables_meta=cat.variables).compute()
        out["checks_s"].append(time.perf_counter() - t0)
        out["checks_cpu"].append(_cpu_since(c0))
        del dsm
        # (c) read + checks, lazily, no write
        c0, t0 = os.times(), time.perf_counter()
        ds = _chunked_like_run_qc(open_observations(cat.id, store=store)[list(cfg.variables)], cat)
        with dask.config.set(scheduler="threads"):
            run_checks(ds, cfg, variables_meta=cat.variables).compute()
        out["read_checks_s"].append(time.perf_counter() - t0)
        out["read_checks_cpu"].append(_cpu_since(c0))
    q = flags[f"{VAR}_qc"].values
    vals, cnt = np.unique(q, return_counts=True)
    out["flag_counts"] = {int(v): int(c) for v, c in zip(vals, cnt)}
    out["shape"] = list(mem[VAR].shape)
    if args.sample:
        out["ioos"] = ioos_baseline(mem[VAR].values, mem["time"].values, cat, args.sample, args.seed)
    return out


# -- baseline: ioos_qc ---------------------------------------------------------------------------------

def _stage(cfg, var: str, test: str):
    for st in cfg.stages(var):
        if st.test == test:
            return st
    return None


def ioos_params(cat, step_s: int) -> dict:
    """The catalog's stages in ioos_qc 3.0 terms (``qartod.*_test`` keyword arguments)."""
    from forecast.quality.run import qc_config

    cfg = qc_config(cat)
    var = cat.variables[VAR]
    lo, hi = var.physical_range
    month = START.month
    rec = var.climatological_record.max[month - 1] if var.climatological_record.max else hi
    spike = _stage(cfg, VAR, "spike")
    flat = _stage(cfg, VAR, "flat_line")
    roc = _stage(cfg, VAR, "rate_of_change")
    s_thr = float(spike.suspect) if spike else 100.0
    return {
        # physical range FAIL, climatological record SUSPECT
        "gross_range_test": {"fail_span": (lo, hi), "suspect_span": (lo, rec)},
        # ours equals method="differential" on gap-free data
        "spike_test": {"suspect_threshold": s_thr, "fail_threshold": float(spike.fail) if spike and spike.fail
                       else None, "method": "differential"},
        # ioos_qc: units per second; the catalog has no rate_of_change stage: one spike threshold per step
        "rate_of_change_test": {"threshold": (float(roc.suspect_per_step) if roc else s_thr) / step_s},
        # ioos_qc: seconds; range < tolerance (0 switches it off), ours <= tolerance: a tiny positive one
        "flat_line_test": {"suspect_threshold": int(flat.suspect_count) * step_s if flat else 3000,
                           "fail_threshold": int(flat.fail_count) * step_s if flat else 10800,
                           "tolerance": max(float(flat.tolerance) if flat else 0.0, 1e-6)},
    }


def ioos_baseline(values, times, cat, n: int, seed: int) -> dict:
    """Per-cell time of the four ioos_qc temporal tests on ``n`` random series of ``values`` (time, y, x)."""
    import warnings

    import numpy as np
    from ioos_qc import qartod

    step_s = cat.time.step_seconds
    params = ioos_params(cat, step_s)
    rng = np.random.default_rng(seed)
    t, ny, nx = values.shape
    iy, ix = rng.integers(0, ny, n), rng.integers(0, nx, n)
    series = np.ascontiguousarray(values[:, iy, ix].T).astype("float64")  # ioos_qc works in float64
    tinp = times.astype("datetime64[s]")  # ioos_qc's own examples pass datetime64 times
    per_test = {k: 0.0 for k in params}
    flagged = {k: 0 for k in params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # warm up (imports, first-call caches)
        for name, p in params.items():
            fn = getattr(qartod, name)
            fn(series[0], tinp, **p) if name in ("rate_of_change_test", "flat_line_test") else fn(series[0], **p)
        t0 = time.perf_counter()
        for s in series:
            for name, p in params.items():
                fn = getattr(qartod, name)
                a = time.perf_counter()
                r = fn(s, tinp, **p) if name in ("rate_of_change_test", "flat_line_test") else fn(s, **p)
                per_test[name] += time.perf_counter() - a
                flagged[name] += int(np.count_nonzero(np.asarray(r) >= 3))
        total = time.perf_counter() - t0
    return {"cells": n, "slots": t, "seconds": total, "cells_per_s": n / total,
            "per_test_us_per_cell": {k: v / n * 1e6 for k, v in per_test.items()},
            "flagged": flagged, "params": {k: {kk: (list(vv) if isinstance(vv, tuple) else vv)
                                               for kk, vv in p.items()} for k, p in params.items()}}


# -- breakdown: where one QC run's time goes ----------------------------------------------------------

def child_breakdown(args) -> dict:
    """One ``run_qc(since=START)`` with the main phases wrapped by timers (summed over all threads, so
    dask's two worker threads can add up to twice the wall time): zarr chunk reads of the values
    (Icechunk fetch + Blosc decode), the rechunk to (time, 500, 500) blocks, the fused checks, flag writes
    (encode + Icechunk set), reading the old test bits (review bits), the commit."""
    import threading

    import numpy as np
    import zarr

    import forecast.quality.run as qr
    import forecast.stores.repo as fs
    import qc.pipeline as qp

    cat, store = _open(args)
    acc: dict[str, list[float]] = {}
    lock = threading.Lock()

    def add(name, dt):
        with lock:
            a = acc.setdefault(name, [0.0, 0])
            a[0] += dt
            a[1] += 1

    def wrap(owner, attr, name):
        orig = getattr(owner, attr)

        def w(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                add(name, time.perf_counter() - t0)

        setattr(owner, attr, w)
        return orig

    wrap(fs.SlotView, "__getitem__", "read values (icechunk get + blosc decode)")
    wrap(qp, "_fused", "checks (_fused, per block)")
    wrap(qr, "run_checks", "build graph (run_checks)")
    wrap(qr, "open_observations", "open_observations (metadata)")
    orig_set = zarr.Array.__setitem__
    orig_get = zarr.Array.__getitem__

    def setitem(self, key, value):
        t0 = time.perf_counter()
        try:
            return orig_set(self, key, value)
        finally:
            add(f"write {self.dtype} (blosc encode + icechunk set)", time.perf_counter() - t0)

    def getitem(self, key):
        t0 = time.perf_counter()
        try:
            return orig_get(self, key)
        finally:
            if np.dtype(self.dtype) == np.uint32 and len(self.shape) == 3:
                add("read old uint32 test bits (review bits)", time.perf_counter() - t0)

    zarr.Array.__setitem__ = setitem
    zarr.Array.__getitem__ = getitem
    Session = type(store.writable())
    orig_commit = Session.commit

    def commit(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return orig_commit(self, *a, **k)
        finally:
            add("commit", time.perf_counter() - t0)

    try:
        Session.commit = commit
    except TypeError:  # a Rust type: not patchable; time the commit as what is left
        pass
    t0 = time.perf_counter()
    rep = qr.run_qc(cat, store=store, since=START)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "slots_checked": rep.slots_checked, "ranges": rep.ranges,
            "phases": {k: {"s": v[0], "calls": v[1]} for k, v in acc.items()}}


def child_main(args) -> None:
    fn = {"e2e": child_e2e, "parts": child_parts, "breakdown": child_breakdown}[args.child]
    print(json.dumps(fn(args)))


# -- the parent --------------------------------------------------------------------------------------------

def _child(args, what: str, paths: dict, *, env: dict | None, extra: list[str] = ()):
    argv = python_child([str(Path(__file__).resolve()), "--child", what, "--catalog", paths["catalog"],
                         "--store", paths["store"], "--repeats", str(args.repeats), "--seed", str(args.seed),
                         *extra])
    run = run_child(argv, env=env, cwd=REPO, timeout=args.timeout)
    if not run.ok:
        raise RuntimeError(f"child {what} failed: {run.describe_failure()}\n{run.stderr[-3000:]}")
    return run, run.json()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slots", type=int, default=None, help="time slots (default 288; --quick 48)")
    ap.add_argument("--size", type=int, default=None, help="grid size, square (default 1000; --quick 300)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=None, help="cells for the ioos_qc baseline (default 2000)")
    ap.add_argument("--quick", action="store_true", help="48 slots of 300 x 300, 1 repeat of the parts")
    ap.add_argument("--breakdown", action="store_true", help="also time the phases of one QC run")
    ap.add_argument("--no-malloc-variant", action="store_true", help="skip the run with tuned glibc malloc")
    ap.add_argument("--candidate", action="append", metavar="DIR",
                    help="also run the QC children with DIR first on PYTHONPATH (a copy of forecast/ and qc/ "
                         "with proposed changes); repeatable")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--json", type=Path, help="write every figure to this file too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    # internal: child processes
    ap.add_argument("--child", choices=["e2e", "parts", "breakdown"], help=argparse.SUPPRESS)
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--first-fresh", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.sample = args.sample or 0
        child_main(args)
        return 0

    slots = args.slots or (48 if args.quick else 288)
    size = args.size or (300 if args.quick else 1000)
    sample = args.sample if args.sample is not None else (300 if args.quick else 2000)
    cells = slots * size * size
    base_env = {k: v for k, v in os.environ.items() if k in MALLOC_ENV}
    for k in MALLOC_ENV:  # the "as is" run must not inherit a tuned malloc from the caller
        os.environ.pop(k, None)
    res: dict = {"slots": slots, "size": size, "cells": cells, "caller_malloc_env": base_env}
    print(f"bench/qc.py: {slots} slots x {size} x {size} = {cells / 1e6:.1f} M cells, repeats {args.repeats}, "
          f"ioos_qc sample {sample} cells", file=sys.stderr)
    with scratch_dir("bench-qc-", keep=args.keep) as tmp:
        paths = build_inputs(tmp, size, slots)
        res["inputs"] = paths
        res["store_bytes"] = dir_size(paths["store"])
        print(f"  inputs: generate {paths['generate_s']:.1f} s, ingest {paths['ingest_s']:.1f} s", file=sys.stderr)

        variants = [("as is", {})] + ([] if args.no_malloc_variant else [("malloc tuned", MALLOC_ENV)])
        for i, cand in enumerate(args.candidate or []):
            # a copy of the packages (forecast/, qc/) holding proposed changes, imported first by the child
            pp = os.pathsep.join([str(Path(cand).resolve())] + ([os.environ["PYTHONPATH"]]
                                                                  if os.environ.get("PYTHONPATH") else []))
            variants.append((f"candidate{i + 1 if len(args.candidate) > 1 else ''}", {"PYTHONPATH": pp}))
        res["variants"] = {label: env for label, env in variants}
        one = argparse.Namespace(**{**vars(args), "repeats": 1})
        # the first QC of the fresh store (creates the flag arrays; every slot is dirty): apart
        run, doc = _child(one, "e2e", paths, env={}, extra=["--first-fresh"])
        res["fresh"] = {"seconds": doc["seconds"][0], "cpu": doc["cpu"][0], "peak_rss": run.peak_tree_rss,
                        "report": doc["reports"][0]}
        print(f"  first QC of the fresh store: {doc['seconds'][0]:.1f} s", file=sys.stderr)
        # re-runs with since=start, variants interleaved (A B A B ...) so that the machine's noise hits both
        e2e = {label: {"seconds": [], "cpu": [], "peak_rss": 0, "reports": []} for label, _ in variants}
        for r in range(args.repeats):
            for label, env in variants:
                run, doc = _child(one, "e2e", paths, env=env)
                e = e2e[label]
                e["seconds"] += doc["seconds"]
                e["cpu"] += doc["cpu"]
                e["reports"] += doc["reports"]
                e["peak_rss"] = max(e["peak_rss"], run.peak_tree_rss)
                print(f"  e2e [{label}] #{r + 1}: {doc['seconds'][0]:.1f} s, peak RSS {mib(run.peak_tree_rss):.0f} MiB",
                      file=sys.stderr)
        res["e2e"] = e2e
        parts = {label: {"read_s": [], "checks_s": [], "read_checks_s": [], "read_cpu": [], "checks_cpu": [],
                         "read_checks_cpu": [], "peak_rss": 0} for label, _ in variants}
        for r in range(1 if args.quick else args.repeats):
            for label, env in variants:
                extra = ["--sample", str(sample)] if (r == 0 and label == "as is") else []
                run, doc = _child(one, "parts", paths, env=env, extra=extra)
                p = parts[label]
                for k in ("read_s", "checks_s", "read_checks_s", "read_cpu", "checks_cpu", "read_checks_cpu"):
                    p[k] += doc[k]
                p["peak_rss"] = max(p["peak_rss"], run.peak_tree_rss)
                p["flag_counts"] = doc["flag_counts"]
                if "ioos" in doc:
                    p["ioos"] = doc["ioos"]
                print(f"  parts [{label}] #{r + 1}: read {doc['read_s'][0]:.1f} s, checks {doc['checks_s'][0]:.1f} s, "
                      f"read+checks {doc['read_checks_s'][0]:.1f} s", file=sys.stderr)
        res["parts"] = parts
        if args.breakdown:
            bd = {}
            for label, env in variants:
                b_args = argparse.Namespace(**{**vars(args), "repeats": 1})
                run, doc = _child(b_args, "breakdown", paths, env=env)
                bd[label] = doc
            res["breakdown"] = bd

    print_report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _cpu(pairs) -> str | None:
    """Median 'user+sys' CPU seconds of repeated [user, sys] pairs."""
    if not pairs:
        return None
    u, y = median([p[0] for p in pairs]), median([p[1] for p in pairs])
    return f"{u:.1f}+{y:.1f}"


def print_report(res: dict) -> None:
    cells = res["cells"]
    inp = res["inputs"]
    ioos = res["parts"]["as is"].get("ioos")
    ioos_cps = ioos["cells_per_s"] if ioos else float("nan")
    t = Table(["figure", "wall s", "M cells/s", "spread s", "CPU usr+sys s", "peak RSS MiB", "vs ioos_qc", "target"],
              title=f"QC benchmark: {res['slots']} slots x {res['size']} x {res['size']} = {cells / 1e6:.0f} M cells "
                    f"(medians; all figures from one run)")
    t.add(["generate inputs", inp["generate_s"], None, None, None, None, None, None])
    t.add(["ingest (not QC)", inp["ingest_s"], cells / inp["ingest_s"] / 1e6, None, None, None, None, None])
    f = res["fresh"]
    t.add(["first QC, fresh store [as is]", f["seconds"], cells / f["seconds"] / 1e6, None, _cpu([f["cpu"]]),
           mib(f["peak_rss"]), None, None])
    for label, e in res["e2e"].items():
        s = median(e["seconds"])
        cps = cells / s
        ratio = cps / ioos_cps
        t.add([f"QC end to end [{label}]", s, cps / 1e6, spread(e["seconds"]), _cpu(e["cpu"]), mib(e["peak_rss"]),
               f"{ratio:,.0f}x", f"{_verdict(cps >= TARGET_CELLS_S)} >=30M, {_verdict(ratio >= TARGET_RATIO)} >=50x"])
    for label, p in res["parts"].items():
        for key, what in (("read", "store read only"), ("checks", "checks only (in memory)"),
                          ("read_checks", "read + checks, no write")):
            s = median(p[f"{key}_s"])
            # one child per repeat runs all three parts: its peak RSS is theirs together
            t.add([f"{what} [{label}]", s, cells / s / 1e6, spread(p[f"{key}_s"]), _cpu(p.get(f"{key}_cpu")),
                   mib(p["peak_rss"]) if key == "read" else None, None, None])
    if ioos:
        t.add([f"ioos_qc 4 tests, {ioos['cells']} cells", ioos["seconds"], f"{ioos_cps / 1e6:.6f}", None, None, None,
               "1x", None])
    print(t)
    if ioos:
        per = ", ".join(f"{k.replace('_test', '')} {v:.0f}" for k, v in ioos["per_test_us_per_cell"].items())
        print(f"\nioos_qc per cell (us, {ioos['slots']} values): {per}; ioos_qc cells/s {ioos_cps:,.0f}")
    e = res["e2e"]["as is"]
    print(f"slots checked per run: {[r['slots_checked'] for r in e['reports']]}; ranges {e['reports'][-1]['ranges']}")
    for label, e in res["e2e"].items():
        print(f"flag counts [{label}] (last run): {e['reports'][-1]['counts']}")
    if "breakdown" in res:
        for label, b in res["breakdown"].items():
            print(f"\nbreakdown of one run_qc [{label}]: wall {b['wall_s']:.1f} s (seconds summed over threads)")
            for k, v in sorted(b["phases"].items(), key=lambda kv: -kv[1]["s"]):
                print(f"  {k:50s} {v['s']:8.2f} s  {v['calls']:6d} calls")


if __name__ == "__main__":
    sys.exit(main())
