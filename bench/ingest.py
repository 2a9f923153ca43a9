"""Ingest throughput, store size and peak memory against two baselines, on a generated radar batch.

    python bench/ingest.py                 # 288 slots of 1000 x 1000 (1.15 GB raw float32), 3 repeats
    python bench/ingest.py --slots 256 --repeats 1 --chunks whole
    python bench/ingest.py --quick         # 24 slots of 500 x 500, < 1 minute (CI smoke)

Measured in one run, each in a child process whose whole process tree is sampled for RSS:
  (a) raw read: netCDF4, one process, open each file and read the variable fully, no masking (the ceiling);
  (b) naive: ``xr.open_mfdataset(files, combine="by_coords").to_zarr(dir)`` with xarray's defaults;
  (c) ``forecast.ingest.batch.ingest`` into a fresh store (Python API; per storage chunking), ingest of 2x the
      files (peak memory must stay flat), and the ``forecast ingest --json`` CLI once.
MB/s is raw float32 MB of the data variable / wall seconds. Inputs come from ``forecast.synthetic``
(``generate_sample``), or from a small fallback writer when that module is not there.
Page cache is warm for every figure (the inputs were just written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where a sibling benchmark named like a package
# (bench/qc.py) would shadow it: drop it. The repo is appended, not prepended, so that a --candidate copy
# of the forecast package on PYTHONPATH wins over the repo's.
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
sys.path.append(str(_HERE.parent))

from bench.common import (MB, REPO, Table, dir_size, files_size, free_bytes, median, mib,  # noqa: E402
                          python_child, run_child, scratch_dir, spread)

DATASET = "radar_precip"
VAR = "precipitation_rate"
START = "2024-06-01T00:00:00Z"  # a slot of radar_precip's axis; June: convective cells, realistic rain
TARGETS = {"c/a": 1.0, "store/input": 1.0, "mem 2x/1x": 1.2}


# -- inputs ----------------------------------------------------------------------------------------------

def bench_catalog(size: int, chunk: int | None) -> dict:
    """radar_precip.yaml with a ``size`` x ``size`` grid at 1 km (same origin) and the given storage chunk."""
    import yaml

    doc = yaml.safe_load((REPO / "catalogs" / f"{DATASET}.yaml").read_text())
    doc["grid"]["x"]["size"] = size
    doc["grid"]["y"]["size"] = size
    doc["grid"]["x"]["step"] = 1000.0
    doc["grid"]["y"]["step"] = -1000.0
    doc.setdefault("storage", {})
    doc["storage"].pop("chunk_y", None)
    doc["storage"].pop("chunk_x", None)
    if chunk:
        doc["storage"]["chunk_y"] = chunk
        doc["storage"]["chunk_x"] = chunk
    return doc


def write_catalog_dir(folder: Path, doc: dict) -> Path:
    """A catalogs folder holding only this catalog (FORECAST_CATALOGS for the CLI); checked by load_catalog."""
    import yaml

    from forecast.catalog import load_catalog

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DATASET}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_catalog(path)
    return folder


def generate_inputs(doc: dict, slots: int, out: Path, generator: str = "auto") -> tuple[list[Path], str]:
    """``slots`` files, one per 5-minute slot from START, in ``out``; returns (files, generator used).
    ``generator``: "auto" (forecast.synthetic when importable) or "fallback" (this module's writer)."""
    from datetime import datetime, timezone

    from forecast.catalog import Catalog

    cat = Catalog.model_validate(doc)
    start = datetime.fromisoformat(START.replace("Z", "+00:00")).astimezone(timezone.utc)
    step = cat.time.step_seconds
    generate_sample = None
    if generator == "auto":
        try:
            from forecast.synthetic.generate import generate_sample
        except ImportError:
            pass
    if generate_sample is not None:
        generate_sample(cat, start=start, hours=slots * step / 3600.0, out=out, faults=(), seed=0, complevel=4)
        how = "forecast.synthetic.generate_sample"
    else:
        _fallback_generate(cat, start, slots, out)
        how = "fallback writer (bench/ingest.py)"
    files = sorted(p for p in out.iterdir() if p.suffix == ".nc")
    if len(files) != slots:
        raise RuntimeError(f"generator wrote {len(files)} files, expected {slots} (in {out})")
    return files, how


def _fallback_generate(cat, start, slots: int, out: Path, complevel: int = 4) -> None:
    """CF NetCDF4 files: float32 (time=1, y, x) precipitation_rate in mm h-1, mostly dry with moving rain
    cells, zlib + shuffle, int64 time in seconds since 1970 (used only when forecast.synthetic is absent)."""
    import netCDF4
    import numpy as np

    ny, nx = cat.grid.shape
    yv, xv = cat.grid.y.values(), cat.grid.x.values()
    rng = np.random.default_rng(0)
    n_cells = max(4, ny * nx // 20000)
    cy, cx = rng.uniform(0, ny, n_cells), rng.uniform(0, nx, n_cells)
    r = rng.uniform(3, 25, n_cells)
    peak = rng.gamma(2.0, 8.0, n_cells)
    vy, vx = rng.normal(0.3, 0.2, n_cells), rng.normal(0.8, 0.3, n_cells)
    yy, xx = np.mgrid[0:ny, 0:nx].astype("float32")
    out.mkdir(parents=True, exist_ok=True)
    t0 = int(start.timestamp())
    for k in range(slots):
        field = np.zeros((ny, nx), "float32")
        for i in range(n_cells):
            y0, x0 = (cy[i] + vy[i] * k) % ny, (cx[i] + vx[i] * k) % nx
            ys = slice(max(0, int(y0 - 3 * r[i])), min(ny, int(y0 + 3 * r[i]) + 1))
            xs = slice(max(0, int(x0 - 3 * r[i])), min(nx, int(x0 + 3 * r[i]) + 1))
            d2 = (yy[ys, xs] - y0) ** 2 + (xx[ys, xs] - x0) ** 2
            field[ys, xs] += peak[i] * np.exp(-d2 / (2 * r[i] ** 2))
        field *= rng.lognormal(0.0, 0.3, field.shape).astype("float32")
        field[field < 0.1] = 0.0
        t = t0 + k * cat.time.step_seconds
        name = out / f"{cat.id}_{time.strftime('%Y%m%dT%H%M%S', time.gmtime(t))}Z.nc"
        with netCDF4.Dataset(name, "w", format="NETCDF4") as ds:
            ds.Conventions = "CF-1.8"
            ds.createDimension("time", 1)
            ds.createDimension("y", ny)
            ds.createDimension("x", nx)
            tv = ds.createVariable("time", "i8", ("time",))
            tv.units = "seconds since 1970-01-01 00:00:00"
            tv.standard_name = "time"
            tv.calendar = "proleptic_gregorian"
            tv[:] = [t]
            for n, vals in (("y", yv), ("x", xv)):
                v = ds.createVariable(n, "f8", (n,))
                v.units = "m"
                v.standard_name = f"projection_{n}_coordinate"
                v[:] = vals
            v = ds.createVariable(VAR, "f4", ("time", "y", "x"), zlib=True, complevel=complevel, shuffle=True,
                                  chunksizes=(1, ny, nx), fill_value=np.float32(np.nan))
            v.units = "mm h-1"
            v.standard_name = "lwe_precipitation_rate"
            v[0] = field


def data_var_bytes(files: list[Path]) -> int:
    """Compressed bytes of the data variable alone (HDF5 storage size), beside whole-file sizes."""
    import h5py

    total = 0
    for f in files:
        with h5py.File(f, "r") as h:
            total += h[VAR].id.get_storage_size()
    return total


def empty_store_bytes(doc: dict, slots: int, where: Path) -> int:
    """Size of a store holding the dataset's layout only (coordinates, lat/lon, time axis sized for
    ``slots``): the fixed part of a store, whatever the batch."""
    import logging

    from forecast.catalog import Catalog
    from forecast.stores import ObservationStore

    logging.getLogger("icechunk").setLevel(logging.ERROR)
    cat = Catalog.model_validate(doc)
    st = ObservationStore(where)
    s = st.writable()
    st.create_dataset(s, cat)
    st.ensure_capacity(s, cat, slots - 1)
    s.commit("layout only (benchmark)")
    return dir_size(where)


# -- child processes -------------------------------------------------------------------------------------

def child_read(files: list[str], repeats: int) -> dict:
    import netCDF4
    import numpy as np

    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = 0
        for f in files:
            with netCDF4.Dataset(f) as ds:
                v = ds[VAR]
                v.set_auto_maskandscale(False)
                a = v[:]
                n += a.size
        secs.append(time.perf_counter() - t0)
    return {"seconds": secs, "values": n, "dtype": str(np.asarray(a).dtype)}


def child_naive(files: list[str], out: str, parallel: bool, scheduler: str | None) -> dict:
    import warnings

    import xarray as xr

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarnings about defaults and zarr v3 consolidated metadata
        kw = {"parallel": True} if parallel else {}
        if scheduler:
            import dask

            with dask.config.set(scheduler=scheduler):
                xr.open_mfdataset(files, combine="by_coords", **kw).to_zarr(out)
        else:
            xr.open_mfdataset(files, combine="by_coords", **kw).to_zarr(out)
    return {"seconds": time.perf_counter() - t0, "xarray": xr.__version__}


def child_ingest(catalog_dir: str, store: str, files: list[str]) -> dict:
    import logging

    t0 = time.perf_counter()
    from forecast.catalog import get_catalog
    from forecast.ingest.batch import ingest
    from forecast.stores import ObservationStore

    logging.getLogger("icechunk").setLevel(logging.ERROR)
    t_import = time.perf_counter() - t0
    cat = get_catalog(Path(catalog_dir), DATASET)
    t1 = time.perf_counter()
    rep = ingest(cat, files, store=ObservationStore(store))
    secs = time.perf_counter() - t1
    import forecast.ingest.batch as fi

    return {"seconds": secs, "report_seconds": rep.seconds, "import_s": t_import, "written": len(rep.written),
            "rejected": rep.rejected[:3], "committed": rep.committed, "module": fi.__file__}


def _child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench/ingest.py _child")
    p.add_argument("mode", choices=["read", "naive", "ingest"])
    p.add_argument("--files", required=True, help="a file listing one input path per line")
    p.add_argument("--out")
    p.add_argument("--catalogs")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--parallel", action="store_true")
    p.add_argument("--scheduler")
    a = p.parse_args(argv)
    files = Path(a.files).read_text().split()
    if a.mode == "read":
        res = child_read(files, a.repeats)
    elif a.mode == "naive":
        res = child_naive(files, a.out, a.parallel, a.scheduler)
    else:
        res = child_ingest(a.catalogs, a.out, files)
    print(json.dumps(res))


# -- the benchmark ---------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.me = str(Path(__file__).resolve())
        self.results: dict = {"args": vars(args).copy(), "runs": {}}
        self.timeout = args.timeout

    def listfile(self, name: str, files: list[Path]) -> Path:
        p = self.work / f"{name}.txt"
        p.write_text("\n".join(map(str, files)) + "\n")
        return p

    def child(self, *argv: str, env: dict | None = None):
        return run_child(python_child([self.me, "_child", *argv]), env=env, cwd=REPO, timeout=self.timeout)

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    Path(str(path) + ".lock").unlink(missing_ok=True)  # the store's writer lock file


def run(args) -> dict:
    size, slots = args.size, args.slots
    raw_mb = slots * size * size * 4 / MB
    chunk_variants = [None if c == "whole" else int(c) for c in args.chunks.split(",")]
    with scratch_dir(prefix="bench-ingest-", keep=args.keep, base=args.workdir) as work:
        # 2N input files (~0.8 bytes a value with their lat/lon), one store at a time (~0.5), margin
        need = 2 * slots * size * size * 0.8 + 2 * slots * size * size * 4 * 0.5 + 1e9
        if free_bytes(work) < need:
            raise SystemExit(f"not enough free disk under {work}: need ~{need / 1e9:.1f} GB")
        b = Bench(args, work)
        log = b.log
        R = b.results
        R["raw_mb"] = raw_mb
        R["workers"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        R["loadavg_start"] = os.getloadavg()
        R["grid"] = [size, size]
        R["slots"] = slots

        # inputs: batch A (slots 0..N-1) and batch B (N..2N-1) for the 2x memory run
        docs = {c: bench_catalog(size, c) for c in chunk_variants}
        catdirs = {c: write_catalog_dir(work / f"catalogs-{c or 'whole'}", d) for c, d in docs.items()}
        log(f"generating {2 * slots} slots of {size} x {size} ...")
        t0 = time.perf_counter()
        gen = work / "gen"
        files2, how = generate_inputs(docs[chunk_variants[0]], 2 * slots, gen, args.generator)
        R["generator"] = how
        R["generate_s"] = time.perf_counter() - t0
        dir_a, dir_b = work / "A", work / "B"
        dir_a.mkdir()
        dir_b.mkdir()
        files_a, files_b = [], []
        for i, f in enumerate(files2):
            dst = (dir_a if i < slots else dir_b) / f.name
            f.rename(dst)
            (files_a if i < slots else files_b).append(dst)
        list_a = b.listfile("A", files_a)
        list_ab = b.listfile("AB", files_a + files_b)
        R["input_file_bytes"] = files_size(files_a)
        R["input_var_bytes"] = data_var_bytes(files_a)
        log(f"  {how}: {R['generate_s']:.1f} s; batch A {R['input_file_bytes'] / MB:.0f} MB on disk "
            f"({R['input_var_bytes'] / MB:.0f} MB of it {VAR}), {raw_mb:.0f} MB raw")

        # (b) naive xarray -> zarr
        if not args.no_naive:
            log("(b) naive open_mfdataset(...).to_zarr() ...")
            secs, rss, sizes, notes, cpus = [], [], [], [], []
            for _ in range(args.repeats):
                out = work / "naive.zarr"
                _rm(out)
                rb = b.child("naive", "--files", str(list_a), "--out", str(out))
                mode = "defaults (parallel=False, dask threads)"
                if not rb.ok:
                    notes.append(f"defaults crashed: {rb.describe_failure()}")
                    _rm(out)
                    rb = b.child("naive", "--files", str(list_a), "--out", str(out), "--scheduler", "synchronous")
                    mode = "parallel=False, synchronous scheduler (after a crash under threads)"
                    if not rb.ok:
                        notes.append(f"synchronous also failed: {rb.describe_failure()}")
                        continue
                secs.append(rb.json()["seconds"])
                cpus.append(rb.cpu_s)
                rss.append(rb.peak_tree_rss)
                sizes.append(dir_size(out))
                _rm(out)
            crashes = 0
            for _ in range(args.probe_parallel):
                out = work / "naive-par.zarr"
                _rm(out)
                rp = b.child("naive", "--files", str(list_a), "--out", str(out), "--parallel")
                crashes += not rp.ok
                if not rp.ok:
                    notes.append(f"parallel=True: {rp.describe_failure()}")
                _rm(out)
            R["runs"]["b"] = {"seconds": secs, "cpu_s": cpus, "peak_tree_rss": rss, "store_bytes": sizes, "mode": mode,
                              "notes": notes, "parallel_true_crashes": f"{crashes}/{args.probe_parallel}"}

        # (a) and (c), interleaved run by run so that a change of the machine's load shifts both alike:
        # (a) raw read, the ceiling; (c) our ingest per storage chunking, and the candidate (a patched
        # copy of the package on PYTHONPATH) beside the baseline
        variants = [("base", None)]
        for i, cand in enumerate(args.candidate or [], 1):
            pp = os.pathsep.join([str(Path(cand).resolve()), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            variants.append(("cand" if len(args.candidate) == 1 else f"cand{i}", {"PYTHONPATH": pp}))
        fixed = {}
        R["runs"]["a"] = {"seconds": [], "cpu_s": [], "peak_tree_rss": []}
        for c in chunk_variants:
            key = str(c or "whole")
            fixed[key] = empty_store_bytes(docs[c], slots, work / f"empty-{key}.icechunk")
            _rm(work / f"empty-{key}.icechunk")
            for tag, env in variants:
                R["runs"][f"c/{tag}/{key}"] = {"seconds": [], "wall": [], "peak_tree_rss": [], "peak_proc_rss": [],
                                              "max_procs": [], "store_bytes": [], "import_s": [], "cpu_s": []}
        for rep in range(args.repeats):
            log(f"(a) raw netCDF4 read, run {rep + 1}/{args.repeats} ...")
            ra = b.child("read", "--files", str(list_a), "--repeats", "1")
            if not ra.ok:
                raise SystemExit(f"raw read failed: {ra.describe_failure()}")
            R["runs"]["a"]["seconds"].extend(ra.json()["seconds"])
            R["runs"]["a"]["peak_tree_rss"].append(ra.peak_tree_rss)
            R["runs"]["a"]["cpu_s"].append(ra.cpu_s)
            for c in chunk_variants:
                key = str(c or "whole")
                for tag, env in variants:
                    log(f"(c) ingest [{tag}] chunks={key} run {rep + 1}/{args.repeats} ...")
                    store = work / "store.icechunk"
                    _rm(store)
                    rc = b.child("ingest", "--files", str(list_a), "--out", str(store), "--catalogs",
                                 str(catdirs[c]), env=env)
                    if not rc.ok:
                        raise SystemExit(f"ingest [{tag}] failed: {rc.describe_failure()}\n{rc.stderr[-3000:]}")
                    res = rc.json()
                    if res["written"] != slots or res["rejected"]:
                        raise SystemExit(f"ingest [{tag}] wrote {res['written']} of {slots} slots; {res['rejected']}")
                    d = R["runs"][f"c/{tag}/{key}"]
                    d["seconds"].append(res["seconds"])
                    d["wall"].append(rc.wall_s)
                    d["cpu_s"].append(rc.cpu_s)
                    d["import_s"].append(res["import_s"])
                    d["peak_tree_rss"].append(rc.peak_tree_rss)
                    d["peak_proc_rss"].append(rc.peak_proc_rss)
                    d["max_procs"].append(rc.max_procs)
                    d["store_bytes"].append(dir_size(store))
                    d["module"] = res["module"]
                    _rm(store)
        R["fixed_store_bytes"] = fixed

        # 2x the files: peak memory should be flat in batch size
        mem_variants = chunk_variants if args.mem_all else chunk_variants[:1]
        for c in mem_variants:
            key = str(c or "whole")
            for tag, env in variants:
                log(f"(c) ingest [{tag}] chunks={key} 2x batch ({2 * slots} files) ...")
                store = work / "store2.icechunk"
                _rm(store)
                rc = b.child("ingest", "--files", str(list_ab), "--out", str(store), "--catalogs", str(catdirs[c]),
                             env=env)
                if not rc.ok:
                    raise SystemExit(f"2x ingest failed: {rc.describe_failure()}\n{rc.stderr[-3000:]}")
                res = rc.json()
                R["runs"][f"c2x/{tag}/{key}"] = {"seconds": res["seconds"], "cpu_s": rc.cpu_s,
                                                 "peak_tree_rss": rc.peak_tree_rss,
                                                 "peak_proc_rss": rc.peak_proc_rss, "written": res["written"],
                                                 "store_bytes": dir_size(store)}
                _rm(store)

        # the CLI once (default catalog variant)
        if not args.no_cli:
            c = chunk_variants[0]
            log("(c) forecast ingest CLI once ...")
            home = work / "home"
            _rm(home)
            exe = Path(sys.executable).with_name("forecast")
            argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "forecast.cli"]
            rc = run_child([*argv, "ingest", DATASET, str(dir_a), "--json"], cwd=REPO, timeout=b.timeout,
                           env={"FORECAST_CATALOGS": str(catdirs[c]), "FORECAST_HOME": str(home)})
            ok = rc.ok
            doc = rc.json() if ok else {}
            R["runs"]["cli"] = {"wall": rc.wall_s, "cpu_s": rc.cpu_s, "peak_tree_rss": rc.peak_tree_rss, "ok": ok,
                                "seconds": (doc.get("data") or doc).get("seconds") if ok else None,
                                "failure": None if ok else rc.describe_failure()}
            _rm(home)
    return R


# -- printing --------------------------------------------------------------------------------------------

def report(R: dict) -> str:
    raw = R["raw_mb"]
    lines = []
    size = R["grid"]
    lines.append(f"ingest benchmark: {R['slots']} slots of {size[0]} x {size[1]} float32 = {raw:,.0f} MB raw; "
                 f"inputs {R['input_file_bytes'] / MB:,.0f} MB on disk ({R['input_var_bytes'] / MB:,.0f} MB of "
                 f"them {VAR}); generator: {R['generator']}; warm page cache; medians of "
                 f"{R['args']['repeats']} run(s); {R['workers']} CPUs, load average "
                 f"{R['loadavg_start'][0]:.1f} at start, {R.get('loadavg_end', [float('nan')])[0]:.1f} at end")
    t = Table(["run", "seconds", "MB/s", "range (s)", "CPU s", "peak RSS tree MiB", "store MB", "notes"])
    a = R["runs"]["a"]
    sa = median(a["seconds"])
    t.add(["(a) raw netCDF4 read, 1 process", sa, raw / sa, spread(a["seconds"]), median(a["cpu_s"]),
           mib(median(a["peak_tree_rss"])), None, "ceiling"])
    sb = None
    if "b" in R["runs"]:
        bb = R["runs"]["b"]
        sb = median(bb["seconds"]) if bb["seconds"] else None
        t.add(["(b) open_mfdataset().to_zarr()", sb, raw / sb if sb else None, spread(bb["seconds"]),
               median(bb["cpu_s"]), mib(median(bb["peak_tree_rss"])), median(bb["store_bytes"]) / MB if bb["store_bytes"] else None,
               bb["mode"]])
    c_keys = [k for k in R["runs"] if k.startswith("c/")]
    for k in c_keys:
        d = R["runs"][k]
        _, tag, chunk = k.split("/")
        s = median(d["seconds"])
        t.add([f"(c) ingest [{tag}] chunks {chunk}", s, raw / s, spread(d["seconds"]), median(d["cpu_s"]),
               mib(median(d["peak_tree_rss"])),
               median(d["store_bytes"]) / MB,
               f"child wall {median(d['wall']):.1f} s, imports {median(d['import_s']):.1f} s, "
               f"{max(d['max_procs'])} procs"])
    for k in [k for k in R["runs"] if k.startswith("c2x/")]:
        d = R["runs"][k]
        _, tag, chunk = k.split("/")
        t.add([f"(c) 2x batch [{tag}] chunks {chunk}", d["seconds"], 2 * raw / d["seconds"], "", d["cpu_s"],
               mib(d["peak_tree_rss"]),
               d["store_bytes"] / MB, f"{d['written']} slots"])
    if "cli" in R["runs"]:
        d = R["runs"]["cli"]
        t.add(["(c) forecast ingest --json (CLI)", d["wall"], raw / d["wall"], "", d["cpu_s"], mib(d["peak_tree_rss"]),
               None,
               f"wall incl. interpreter start; ingest {d['seconds']} s" if d["ok"] else d["failure"]])
    lines.append(str(t))
    if "b" in R["runs"] and R["runs"]["b"]["notes"]:
        lines.append("notes (b): " + "; ".join(R["runs"]["b"]["notes"]))
    if "b" in R["runs"] and R["args"]["probe_parallel"]:
        lines.append(f"(b) with parallel=True (xarray#7079): crashed in {R['runs']['b']['parallel_true_crashes']} tries")

    r = Table(["ratio", "value", "target", "met"], title="\nratios (same run)")
    for k in c_keys:
        d = R["runs"][k]
        _, tag, chunk = k.split("/")
        s = median(d["seconds"])
        ca = sa / s
        r.add([f"c/a [{tag}] chunks {chunk}", ca, f">= {TARGETS['c/a']}", ca >= TARGETS["c/a"]])
        paired = median([x / y for x, y in zip(a["seconds"], d["seconds"])])
        r.add(["  c/a paired run by run (median)", paired, f">= {TARGETS['c/a']}", paired >= TARGETS["c/a"]])
        cpu_ratio = median(d["cpu_s"]) / median(a["cpu_s"])
        r.add(["  CPU c / CPU a (work per MB; less load-dependent than wall time)", cpu_ratio, "", None])
        r.add([f"  c/a bound with {R['workers']} idle cores = {R['workers']} / that", R["workers"] / cpu_ratio,
               f">= {TARGETS['c/a']}", R["workers"] / cpu_ratio >= TARGETS["c/a"]])
        if tag != "base" and f"c/base/{chunk}" in R["runs"]:
            bs = R["runs"][f"c/base/{chunk}"]["seconds"]
            r.add([f"  speed-up {tag} / base, paired (median)", median([x / y for x, y in zip(bs, d["seconds"])]),
                   "", None])
        if sb:
            r.add([f"c/b [{tag}] chunks {chunk}", sb / s, "", None])
        st = median(d["store_bytes"])
        fixed = R["fixed_store_bytes"][chunk]
        r.add([f"store / input files [{tag}] chunks {chunk}", st / R["input_file_bytes"], f"<= {TARGETS['store/input']}",
               st / R["input_file_bytes"] <= TARGETS["store/input"]])
        r.add([f"store / input {VAR} bytes [{tag}] chunks {chunk}", st / R["input_var_bytes"],
               f"<= {TARGETS['store/input']}", st / R["input_var_bytes"] <= TARGETS["store/input"]])
        r.add([f"  same, less the fixed layout ({fixed / MB:.1f} MB)", (st - fixed) / R["input_var_bytes"],
               f"<= {TARGETS['store/input']}", (st - fixed) / R["input_var_bytes"] <= TARGETS["store/input"]])
        k2 = f"c2x/{tag}/{chunk}"
        if k2 in R["runs"]:
            m = R["runs"][k2]["peak_tree_rss"] / median(d["peak_tree_rss"])
            r.add([f"peak RSS 2x / 1x [{tag}] chunks {chunk}", m, f"<= {TARGETS['mem 2x/1x']}", m <= TARGETS["mem 2x/1x"]])
    lines.append(str(r))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        _child_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(prog="bench/ingest.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slots", type=int, default=None, help="files (5-minute slots) per batch (default 288; quick 24)")
    p.add_argument("--size", type=int, default=None, help="grid rows = columns (default 1000; quick 500)")
    p.add_argument("--quick", action="store_true",
                   help="small and fast (CI smoke): 24 slots of 500 x 500, 1 run, whole-grid chunks only")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 3; quick 1)")
    p.add_argument("--chunks", default=None,
                   help="storage chunkings to compare, comma-separated: 'whole' or a tile edge (default whole,500)")
    p.add_argument("--no-naive", action="store_true", help="skip (b)")
    p.add_argument("--no-cli", action="store_true", help="skip the CLI run")
    p.add_argument("--probe-parallel", type=int, default=None,
                   help="also run (b) with parallel=True this many times, counting crashes (default 1; quick 0)")
    p.add_argument("--mem-all", action="store_true", help="the 2x memory run for every chunking, not only the first")
    p.add_argument("--candidate", metavar="DIR", action="append",
                   help="also run (c) with DIR first on PYTHONPATH (a patched copy of the forecast package), "
                        "interleaved with the baseline; repeatable")
    p.add_argument("--generator", choices=["auto", "fallback"], default="auto",
                   help="inputs from forecast.synthetic (auto, when importable) or from this script's own writer")
    p.add_argument("--workdir", help="parent of the scratch folder (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per child process")
    p.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    a = p.parse_args(argv)
    a.slots = a.slots or (24 if a.quick else 288)
    a.size = a.size or (500 if a.quick else 1000)
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.chunks = a.chunks or ("whole" if a.quick else "whole,500")
    if a.probe_parallel is None:
        a.probe_parallel = 0 if a.quick else 1
    t0 = time.perf_counter()
    R = run(a)
    R["total_s"] = time.perf_counter() - t0
    R["loadavg_end"] = os.getloadavg()
    if a.json:
        Path(a.json).write_text(json.dumps(R, indent=1, default=str) + "\n")
    print(report(R))
    print(f"\n(benchmark took {R['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
