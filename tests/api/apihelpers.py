"""Helpers of the API tests and the recipe of their world: a 64 x 64 radar catalog, 1.5 h of sample
observations with a record storm (ingested, QC'd, one review item), two forecast inits written with
``ForecastStore.write`` (with extreme and implausible annotations), and users of each role."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

# tests/conftest.py, loaded once under its own name (pytest imports it as ``conftest``, as it does this
# folder's conftest.py: the name cannot be imported from here)
_path = Path(__file__).resolve().parents[1] / "conftest.py"
root_conftest = sys.modules.get("_root_conftest")
if root_conftest is None:
    _spec = importlib.util.spec_from_file_location("_root_conftest", _path)
    root_conftest = importlib.util.module_from_spec(_spec)
    sys.modules["_root_conftest"] = root_conftest
    _spec.loader.exec_module(root_conftest)
small_doc, write_catalog = root_conftest.small_doc, root_conftest.write_catalog

START = datetime(2026, 7, 15, 12, tzinfo=timezone.utc)
INITS = [datetime(2026, 7, 15, 13, 0, tzinfo=timezone.utc), datetime(2026, 7, 15, 13, 5, tzinfo=timezone.utc)]
LEADS = np.arange(1, 13) * 300
P = "precipitation_rate"


def make_forecast(cat, init: datetime, *, scale: float = 1.0):
    import xarray as xr

    ny, nx = cat.grid.shape
    lat, lon = cat.grid.latlon()
    lead = LEADS.astype("timedelta64[s]").astype("timedelta64[ns]")
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    vals = (scale * (iy[None] + ix[None] / 100.0) + np.arange(len(LEADS))[:, None, None] / 10.0).astype("float32")
    ann = np.zeros(vals.shape, "uint8")
    vals[5, 10, 20] = 300.0  # beyond the July record (250): extreme
    ann[5, 10, 20] = 1
    vals[6, 10, 20] = 600.0  # beyond the physical range (500): implausible, kept as it is
    ann[6, 10, 20] = 2
    vals[7, 10, 20] = np.nan
    ann[8, 10, 20] = 3
    ds = xr.Dataset(
        {P: (("lead_time", "y", "x"), vals, {"units": "mm h-1"}),
         f"{P}_annotation": (("lead_time", "y", "x"), ann)},
        coords={"lead_time": lead, "y": cat.grid.y.values(), "x": cat.grid.x.values(),
                "lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    return ds


def provenance(cat, init: datetime, snapshot: str) -> dict:
    z = init.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"init_time": z, "dataset": cat.id, "variable": P,
            "model": {"version": "v1", "stage": "production", "checkpoint_sha256": "ab" * 32, "architecture": "unet"},
            "method": "model", "fallback": None,
            "observations": {"dataset": cat.id, "snapshot": snapshot, "as_of": z,
                             "input_slots": [{"time": z, "revision": 0, "available_at": z}]},
            "qc": {"config_hash": "cd" * 32, "input_quality": {"GOOD": 0.97, "NOT_EVALUATED": 0.0, "SUSPECT": 0.01,
                                                                "FAIL": 0.0, "MISSING": 0.02}},
            "catalog_hash": cat.hash, "software": {"forecast": "0.1.0", "torch": None, "lightning": None},
            "produced_at": z}


def settings_for(world, tmp: Path | None = None, **kw):
    """Settings over the world; with ``tmp``, a private copy of the database (tests that decide)."""
    from forecast.settings import Settings

    db = world["db"]
    if tmp is not None:
        shutil.copy(world["home"] / "review.db", tmp / "review.db")
        db = f"sqlite:///{tmp / 'review.db'}"
    return Settings(home=world["home"], catalogs=world["tmp"] / "catalogs", database_url=db, **kw)


def auth(world, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['tokens'][role]}"}


def build_world(tmp):
    from forecast.catalog import load_catalog
    from forecast.db.users import UserStore
    from forecast.ingest import ingest
    from forecast.quality import run_qc
    from forecast.review import ReviewQueue
    from forecast.stores import ForecastStore, ObservationStore
    from forecast.synthetic import generate_sample

    doc = small_doc("radar_precip", ny=64, nx=64)
    cat = load_catalog(write_catalog(tmp / "catalogs", doc))
    manifest = generate_sample(cat, start=START, hours=1.5, out=tmp / "s", faults=["record_extreme", "spike"], seed=11)
    home = tmp / "home"
    store = ObservationStore(home / "observations.icechunk")
    b = manifest["batches"]
    ingest(cat, [tmp / "s" / x for x in b["main"]], store=store, available_at=START + timedelta(hours=2),
           scheduler="sync")
    # a late batch, available 40 minutes later: as-of reads before then do not see it
    late = b["late"] or b["main"][-2:]  # (re-delivered files are duplicates: nothing new)
    ingest(cat, [tmp / "s" / x for x in late], store=store, available_at=START + timedelta(hours=2, minutes=40),
           scheduler="sync")
    db = f"sqlite:///{home / 'review.db'}"
    with ReviewQueue(db) as q:
        run_qc(cat, store=store, queue=q, scheduler="sync")
    fstore = ForecastStore(str(home / "forecasts.icechunk"))
    for k, init in enumerate(INITS):
        fstore.write(cat, "production", init, make_forecast(cat, init, scale=1.0 + k), provenance(cat, init, store.head()))
    tokens = {}
    with UserStore(db) as users:
        for name, role in (("rita", "reader"), ("otto", "operator"), ("olga", "operator"), ("fred", "forecaster"),
                           ("ada", "admin")):
            tokens[role if name not in ("olga",) else "operator2"] = users.add(name, role, by="test")[1]
    return {"tmp": tmp, "home": home, "catalog": cat, "manifest": manifest, "db": db, "tokens": tokens,
            "store": store, "fstore": fstore}


def lonlat_of(cat, iy: int, ix: int) -> tuple[float, float]:
    """lon/lat of a cell centre of the catalog's grid."""
    from pyproj import Transformer

    tr = Transformer.from_crs(cat.grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(cat.grid.x.start + ix * cat.grid.x.step, cat.grid.y.start + iy * cat.grid.y.step)
    return float(lon), float(lat)
