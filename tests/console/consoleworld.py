"""The console tests' world (also used by ``bench/console.py``): a 64 x 64 radar catalog, 2 h of sample
observations with a record storm, spikes, missing, late and revised files (ingested in feed order, QC'd, review
items queued), two forecast inits with extreme / implausible / degraded marks, two registered models (one
with a hindcast report that passes the gate, one whose report fails it) and users of each role.

Everything is built through the package-level APIs the console itself uses.
"""

from __future__ import annotations

import json
import sys
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # testkit, also when bench/console.py imports this module

from testkit import small_doc, write_catalog  # noqa: E402
START = datetime(2026, 7, 15, 12, tzinfo=timezone.utc)
HOURS = 2.0
INITS = [datetime(2026, 7, 15, 13, 30, tzinfo=timezone.utc), datetime(2026, 7, 15, 13, 35, tzinfo=timezone.utc)]
LEADS = np.arange(1, 13) * 300
P = "precipitation_rate"
USERS = (("rita", "reader"), ("otto", "operator"), ("olga", "operator"), ("ada", "admin"))


def catalog_doc(size: int = 64, dataset_id: str = "radar_precip") -> dict:
    """The shipped radar catalog on a ``size`` x ``size`` grid (`testkit.small_doc`)."""
    return small_doc("radar_precip", ny=size, nx=size, dataset_id=dataset_id)


def make_forecast(cat, *, scale: float = 1.0):
    """One forecast (lead_time, y, x) with a value of each plausibility mark at (10, 20)."""
    import xarray as xr

    ny, nx = cat.grid.shape
    lat, lon = cat.grid.latlon()
    lead = LEADS.astype("timedelta64[s]").astype("timedelta64[ns]")
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    blob = 40.0 * np.exp(-(((iy - ny / 2) / (ny / 6)) ** 2 + ((ix - nx / 3) / (nx / 6)) ** 2))
    vals = (scale * blob[None] * (1 + np.arange(len(LEADS))[:, None, None] / 12.0)).astype("float32")
    ann = np.zeros(vals.shape, "uint8")
    vals[5, 10, 20] = 300.0  # beyond the July record (250): extreme
    ann[5, 10, 20] = 1
    vals[6, 10, 20] = 600.0  # beyond the physical range (500): implausible, kept as it is
    ann[6, 10, 20] = 2
    ann[8, 8:12, 18:22] = 3  # inputs largely flagged: degraded
    return xr.Dataset(
        {P: (("lead_time", "y", "x"), vals, {"units": "mm h-1"}),
         f"{P}_annotation": (("lead_time", "y", "x"), ann)},
        coords={"lead_time": lead, "y": cat.grid.y.values(), "x": cat.grid.x.values(),
                "lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})


def provenance(cat, init: datetime, snapshot: str, *, fallback: dict | None = None) -> dict:
    z = init.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"init_time": z, "dataset": cat.id, "variable": P,
            "model": {"version": "v1", "stage": "production", "checkpoint_sha256": "ab" * 32, "architecture": "unet"},
            "method": "extrapolation" if fallback else "model", "fallback": fallback,
            "observations": {"dataset": cat.id, "snapshot": snapshot, "as_of": z,
                             "input_slots": [{"time": z, "revision": 0, "available_at": z}]},
            "qc": {"config_hash": "cd" * 32, "input_quality": {"GOOD": 0.97, "NOT_EVALUATED": 0.0, "SUSPECT": 0.01,
                                                                "FAIL": 0.0, "MISSING": 0.02}},
            "catalog_hash": cat.hash, "software": {"forecast": "0.1.0"}, "produced_at": z}


def gate_report(version: str, sha256: str, *, passing: bool, dataset: str = "radar_precip") -> dict:
    """A hindcast report.json as `forecast hindcast` writes it, reduced to what the gate reads."""
    leads = [900, 1800, 2700, 3600]
    sign = -1.0 if passing else 1.0
    rmse = {"method": [1.0] * 4, "reference": [1.2] * 4, "diff": [sign * 0.2] * 4,
            "lower": [sign * 0.3 if passing else 0.1] * 4, "upper": [sign * 0.1 if passing else 0.3] * 4,
            "better": [passing] * 4}
    return {
        "command": f"forecast hindcast {dataset} --model {version}",
        "verdict": "better than the baselines" if passing else "worse than the baselines",
        "provenance": {"model": {"version": version, "checkpoint_sha256": sha256,
                                 "training_period": ["2026-07-14T00:00:00Z", "2026-07-15T00:00:00Z"]},
                       "dataset": dataset, "variable": P, "training_overlap": {"model": False},
                       "fallbacks": {"model": {"count": 0, "share": 0.0}},
                       "period": {"start": "2026-07-15T12:00:00Z", "end": "2026-07-15T14:00:00Z", "every_s": 300},
                       "observations": {"snapshot": "test"}},
        "summary": {"lead_time_s": leads, "methods": {"model": {"n_inits": 24}},
                    "bootstrap": {"model": {"persistence": {"rmse": rmse}, "sprog": {"rmse": rmse}}}},
    }


def register_model(registry, tmp: Path, home: Path, content: bytes, *, passing: bool | None) -> str:
    from forecast.timeutil import stamp

    ck = tmp / "train" / content.decode() / "model.ckpt"
    ck.parent.mkdir(parents=True, exist_ok=True)
    ck.write_bytes(content)
    record = {"snapshot": "test", "catalog_hash": "c" * 64, "qc_config_hash": "q" * 64,
              "hyperparameters": {"epochs": 1}, "metrics": {"val_rmse": 1.0}, "git_commit": None,
              "versions": {"forecast": "0.1.0"}}
    rec = registry.register(dataset="radar_precip", variable=P, checkpoint=ck, config=None, record=record, by="trainer")
    if passing is not None:
        folder = home / "hindcasts" / f"{rec.version}-{stamp(START)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(gate_report(rec.version, rec.checkpoint_sha256,
                                                                   passing=passing)))
        (folder / "report.html").write_text(f"<!doctype html><title>hindcast {rec.version}</title><h1>Hindcast of "
                                            f"{rec.version}</h1>")
    return rec.version


