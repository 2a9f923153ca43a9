"""A window's exact sums rebuilt into a Verifier equal the Verifier fed init by init: every score, skill and
bootstrap interval (the monitor's scores are the hindcast's)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecast.errors import BadInputError
from forecast.evaluation import Verifier
from forecast.evaluation.accumulate import to_fixed as _to_fixed
from forecast.monitoring.records import FIXED_BITS, InitRecord, fixed_sum, records_from_state, window_verifier

L, NY, NX = 4, 18, 22
LEADS = np.arange(1, L + 1) * 300


def _inits(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        init = np.datetime64("2026-07-15T12:00") + np.timedelta64(5 * i, "m")
        obs = rng.gamma(0.4, 5, (L, NY, NX))
        obs[obs < 0.3] = 0
        valid = rng.random((L, NY, NX)) > 0.1
        yield init, obs, valid, {m: obs + rng.normal(0, s, obs.shape) for m, s in
                                 (("model", 1.5), ("persistence", 3.0), ("extrapolation", 2.0))}


def test_window_of_records_equals_the_verifier_fed_init_by_init():
    full = Verifier(LEADS, [1, 10], [1, 3, 9])
    records: dict[str, list] = {}
    for init, obs, valid, fields in _inits(9):
        one = Verifier(LEADS, [1, 10], [1, 3, 9])
        for m, f in fields.items():
            full.add(init, m, f, obs, valid)
            one.add(init, m, f, obs, valid)
        for m, rec in records_from_state(one.to_state()).items():
            back = InitRecord.unpack(rec.pack())
            for k in ("n", "cells", "sums", "ctab", "fss_num", "fss_den"):
                assert np.array_equal(getattr(back, k), getattr(rec, k))
            records.setdefault(m, []).append((int(init.astype("datetime64[s]").astype(int)), back))
    conf = {k: v for k, v in full.to_state().items() if k in ("lead_time_s", "thresholds", "fss_thresholds",
                                                              "fss_windows")}
    win = window_verifier(conf, (NY, NX), records)
    assert win.to_state() == full.to_state()  # exact, not approximately
    a = full.summary(reference="persistence", compare=("model",), n_boot=200, seed=0)
    b = win.summary(reference="persistence", compare=("model",), n_boot=200, seed=0)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_fixed_sum_is_the_verifiers_exact_integer_sum():
    rng = np.random.default_rng(3)
    vals = rng.normal(0, 1e3, 2000) * 10.0 ** rng.integers(-40, 40, 2000)
    vals[:5] = [0.0, -0.0, 5e-324, -5e-324, 1e308]
    assert fixed_sum(vals) == sum(_to_fixed(float(v)) for v in vals)
    assert FIXED_BITS == 1074 and _to_fixed(1.0) == 1 << FIXED_BITS
    with pytest.raises(BadInputError, match="not finite"):
        fixed_sum(np.array([1.0, np.inf]))


def test_a_record_is_one_init_and_its_format_is_checked():
    v = Verifier(LEADS, [1], [1])
    for init, obs, valid, fields in _inits(2):
        v.add(init, "model", fields["model"], obs, valid)
    with pytest.raises(BadInputError, match="a record is one init"):
        records_from_state(v.to_state())
    with pytest.raises(BadInputError, match="format"):
        InitRecord.unpack(b"nonsense")


def test_region_sums_equal_a_verifier_on_the_region():
    from forecast.catalog import parse_catalog
    from forecast.monitoring.strata import region_masks
    from forecast.monitoring.verification import region_sums
    from testkit import small_doc

    doc = small_doc("radar_precip", ny=NY, nx=NX)
    doc["monitoring"] = {"regions": [{"name": "box", "cells": {"iy": [2, 11], "ix": [5, 17]}}]}
    cat = parse_catalog(doc, "x")
    (region,) = region_masks(cat, cat.monitoring.regions)
    init, obs, valid, fields = next(_inits(1, seed=4))
    got = region_sums(fields["model"], obs, valid, [region], [1.0, 10.0])["box"]
    v = Verifier(LEADS, [1, 10], [1])
    v.add(init, "m", region.crop(fields["model"]), region.crop(obs), region.crop(valid) & region.cropped_mask)
    rec = records_from_state(v.to_state())["m"]
    assert got["n"] == rec.n.tolist() and got["sse"] == rec.sse.tolist() and got["hmf"] == rec.hmf.tolist()
