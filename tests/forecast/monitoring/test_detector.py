"""The change detector: quiet on in-control noise, an alarm within a few inits of a drop of skill, a bounded
recovery once skill is back; Page-Hinkley alike."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.catalog.monitoring import DetectorConfig
from forecast.monitoring.detector import new_state, per_init_skill, update


def _run(xs, cfg):
    st, alarms = new_state(), []
    for i, x in enumerate(xs):
        st = update(st, x, cfg, init=str(i))
        alarms.append(st["alarm"])
    return st, np.array(alarms)


@pytest.mark.parametrize("method", ["cusum", "page_hinkley"])
def test_quiet_on_noise_and_fast_on_a_drop(method):
    cfg = DetectorConfig(method=method)
    rng = np.random.default_rng(1)
    steady = rng.normal(0.3, 0.1, 3000)  # ~10 days of 5-minute inits
    st, alarms = _run(steady, cfg)
    assert not alarms.any(), f"false alarms at {np.flatnonzero(alarms)[:5]}"
    drop = np.concatenate([steady[:500], rng.normal(-0.2, 0.1, 50)])  # 5 sd below
    _, alarms = _run(drop, cfg)
    first = int(np.argmax(alarms[500:]))
    assert alarms[500:].any() and first <= 5, first
    assert not alarms[:500].any()


def test_one_outlier_cannot_raise_an_alarm_and_recovery_is_bounded():
    cfg = DetectorConfig()
    rng = np.random.default_rng(2)
    xs = list(rng.normal(0.3, 0.1, 200)) + [-50.0] + list(rng.normal(0.3, 0.1, 50))
    _, alarms = _run(xs, cfg)
    assert not alarms.any()
    xs = list(rng.normal(0.3, 0.1, 200)) + list(rng.normal(-1.0, 0.1, 100)) + list(rng.normal(0.3, 0.1, 60))
    _, alarms = _run(xs, cfg)
    assert alarms[200:300].any() and not alarms[-20:].any()  # cleared within 2 h / (k + clip) inits


def test_warmup_builds_the_baseline_and_missing_skill_is_skipped():
    cfg = DetectorConfig(warmup=10)
    st = new_state()
    for x in [0.1, None, 0.2, float("nan")] * 5:
        st = update(st, x, cfg)
    assert st["n"] == 10 and st["last_z"] is None  # ten skills seen, none judged yet
    st = update(st, 0.15, cfg)
    assert st["last_z"] is not None and not st["alarm"]


def test_per_init_skill_is_symmetric_and_zero_when_equal():
    n = np.array([100, 100])
    assert per_init_skill(np.array([4.0, 4.0]), n, np.array([4.0, 4.0]), n, 2, 0.01) == 0
    a = per_init_skill(np.array([1.0, 1.0]), n, np.array([4.0, 4.0]), n, 2, 0.0)
    b = per_init_skill(np.array([4.0, 4.0]), n, np.array([1.0, 1.0]), n, 2, 0.0)
    assert a == pytest.approx(np.log(4)) and b == pytest.approx(-a)
    assert per_init_skill(np.zeros(2), np.zeros(2, int), np.zeros(2), n, 2, 0.01) is None
