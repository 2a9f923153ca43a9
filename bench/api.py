"""Benchmark of the HTTP API's point query against the framework's floor and a generic Zarr server.

    python bench/api.py            # 12 leads x 1000 x 1000, 1000 sequential queries, 20 s x 8 clients
    python bench/api.py --quick    # 12 leads x 300 x 300, 300 queries, 4 s x 8 clients (CI smoke)

One forecast (12 lead times) is written with ``ForecastStore.write`` into a fresh store. Three servers
run on 127.0.0.1, each one uvicorn worker: (a) our ``/collections/{id}/position``; (b) a trivial Litestar
endpoint returning a constant (the framework's floor); (c) ``xpublish`` + ``xpublish-edr`` serving the
same Zarr (when importable; else a naive handler that opens the dataset with xarray per request).
Per server: p50 / p99 latency of sequential position queries at random points (keep-alive connection,
``http.client``), and requests/s of 8 concurrent clients (threads in two client processes). Targets:
p50 <= 2 ms, p99 <= 10 ms, throughput >= 0.5x of (b) and >= 50x of (c).

Client and servers share the machine's cores: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
INIT = datetime(2026, 7, 15, 13, 0, tzinfo=timezone.utc)
P = "precipitation_rate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_store(root: Path, size: int) -> tuple[Path, list[tuple[float, float]], list[tuple[float, float]]]:
    """Catalogs + a forecast store with one init; returns (catalogs dir, random lon/lat points, their x/y)."""
    import xarray as xr

    from forecast.catalog import load_catalog
    from forecast.stores.forecasts import ForecastStore

    doc = copy.deepcopy(yaml.safe_load((REPO / "catalogs" / "radar_precip.yaml").read_text()))
    doc["grid"]["x"]["size"] = size
    doc["grid"]["y"]["size"] = size
    cats = root / "catalogs"
    cats.mkdir(parents=True, exist_ok=True)
    (cats / "radar_precip.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    cat = load_catalog(cats / "radar_precip.yaml")
    rng = np.random.default_rng(0)
    leads = (np.arange(1, 13) * 300).astype("timedelta64[s]").astype("timedelta64[ns]")
    vals = rng.gamma(0.5, 2.0, size=(12, size, size)).astype("float32")
    ann = np.zeros(vals.shape, "uint8")
    ann[vals > 10] = 1
    lat, lon = cat.grid.latlon()
    ds = xr.Dataset({P: (("lead_time", "y", "x"), vals, {"units": "mm h-1"}),
                     f"{P}_annotation": (("lead_time", "y", "x"), ann)},
                    coords={"lead_time": leads, "y": cat.grid.y.values(), "x": cat.grid.x.values(),
                            "lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    z = INIT.strftime("%Y-%m-%dT%H:%M:%SZ")
    prov = {"init_time": z, "dataset": cat.id, "variable": P, "model": {"version": "v1", "stage": "production"},
            "method": "model", "fallback": None, "observations": {"dataset": cat.id, "snapshot": "bench", "as_of": z,
                                                                   "input_slots": []},
            "qc": {"config_hash": "", "input_quality": {}}, "catalog_hash": cat.hash,
            "software": {"forecast": "0.1.0"}, "produced_at": z}
    t0 = time.perf_counter()
    ForecastStore(str(root / "home" / "forecasts.icechunk")).write(cat, "production", INIT, ds, prov)
    print(f"wrote 12 x {size} x {size} forecast in {time.perf_counter() - t0:.1f} s")
    pts, xy = [], []
    iy = rng.integers(0, size, 5000)
    ix = rng.integers(0, size, 5000)
    for a, b in zip(iy, ix):
        pts.append((float(lon[a, b]), float(lat[a, b])))
        xy.append((float(cat.grid.x.values()[b]), float(cat.grid.y.values()[a])))
    return cats, pts, xy


TRIVIAL = textwrap.dedent('''
    from litestar import Litestar, get

    @get("/const")
    async def const() -> dict:
        return {"value": 1.0}

    app = Litestar([const])
''')

OPEN_LATEST = textwrap.dedent('''
    def open_latest(store):
        # the latest init of the run group, lazily (chunks=None: no dask graph over the pre-sized init axis)
        import xarray as xr
        from forecast.stores.forecasts import ForecastStore

        fs = ForecastStore(store)
        session = fs.readonly()
        ds = xr.open_zarr(session.store, group="radar_precip/production", chunks=None, consolidated=False,
                          decode_times=False)
        idx = int(ds.attrs["latest_init_index"])
        ds = ds.isel(init_time=idx)[["precipitation_rate"]]
        valid = (int(ds.attrs["time_start_s"]) + idx * int(ds.attrs["time_step_s"]) + ds["lead_time"].values)
        ds = ds.assign_coords(time=("lead_time", valid.astype("datetime64[s]").astype("datetime64[ns]")))
        ds = ds.swap_dims(lead_time="time").drop_vars(["lead_time", "init_time"], errors="ignore")
        ds["time"].attrs["axis"] = "T"
        return ds
''')

XPUBLISH = textwrap.dedent('''
    import sys
    sys.path.insert(0, {repo!r})
    import xpublish
    import rioxarray  # noqa: F401
    {open_latest}
    ds = open_latest({store!r}).rio.write_crs("EPSG:3035")
    rest = xpublish.Rest({{"fc": ds}})
    app = rest.app
''')

NAIVE = textwrap.dedent('''
    import sys
    sys.path.insert(0, {repo!r})
    from litestar import Litestar, get
    {open_latest}

    @get("/position", sync_to_thread=True)
    def position(x: float, y: float) -> dict:
        # what a generic server does: open the dataset per request, select the nearest point
        pt = open_latest({store!r})["precipitation_rate"].sel(x=x, y=y, method="nearest")
        return {{"values": [float(v) for v in pt.values], "valid_time": [str(t) for t in pt["time"].values]}}

    app = Litestar([position])
''')


def start(module_dir: Path, module: str, port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--log-level", "warning", "--no-access-log"]
    p = subprocess.Popen(cmd, cwd=module_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{module} exited: {p.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.2)
    p.kill()
    raise RuntimeError(f"{module} did not start within 120 s")


def latencies(port: int, paths: list[str], warm: int = 50) -> tuple[list[float], int]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    errors = 0
    for p in paths[:warm]:
        conn.request("GET", p)
        conn.getresponse().read()
    out = []
    for p in paths:
        t0 = time.perf_counter()
        conn.request("GET", p)
        r = conn.getresponse()
        r.read()
        out.append(time.perf_counter() - t0)
        errors += r.status != 200
    conn.close()
    return out, errors


def _client_proc(port: int, paths: list[str], threads: int, seconds: float, q) -> None:
    import threading

    counts = [0] * threads
    errors = [0] * threads
    stop = time.perf_counter() + seconds

    def run(k):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = k
        while time.perf_counter() < stop:
            conn.request("GET", paths[i % len(paths)])
            r = conn.getresponse()
            r.read()
            counts[k] += 1
            errors[k] += r.status != 200
            i += threads
        conn.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((sum(counts), sum(errors)))


def throughput(port: int, paths: list[str], seconds: float, clients: int = 8, procs: int = 2) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_client_proc, args=(port, paths[k::procs], clients // procs, seconds, q))
          for k in range(procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    n = sum(r[0] for r in res)
    return n / seconds, sum(r[1] for r in res)


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 x 300 grid, 300 queries, 4 s of load")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    size = a.size or (300 if a.quick else 1000)
    nq = a.queries or (300 if a.quick else 1000)
    secs = a.seconds or (4.0 if a.quick else 20.0)
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    procs: list[subprocess.Popen] = []
    try:
        cats, pts, xy = build_store(root, size)
        store = str(root / "home" / "forecasts.icechunk")
        env = {**os.environ, "FORECAST_HOME": str(root / "home"), "FORECAST_CATALOGS": str(cats),
               "PYTHONPATH": str(REPO), "FORECAST_API_HEAD_CHECK_S": "1"}
        (root / "trivial_app.py").write_text(TRIVIAL)
        servers = {}
        port = free_port()
        procs.append(start(REPO, "api.app:app", port, env))
        ours = [f"/collections/radar_precip.forecast/position?coords={quote(f'POINT({lo:.5f} {la:.5f})')}"
                for lo, la in pts]
        servers["a ours (position, CoverageJSON)"] = (port, ours)
        port = free_port()
        procs.append(start(root, "trivial_app:app", port, env))
        servers["b trivial Litestar constant"] = (port, ["/const"])
        try:
            import xpublish  # noqa: F401
            import xpublish_edr  # noqa: F401

            (root / "xpub_app.py").write_text(XPUBLISH.format(repo=str(REPO), store=store, open_latest=OPEN_LATEST))
            port = free_port()
            procs.append(start(root, "xpub_app:app", port, env))
            gen = [f"/datasets/fc/edr/position?coords={quote(f'POINT({lo:.5f} {la:.5f})')}&parameter-name={P}&f=cf_covjson"
                   for lo, la in pts]
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("GET", gen[0])
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"xpublish-edr answered {r.status}: {body[:300]!r}")
            label = "c xpublish + xpublish-edr"
        except Exception as e:  # noqa: BLE001 - fall back to the naive handler, and say so
            print(f"xpublish-edr not usable ({type(e).__name__}: {str(e)[:200]}); using a naive xarray handler")
            (root / "naive_app.py").write_text(NAIVE.format(repo=str(REPO), store=store, open_latest=OPEN_LATEST))
            port = free_port()
            procs.append(start(root, "naive_app:app", port, env))
            gen = [f"/position?x={x}&y={y}" for x, y in xy]
            label = "c naive xarray-per-request"
        servers[label] = (port, gen)
        results = {}
        for name, (port, paths) in servers.items():
            n = nq if not name.startswith("c") else max(50, nq // 10)
            lat, err = latencies(port, paths[:n] if len(paths) > 1 else paths * n)
            rps, err2 = throughput(port, paths if len(paths) > 1 else paths * 64, secs if not name.startswith("c")
                                   else max(2.0, secs / 4))
            results[name] = {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms": float(np.mean(lat) * 1000),
                             "queries": n, "errors": err + err2, "rps_8_clients": rps}
            r = results[name]
            print(f"{name:<36} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                  f"{r['rps_8_clients']:8.0f} req/s (8 clients)  errors {r['errors']}", flush=True)
        a_, b_, c_ = (results[k] for k in servers)
        print()
        print(f"grid 12 x {size} x {size}; {nq} sequential queries; {secs:.0f} s of load per server; "
              f"{os.cpu_count()} CPU cores shared by clients and servers")
        print(f"ours: p50 {a_['p50_ms']:.2f} ms (target <= 2), p99 {a_['p99_ms']:.2f} ms (target <= 10)")
        print(f"throughput ours / trivial Litestar: {a_['rps_8_clients'] / b_['rps_8_clients']:.2f}x (target >= 0.5)")
        print(f"throughput ours / {list(servers)[2][2:]}: {a_['rps_8_clients'] / c_['rps_8_clients']:.1f}x "
              "(target >= 50)")
        print(f"p50 latency {list(servers)[2][2:]} / ours: {c_['p50_ms'] / a_['p50_ms']:.1f}x")
        print(json.dumps({"size": size, "results": results}, indent=None))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
