"""Shared fixtures: small catalogs in a temp folder, a fresh store, settings pointing at both."""

from __future__ import annotations

import copy
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # tests/ncfiles.py

from forecast.catalog.models import Catalog, parse_catalog  # noqa: E402
from forecast.stores import ObservationStore  # noqa: E402

T0 = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)


def catalog_doc(name: str) -> dict:
    return yaml.safe_load((ROOT / "catalogs" / f"{name}.yaml").read_text())


def small_doc(name: str = "radar_precip", *, ny: int = 24, nx: int = 32, dataset_id: str | None = None) -> dict:
    """A shipped catalog shrunk to a small grid (same area origin, same axis and variables)."""
    doc = copy.deepcopy(catalog_doc(name))
    doc["grid"]["x"]["size"] = nx
    doc["grid"]["y"]["size"] = ny
    doc["time"]["block"] = 48
    if dataset_id:
        doc["id"] = dataset_id
    return doc


def write_catalog(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{doc['id']}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


@pytest.fixture
def radar(tmp_path) -> Catalog:
    doc = small_doc("radar_precip")
    path = write_catalog(tmp_path / "catalogs", doc)
    return parse_catalog(doc, str(path)).model_copy(update={"path": path})


@pytest.fixture
def surface(tmp_path) -> Catalog:
    doc = small_doc("surface_obs", ny=16, nx=20)
    path = write_catalog(tmp_path / "catalogs", doc)
    return parse_catalog(doc, str(path)).model_copy(update={"path": path})


@pytest.fixture
def store(tmp_path) -> ObservationStore:
    return ObservationStore(tmp_path / "home" / "observations.icechunk", lock_timeout=60)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Environment for CLI runs: FORECAST_HOME and FORECAST_CATALOGS in tmp."""
    e = {"FORECAST_HOME": str(tmp_path / "home"), "FORECAST_CATALOGS": str(tmp_path / "catalogs"),
         "FORECAST_WORKERS": "1"}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    return e
