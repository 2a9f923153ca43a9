"""Input drift: the features of a slot, the statistics (PSI, normalised Wasserstein) and thresholds taken
from the reference's own chunks; a shifted feature drifts and is named, the others do not."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.catalog import parse_catalog
from forecast.catalog.monitoring import DriftConfig
from forecast.monitoring.drift import (
    HIST_EDGES,
    drift_report,
    motion_speed,
    reference_statistics,
    slot_features,
    statistic,
    thresholds,
)
from forecast.monitoring.strata import region_masks
from testkit import small_doc


def _catalog(n=64):
    doc = small_doc("radar_precip", ny=n, nx=n)
    h = n // 2
    doc["monitoring"] = {"regions": [{"name": "west", "cells": {"iy": [0, n], "ix": [0, h]}},
                                     {"name": "far", "cells": {"iy": [1000, 1010], "ix": [0, 10]}}]}
    return parse_catalog(doc, "test")


def _field(rng, n=64, centre=None):
    """A smooth wet field (a blob of rain), so neighbours are alike."""
    y, x = np.mgrid[0:n, 0:n]
    cy, cx = centre if centre is not None else rng.uniform(10, n - 10, 2)
    f = 8.0 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(8, 16) ** 2))
    f[f < 0.1] = 0
    return f.astype(np.float32)


def test_psi_and_wasserstein_read_as_documented():
    h = np.array([[10, 20, 30, 40]], float)
    assert statistic("psi", h, h, histogram=True, name="intensity") == pytest.approx(0.0)
    assert statistic("psi", h[:, ::-1], h, histogram=True, name="intensity") > 0.25
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    assert statistic("wasserstein", ref + 1.0, ref) == pytest.approx(1.0, abs=0.05)  # one reference sd
    assert statistic("wasserstein", np.array([np.nan]), ref) is None


def test_slot_features_and_the_edge_contrast_of_a_miscalibrated_region():
    cat = _catalog()
    regions = region_masks(cat, cat.monitoring.regions)
    assert [r.name for r in regions] == ["west"]  # a region outside the grid is left out
    rng = np.random.default_rng(1)
    f = _field(rng, centre=(32, 30))  # a rain area across the boundary at column 32
    ok = np.ones(f.shape, bool)
    feats = slot_features(f, ok, np.zeros_like(ok), precipitation=True, regions=regions)
    assert feats["missing_share"] == 0 and 0 < feats["wet_fraction"] < 1
    assert sum(feats["intensity"]) == int((f >= 0.1).sum()) and len(feats["intensity"]) == len(HIST_EDGES) - 1
    # west reading 30 % low shifts every jump across the west/east boundary by ln 0.7 = -0.36
    low = f.copy()
    low[regions[0].mask] *= 0.7
    edge = slot_features(low, ok, np.zeros_like(ok), precipitation=True, regions=regions)["edge_contrast@west"]
    nat = feats["edge_contrast@west"]
    assert nat is not None and edge is not None
    assert edge - nat == pytest.approx(np.log(0.7), abs=0.02)


def test_motion_speed_finds_a_known_displacement():
    rng = np.random.default_rng(4)
    a = np.zeros((96, 96), np.float32)
    for _ in range(12):
        a += _field(rng, 96)
    b = np.roll(a, (3, 4), axis=(0, 1))
    assert motion_speed(a, b, km_per_px=1.0, step_h=1 / 12) == pytest.approx(5 * 12, rel=0.05)
    assert motion_speed(np.zeros_like(a), b, km_per_px=1.0, step_h=1 / 12) is None


def test_thresholds_from_reference_chunks_and_a_named_drift():
    rng = np.random.default_rng(5)
    rows = [{"missing_share": 0.01 + rng.normal(0, 0.002), "wet_fraction": rng.uniform(0.1, 0.3)}
            for _ in range(600)]
    ref = reference_statistics(rows, [str(i) for i in range(600)], period=["a", "b"], source="test")
    cfg = DriftConfig()
    thr = thresholds(ref["slots"], ["missing_share", "wet_fraction"], 72, cfg)
    assert thr["missing_share"]["chunks"] > 10 and thr["missing_share"]["threshold"] >= cfg.wasserstein_floor
    window = [{"missing_share": 0.05 + rng.normal(0, 0.002), "wet_fraction": rng.uniform(0.1, 0.3)}
              for _ in range(72)]
    rep = drift_report(window, ref, 72, cfg, cached_thresholds=thr)
    assert rep["drifted"] == ["missing_share"]
    same = [{"missing_share": 0.01 + rng.normal(0, 0.002), "wet_fraction": rng.uniform(0.1, 0.3)}
            for _ in range(72)]
    assert drift_report(same, ref, 72, cfg, cached_thresholds=thr)["drifted"] == []
    few = drift_report(window[:3], ref, 72, cfg, cached_thresholds=thr)
    assert few["drifted"] == [] and "too few" in few["features"][0]["note"]
