"""Helpers of the synthetic-feed tests: the shipped catalogs, reading slot files back, and a version-robust
summary of a sample (manifest and per-file statistics) to compare against a stored one."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from forecast.catalog import Catalog, load_catalog
from forecast.synthetic.generate import generate_sample

CATALOGS = Path(__file__).resolve().parents[3] / "catalogs"
JULY = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)


@functools.cache
def shipped(name: str) -> Catalog:
    """A catalog of catalogs/, full grid."""
    return load_catalog(CATALOGS / f"{name}.yaml")


def sample(catalog: Catalog, out: Path, **kw) -> tuple[dict, Path]:
    """(manifest, folder) of ``generate_sample(catalog, out=out, **kw)``."""
    return generate_sample(catalog, out=out, **kw), out


#: The samples the tests share, each made once per test module that asks for it: (catalog, arguments).
SAMPLES = {
    "radar_all": ("radar_precip", dict(start=JULY, hours=2, faults=["all"], seed=3)),
    "radar_clean": ("radar_precip", dict(start=JULY, hours=1.5, seed=3)),
    "surface_all": ("surface_obs", dict(start=datetime(2026, 7, 14), hours=48, faults=["all"], seed=2)),
    "surface_clean": ("surface_obs", dict(start=datetime(2026, 7, 14), hours=72, seed=2)),
}


def make(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """(manifest, folder) of the sample ``SAMPLES[name]``."""
    catalog, kw = SAMPLES[name]
    return sample(shipped(catalog), tmp_path_factory.mktemp(name), **kw)


def parse(t: str) -> datetime:
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def read(path: Path, var: str) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds[var][0].filled(np.nan))


def slot_file(out: Path, manifest: dict, time: str) -> Path:
    slot = next(s for s in manifest["slots"] if s["time"] == time)
    return out / slot["files"][0]


def first_ok(manifest: dict) -> str:
    """The first slot file that is neither late, corrupt nor missing."""
    return next(s["files"][0] for s in manifest["slots"] if s["status"] == "ok")


def fields(out: Path, manifest: dict, var: str) -> tuple[list[str], np.ndarray]:
    """Every readable on-time or late field of a variable, in time order (the preliminary one if revised)."""
    times, arrs = [], []
    for s in manifest["slots"]:
        if s["status"] in ("missing", "corrupt"):
            continue
        times.append(s["time"])
        arrs.append(read(out / s["files"][0], var))
    return times, np.array(arrs)


def by_kind(manifest: dict, kind: str) -> list[dict]:
    return [f for f in manifest["faults"] if f["kind"] == kind]


def summary(manifest: dict, out: Path) -> dict:
    """What a sample says, without what depends on the software's version or the HDF5 library's layout: the
    manifest less ``generator``, ``catalog_hash`` and the corrupt file's byte count, and per readable file
    and variable [sum, max, non-zero cells, NaN cells] of its field."""
    doc = {k: v for k, v in manifest.items() if k not in ("generator", "catalog_hash", "faults")}
    doc["faults"] = []
    for f in manifest["faults"]:
        f = dict(f)
        if f["kind"] == "corrupt":
            f["values"] = {k: v for k, v in f["values"].items() if k != "kept_bytes"}
        if f["kind"] == "record_extreme":  # hundreds of cells: their count and centroid
            f["cells"] = _cells(f["cells"])
            f["cells_by_time"] = {t: _cells(c) for t, c in f["cells_by_time"].items()}
        doc["faults"].append(f)
    corrupt = {f["file"] for f in by_kind(manifest, "corrupt")}
    stats = {}
    for rel in manifest["files"]:
        if rel in corrupt:
            continue
        for var in manifest["variables"]:
            a = read(out / rel, var).astype(np.float64)
            stats[f"{rel}:{var}"] = [float(np.nansum(a)), float(np.nanmax(a)), int(np.count_nonzero(a)),
                                     int(np.isnan(a).sum())]
    return {"manifest": doc, "fields": stats}


def _cells(cells: list[list[int]]) -> list[float]:
    a = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
    return [len(a), *(a.mean(axis=0).tolist() if len(a) else [0.0, 0.0])]


def differences(got, want, path: str = "", rel: float = 1e-5) -> list[str]:
    """Where two JSON-like documents differ: floats within ``rel`` (relative) agree, everything else exactly."""
    if isinstance(want, dict) and isinstance(got, dict):
        keys = sorted(set(got) | set(want))
        return [d for k in keys for d in differences(got.get(k), want.get(k), f"{path}.{k}", rel)]
    if isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{path}[{i}]", rel)]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return [] if math.isclose(got, want, rel_tol=rel, abs_tol=rel) else [f"{path}: {got!r} != {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]
