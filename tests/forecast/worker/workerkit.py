"""Helpers of the worker tests: a small radar dataset with a recorded feed (a sample with the faults an
operational feed has), settings under a temporary home, and a way to drop files into an inbox."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from forecast.catalog import parse_catalog
from forecast.settings import Settings
from testkit import small_doc, write_catalog

START = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
P = "precipitation_rate"


def make_world(tmp: Path, *, hours: float = 2.0, faults=("missing", "late", "duplicate", "revised", "corrupt"),
               feed: dict | None = None, database_url: str | None = None, seed: int = 5):
    """(settings, catalog, sample folder, manifest) of a 32 x 48 radar dataset."""
    from forecast.synthetic import generate_sample

    doc = small_doc("radar_precip", ny=32, nx=48)
    doc["feed"] = {"expected_latency": "2min", "wait_for_late": "3min", "deadline": "60s", "expire_after": "5min",
                   "settle": "0s", **(feed or {})}
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs", database_url=database_url, workers=1)
    sample = tmp / "sample"
    manifest = generate_sample(cat, start=START, hours=hours, out=sample, faults=list(faults), seed=seed)
    return st, cat, sample, manifest


def drop(src: Path, inbox: Path, name: str | None = None) -> Path:
    """Put a file into an inbox as a careful feed does (a hidden temporary name, then a rename)."""
    inbox.mkdir(parents=True, exist_ok=True)
    dest = inbox / (name or src.name)
    tmp = inbox / f".{dest.name}.part"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def slot_file(sample: Path, manifest: dict, t: datetime) -> Path:
    name = f"{manifest['dataset']}_{t:%Y%m%dT%H%M%S}Z.nc"
    return sample / name
