"""The flag scheme: codes, bits, aggregation by precedence, CF attributes, reviews, usability."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from qc import QCError, QCFlag, TestBit, aggregate, apply_review, cf_attrs, usable_mask
from qc.flags import PRECEDENCE, TEST_BITS, TEST_NAMES, test_names

G, N, S, F, M = 1, 2, 3, 4, 9


def test_flag_codes_are_qartod():
    assert [int(f) for f in QCFlag] == [1, 2, 3, 4, 9]
    assert [f.name for f in QCFlag] == ["GOOD", "NOT_EVALUATED", "SUSPECT", "FAIL", "MISSING"]


def test_test_bits_are_fixed():
    # these values are written into stores: changing one is a data migration
    assert TEST_BITS == {
        "missing": 1,
        "physical_range": 2,
        "climatology": 4,
        "spike": 8,
        "rate_of_change": 16,
        "flat_line": 32,
        "spatial": 64,
        "cross_variable": 128,
    }
    assert int(TestBit.REVIEWED_ACCEPTED) == 1 << 16
    assert int(TestBit.REVIEWED_REJECTED) == 1 << 17
    bits = [int(b) for b in TestBit]
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)


def _expected(codes):
    order = {int(f): i for i, f in enumerate(reversed(PRECEDENCE))}  # NOT_EVALUATED lowest
    return max(codes, key=lambda c: order[c])


def test_aggregate_precedence_all_pairs_and_triples():
    codes = [G, N, S, F, M]
    combos = list(itertools.product(codes, repeat=3))
    a, b, c = (np.array([cmb[i] for cmb in combos], dtype=np.uint8) for i in range(3))
    qc, tests = aggregate({"physical_range": a, "spike": b, "spatial": c})
    assert qc.dtype == np.uint8 and tests.dtype == np.uint32
    for k, cmb in enumerate(combos):
        assert qc[k] == _expected(cmb), cmb
        want = 0
        for name, code in zip(("physical_range", "spike", "spatial"), cmb):
            if code in (S, F):
                want |= TEST_BITS[name]
        assert tests[k] == want, cmb


def test_aggregate_known_values_and_missing_bit():
    flags = {
        "missing": np.array([G, G, G, M, G], np.uint8),
        "physical_range": np.array([G, F, G, M, G], np.uint8),
        "spike": np.array([N, S, S, M, N], np.uint8),
    }
    qc, tests = aggregate(flags)
    np.testing.assert_array_equal(qc, [G, F, S, M, G])
    np.testing.assert_array_equal(tests, [0, 2 | 8, 8, 1, 0])


def test_aggregate_only_not_evaluated_stays_not_evaluated():
    qc, tests = aggregate({"spike": np.array([N, N], np.uint8), "flat_line": np.array([N, G], np.uint8)})
    np.testing.assert_array_equal(qc, [N, G])
    np.testing.assert_array_equal(tests, [0, 0])


def test_aggregate_dask_stays_lazy_and_equals_numpy():
    rng = np.random.default_rng(0)
    a = rng.choice([G, N, S, F, M], size=(6, 7)).astype(np.uint8)
    b = rng.choice([G, N, S, F, M], size=(6, 7)).astype(np.uint8)
    qc, tests = aggregate({"spike": da.from_array(a, chunks=3), "spatial": da.from_array(b, chunks=(2, 4))})
    assert dask.is_dask_collection(qc) and dask.is_dask_collection(tests)
    q0, t0 = aggregate({"spike": a, "spatial": b})
    np.testing.assert_array_equal(qc.compute(), q0)
    np.testing.assert_array_equal(tests.compute(), t0)
    assert tests.dtype == np.uint32 and qc.dtype == np.uint8


def test_aggregate_xarray():
    a = xr.DataArray(np.array([[G, F]], np.uint8), dims=("y", "x")).chunk()
    b = xr.DataArray(np.array([[S, N]], np.uint8), dims=("y", "x")).chunk()
    qc, tests = aggregate({"spike": a, "spatial": b})
    assert isinstance(qc, xr.DataArray) and dask.is_dask_collection(qc)
    np.testing.assert_array_equal(qc.values, [[S, F]])
    np.testing.assert_array_equal(tests.values, [[64, 8]])


@pytest.mark.parametrize(
    "flags, match",
    [
        ({}, "empty mapping"),
        ({"spikes": np.array([1], np.uint8)}, r"unknown test name.*'spikes'.*valid names.*'spike'"),
        ({"spike": np.ones(2, np.uint8), "spatial": np.ones(3, np.uint8)}, "same shape"),
    ],
)
def test_aggregate_rejects_bad_calls(flags, match):
    with pytest.raises(QCError, match=match):
        aggregate(flags)


def test_cf_attrs():
    a = cf_attrs("air_temperature", standard_name="air_temperature", long_name="Air temperature at 2 m")
    q, t = a["qc"], a["tests"]
    assert q["standard_name"] == "air_temperature status_flag"
    np.testing.assert_array_equal(q["flag_values"], [1, 2, 3, 4, 9])
    assert q["flag_values"].dtype == np.uint8
    assert q["flag_meanings"] == "GOOD NOT_EVALUATED SUSPECT FAIL MISSING"
    assert len(q["flag_meanings"].split()) == len(q["flag_values"])
    assert "Air temperature at 2 m" in q["long_name"]
    assert t["flag_masks"].dtype == np.uint32
    assert t["flag_meanings"].split() == [*TEST_NAMES, "reviewed_accepted", "reviewed_rejected"]
    np.testing.assert_array_equal(t["flag_masks"], [1, 2, 4, 8, 16, 32, 64, 128, 1 << 16, 1 << 17])
    assert a["ancillary_variables"] == "air_temperature_qc air_temperature_qc_tests"
    assert "standard_name" not in cf_attrs("x")["qc"]


def test_apply_review_and_usable_mask():
    qc = np.array([G, S, S, F, S, M, N], np.uint8)
    tests = np.array([0, 8, 8, 2, 64, 1, 0], np.uint32)
    acc = np.array([0, 1, 0, 1, 0, 1, 0], bool)
    rej = np.array([0, 0, 1, 0, 0, 1, 0], bool)
    qc2, tests2 = apply_review(qc, tests, acc, rej)
    np.testing.assert_array_equal(qc2, [G, G, F, G, S, M, N])
    A, R = int(TestBit.REVIEWED_ACCEPTED), int(TestBit.REVIEWED_REJECTED)
    np.testing.assert_array_equal(tests2, [0, 8 | A, 8 | R, 2 | A, 64, 1, 0])
    # inputs untouched
    np.testing.assert_array_equal(qc, [G, S, S, F, S, M, N])
    np.testing.assert_array_equal(usable_mask(qc2, tests2), [1, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(usable_mask(qc2, tests2, include_unreviewed_suspect=False), [1, 1, 0, 1, 0, 0, 1])
    # rejection later overrides acceptance
    qc3, tests3 = apply_review(qc2, tests2, np.zeros(7, bool), np.array([0, 1, 0, 0, 0, 0, 0], bool))
    assert qc3[1] == F and tests3[1] == 8 | R
    assert not usable_mask(qc3, tests3)[1]


def test_usable_never_fail_or_rejected_even_if_accepted_bit():
    A, R = int(TestBit.REVIEWED_ACCEPTED), int(TestBit.REVIEWED_REJECTED)
    qc = np.array([F, G, S], np.uint8)
    tests = np.array([A, R, A | R], np.uint32)
    np.testing.assert_array_equal(usable_mask(qc, tests), [0, 0, 0])


def test_review_is_lazy_on_dask():
    qc = da.from_array(np.array([S, S], np.uint8), chunks=1)
    tests = da.from_array(np.array([8, 8], np.uint32), chunks=1)
    q2, t2 = apply_review(qc, tests, np.array([True, False]), np.array([False, True]))
    assert dask.is_dask_collection(q2) and dask.is_dask_collection(t2)
    np.testing.assert_array_equal(q2.compute(), [G, F])
    assert dask.is_dask_collection(usable_mask(q2, t2))


def test_test_names_in_bit_order_review_bits_included():
    assert test_names(0) == ()
    assert test_names(TestBit.SPIKE | TestBit.CLIMATOLOGY) == ("climatology", "spike")
    bits = np.uint32(TestBit.MISSING | TestBit.CROSS_VARIABLE | TestBit.REVIEWED_REJECTED | 1 << 12)  # bit 12: no test
    assert test_names(bits) == ("missing", "cross_variable", "reviewed_rejected")
    every = test_names(2**32 - 1)
    assert every == (*TEST_NAMES, "reviewed_accepted", "reviewed_rejected")
    assert cf_attrs("v")["tests"]["flag_meanings"].split() == list(every)
