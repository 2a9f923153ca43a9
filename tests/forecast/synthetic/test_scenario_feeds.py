"""Scenario feeds (`forecast.synthetic.scenarios`): the natural fields until the change, the change where and
when the scenario says, CF files ingestible as any sample, and a manifest `forecast replay` reads."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from forecast.catalog import parse_catalog
from forecast.errors import BadInputError
from forecast.synthetic.context import Context
from forecast.synthetic.fields import natural_fields
from forecast.synthetic.scenarios import scenario, scenario_fields, write_scenario
from testkit import small_doc

START = datetime(2026, 7, 15, 12, tzinfo=timezone.utc)


def _cat():
    doc = small_doc("radar_precip", ny=32, nx=32)
    doc["monitoring"] = {"regions": [{"name": "radar_se", "cells": {"iy": [16, 32], "ix": [16, 32]}}]}
    return parse_catalog(doc, "x")


def test_a_calibration_fault_scales_its_region_only_while_it_lasts():
    cat = _cat()
    ctx = Context(cat, 3)
    sc = scenario("calibration_fault", hours=2, onset_h=0.5, end_h=1.0)
    mask = np.zeros(cat.grid.shape, bool)
    mask[16:, 16:] = True
    t0 = START.timestamp()
    for h, factor in ((0.25, 1.0), (0.75, 0.7), (1.5, 1.0)):
        nat = natural_fields(ctx, t0 + h * 3600)["precipitation_rate"]
        got = scenario_fields(ctx, sc, t0, t0 + h * 3600, mask)["precipitation_rate"]
        assert np.array_equal(got[~mask], nat[~mask])
        exp = nat[mask] * np.float32(factor)
        exp[exp < 0.1] = 0
        np.testing.assert_allclose(got[mask], exp, rtol=1e-6)


def test_a_regime_change_leaves_the_weather_alone_before_its_onset():
    cat = _cat()
    ctx = Context(cat, 3)
    sc = scenario("regime_change", hours=10, onset_h=5, ramp_h=2)
    t0 = START.timestamp()
    assert np.array_equal(scenario_fields(ctx, sc, t0, t0 + 3600)["precipitation_rate"],
                          natural_fields(ctx, t0 + 3600)["precipitation_rate"])
    with pytest.raises(BadInputError, match="unknown scenario 'drought'; scenarios: steady"):
        scenario("drought")


def test_write_scenario_makes_an_ingestible_feed_and_a_replay_manifest(tmp_path):
    from forecast.ingest import ingest
    from forecast.stores import ObservationStore
    from forecast.worker.replay import schedule

    cat = _cat()
    sc = scenario("revised_observation", hours=0.5, onset_h=0.25, delay_h=0.5)
    doc = write_scenario(cat, sc, start=START, out=tmp_path / "feed", seed=1)
    assert len(doc["files"]) == 6 and doc["revised"][0]["slot"] == "2026-07-15T12:15:00Z"
    rep = ingest(cat, sorted((tmp_path / "feed").glob("*.nc")), store=ObservationStore(tmp_path / "store"),
                 scheduler="sync", workers=1)
    assert len(rep.written) == 6 and not rep.rejected
    kinds = [d.kind for d in schedule(tmp_path / "feed", cat)]
    assert kinds.count("on_time") == 6 and kinds.count("revised") == 1
