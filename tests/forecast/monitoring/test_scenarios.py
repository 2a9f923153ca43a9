"""The scenarios of `forecast.synthetic.scenarios` through the monitor's drift and detector code (fast
versions; `bench/monitor.py` runs them at full length through the worker's monitoring pass): a radar's
calibration fault is found on the short window, named and resolved after it ends; a slow regime change
is found on the long window and not on the short one; a degraded model is found by the change detector
within a few verified inits; steady weather raises nothing."""

from __future__ import annotations

from datetime import datetime, UTC

import pytest
from monitorkit import database, drift_alerts, scenario_catalog, scenario_features

from forecast.catalog.monitoring import DEFAULT_RULES, AlertRule, DetectorConfig
from forecast.synthetic.scenarios import scenario

START = datetime(2026, 7, 15, 0, tzinfo=UTC)
STEP_H = 1 / 12
DRIFT_RULES = [AlertRule(**r) for r in DEFAULT_RULES if r["kind"] == "input_drift"]


@pytest.fixture
def mdb(tmp_path):
    with database("sqlite", tmp_path) as d:
        db = d.monitor()
        yield db
        db.close()


def _hours(i: int) -> float:
    return i * STEP_H


def test_a_calibration_fault_fires_the_short_drift_names_the_region_and_resolves(mdb):
    cat = scenario_catalog(128)
    sc = scenario("calibration_fault", hours=112, onset_h=80, end_h=90)
    rows = scenario_features(cat, sc, START.timestamp())
    events = drift_alerts(mdb, cat, rows, 72 * 12, DRIFT_RULES, start=START)
    fired = [(i, a) for i, e, a in events if e == "fired"]
    assert fired, "the calibration fault was not found"
    i, a = fired[0]
    assert a.rule == "input_drift_short" and sc.onset_h < _hours(i) <= sc.onset_h + 3  # within 3 h (36 cycles)
    assert "edge_contrast@radar_se" in a.details["features"]  # the radar at fault is named
    assert not [x for x in fired if x[1].rule == "input_drift_long"]
    resolved = [i for i, e, a in events if e == "resolved" and a.rule == "input_drift_short"]
    assert resolved and sc.end_h < _hours(resolved[-1]) <= sc.end_h + 20  # once rain shows the edge healed


@pytest.mark.slow
def test_a_slow_regime_change_fires_the_long_drift_and_not_the_short_one(mdb):
    cat = scenario_catalog(128)
    sc = scenario("regime_change", hours=120, onset_h=72, ramp_h=24, speedup=2.0, intensify=2.0)
    rows = scenario_features(cat, sc, START.timestamp())
    events = drift_alerts(mdb, cat, rows, 72 * 12, DRIFT_RULES, start=START, every=3)
    rules = {a.rule for i, e, a in events if e == "fired"}
    assert rules == {"input_drift_long"}
    i, a = next((i, a) for i, e, a in events if e == "fired")
    assert _hours(i) > sc.onset_h and set(a.details["features"]) & {"motion_speed", "intensity_p99", "intensity_p90"}


@pytest.mark.slow
def test_steady_weather_raises_no_drift_alert(mdb):
    cat = scenario_catalog(128)
    rows = scenario_features(cat, scenario("steady", hours=120), START.timestamp())
    assert drift_alerts(mdb, cat, rows, 72 * 12, DRIFT_RULES, start=START, every=3) == []


def _skill_series(n_inits: int, onset: int | None, *, n: int = 64, seed: int = 0) -> list[float]:
    """Per-init skill against persistence (the detector's input) of a forecast degraded from ``onset`` on."""
    from forecast.monitoring.offline import skill_series

    return skill_series(scenario_catalog(n), n_inits, start_s=START.timestamp() + 6 * 3600, degrade_from=onset,
                        seed=seed)


def test_a_degraded_model_is_found_by_the_change_detector_within_a_few_inits():
    from forecast.monitoring.detector import new_state, update

    cfg = DetectorConfig(warmup=36)
    series = _skill_series(70, onset=50)
    st, first = new_state(), None
    for j, x in enumerate(series):
        st = update(st, x, cfg)
        if st["alarm"] and first is None:
            first = j
    # a degraded forecast of a dry grid is as good as any: the first with rain to get wrong
    wet = next(j for j in range(50, 70) if abs(series[j]) > 0.1)
    assert first is not None and wet <= first <= wet + 5, (first, wet)  # within 5 verified inits


def test_steady_skill_raises_no_change_alarm():
    from forecast.monitoring.detector import new_state, update

    cfg = DetectorConfig(warmup=36)
    st = new_state()
    for x in _skill_series(110, onset=None):
        st = update(st, x, cfg)
        assert not st["alarm"]