def build_world(tmp: Path, *, forecasts: bool = True, models: bool = True, size: int = 64) -> dict:
    """Build the world under ``tmp`` (see the module docstring); returns its paths, tokens and ids."""
    from forecast.catalog import load_catalog
    from forecast.db.users import UserStore
    from forecast.ingest import ingest
    from forecast.quality import run_qc
    from forecast.registry import ModelRegistry
    from forecast.review import ReviewQueue
    from forecast.stores import ForecastStore, ObservationStore
    from forecast.synthetic import generate_sample

    tmp = Path(tmp)
    cat = load_catalog(write_catalog(tmp / "catalogs", catalog_doc(size)))
    samples = tmp / "samples"
    manifest = generate_sample(cat, start=START, hours=HOURS, out=samples,
                               faults=["record_extreme", "spike", "missing", "late", "revised"], seed=11)
    home = tmp / "home"
    store = ObservationStore(home / "observations.icechunk")
    b = manifest["batches"]
    end = START + timedelta(hours=HOURS)
    ingest(cat, [samples / x for x in b["main"]], store=store, latency=timedelta(0), scheduler="sync")
    if b["late"]:
        ingest(cat, [samples / x for x in b["late"]], store=store, available_at=end + timedelta(minutes=40),
               scheduler="sync")
    if b["revised"]:
        ingest(cat, [samples / x for x in b["revised"]], store=store, available_at=end + timedelta(hours=2),
               scheduler="sync")
    db = f"sqlite:///{home / 'review.db'}"
    with ReviewQueue(db) as q:
        run_qc(cat, store=store, queue=q, scheduler="sync")
        items = q.list()
    fstore = ForecastStore(str(home / "forecasts.icechunk"))
    if forecasts:
        for k, init in enumerate(INITS):
            fstore.write(cat, "production", init, make_forecast(cat, scale=1.0 + k),
                         provenance(cat, init, store.head(),
                                    fallback={"reason": "the model missed its deadline", "method": "extrapolation"}
                                    if k == 1 else None))
    versions = {}
    if models:
        with ModelRegistry(db, home / "models") as reg:
            versions["passing"] = register_model(reg, tmp, home, b"weights-one", passing=True)
            versions["failing"] = register_model(reg, tmp, home, b"weights-two", passing=False)
    tokens = {}
    with UserStore(db) as users:
        for name, role in USERS:
            tokens[name] = users.add(name, role, by="test")[1]
    return {"tmp": tmp, "home": home, "catalog": cat, "catalogs": tmp / "catalogs", "manifest": manifest, "db": db,
            "tokens": tokens, "items": [i.id for i in items], "top_item": items[0].id if items else None,
            "models": versions}


def settings_for(world: dict, tmp: Path | None = None, **kw):
    """Settings over the world; with ``tmp``, a private copy of the database and the store (tests that write)."""
    from forecast.settings import Settings

    home = world["home"]
    if tmp is not None:
        shutil.copytree(world["home"], tmp / "home")
        home = tmp / "home"
    return Settings(home=home, catalogs=world["catalogs"], database_url=f"sqlite:///{home / 'review.db'}",
                    gate_min_inits=2, gate_key_leads_minutes=[30, 60], **kw)
