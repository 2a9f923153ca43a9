"""Cross-check against ioos_qc's QARTOD tests on a real hourly air temperature series.

The series is the TMY3 file pvlib ships (Alaska, 8760 hourly values, 0.1 degC resolution),
copied and seeded with spikes, a flat run, an impossible value and a short gap. Under equivalent
parameters our flags equal ioos_qc's; where they deliberately differ, the test pins down exactly
where and says why. Thresholds are chosen off the 0.1 grid of the data (3.05, not 3.0) so that
the unit conversion ioos_qc needs (per second) cannot flip a comparison at equality.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

import qc

ioos_qartod = pytest.importorskip("ioos_qc.qartod")
pvlib = pytest.importorskip("pvlib")

G, N, S, F, M = 1, 2, 3, 4, 9
HOUR = 3600.0
SPIKES = {1000: +15.0, 3000: -12.0, 5000: +9.0}
FLAT = slice(6000, 6030)
IMPOSSIBLE = 7000
GAP = slice(8000, 8002)


@pytest.fixture(scope="module")
def series():
    path = os.path.join(os.path.dirname(pvlib.__file__), "data", "703165TY.csv")
    data, _ = pvlib.iotools.read_tmy3(path, map_variables=True)
    v = data["temp_air"].to_numpy(dtype="float64").copy()
    for i, dv in SPIKES.items():
        v[i] += dv
    v[FLAT] = v[FLAT.start]
    v[IMPOSSIBLE] = 80.0
    v[GAP] = np.nan
    # TMY months come from different years; ioos_qc's time-based tests need a regular clock
    t = pd.date_range("2001-01-01", periods=v.size, freq="h")
    return v, t


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _raised(flags):
    return set(np.flatnonzero((np.asarray(flags) == S) | (np.asarray(flags) == F)))


def test_physical_range_equals_gross_range(series):
    v, _ = series
    ours = qc.physical_range(v, low=-80.0, high=60.0)
    theirs = ioos_qartod.gross_range_test(v, fail_span=(-80.0, 60.0))
    np.testing.assert_array_equal(ours, np.ma.filled(theirs))
    assert ours[IMPOSSIBLE] == F and (ours[GAP] == M).all()


def test_climatology_equals_gross_range_suspect_span(series):
    v, t = series
    ours = qc.climatology(v, months=t.month.to_numpy(), record_min=[-9.05] * 12, record_max=[15.05] * 12)
    theirs = np.ma.filled(ioos_qartod.gross_range_test(v, fail_span=(-100, 100), suspect_span=(-9.05, 15.05)))
    np.testing.assert_array_equal(ours, theirs)


def test_spike_equals_differential_spike_test(series):
    v, _ = series
    ours = qc.spike(v, suspect=3.05, fail=8.05, max_gap=0)
    theirs = np.ma.filled(ioos_qartod.spike_test(v, suspect_threshold=3.05, fail_threshold=8.05, method="differential"))
    # identical everywhere, including gaps (max_gap=0: a NaN neighbour -> not evaluated) and ends
    np.testing.assert_array_equal(ours, theirs)
    assert _raised(ours) >= set(SPIKES) | {IMPOSSIBLE}


def test_spike_differs_from_average_method_at_the_good_neighbours(series):
    v, _ = series
    ours = qc.spike(v, suspect=3.05, fail=8.05, max_gap=0)
    avg = np.ma.filled(ioos_qartod.spike_test(v, suspect_threshold=3.05, fail_threshold=8.05, method="average"))
    # ioos_qc's default compares each value with the mean of its neighbours, so the good values
    # beside a big spike (half the spike away from that mean) are flagged too. We flag only the
    # value that stands out from both sides: the neighbours stay GOOD.
    neighbours = {i + d for i in [*SPIKES, IMPOSSIBLE] for d in (-1, 1)}
    for i in neighbours:
        assert avg[i] in (S, F), i
        assert ours[i] == G, i
    # and everything we flag, the average method flags as well
    assert _raised(ours) <= _raised(avg)


def test_spike_gap_handling_differs_with_max_gap(series):
    v, _ = series
    ours = qc.spike(v, suspect=3.05, fail=8.05, max_gap=2)
    theirs = np.ma.filled(ioos_qartod.spike_test(v, suspect_threshold=3.05, fail_threshold=8.05, method="differential"))
    # ioos_qc cannot judge a value next to a gap; we look past up to max_gap missing slots
    diff = set(np.flatnonzero(ours != theirs))
    assert diff == {GAP.start - 1, GAP.stop}
    assert theirs[GAP.start - 1] == N and ours[GAP.start - 1] == G


def _returns(v, s):
    """Slots whose own step is a jump, but back from a one-slot excursion (our exemption), found
    the slow way."""
    out = set()
    for i in range(2, v.size):
        a, b, c = v[i - 2], v[i - 1], v[i]
        if np.isnan([a, b, c]).any():
            continue
        if abs(c - b) > s and abs(b - a) > s and abs(c - a) <= 2 * s:
            out.add(i)
    return out


def test_rate_of_change_equals_ioos_except_returns_and_unjudged_slots(series):
    v, t = series
    s, f = 3.05, 8.05
    ours = qc.rate_of_change(v, suspect_per_step=s, fail_per_step=f, max_gap=0)
    theirs = np.ma.filled(ioos_qartod.rate_of_change_test(v, t, threshold=s / HOUR, fail_threshold=f / HOUR))
    returns = _returns(v, s)
    # ioos_qc flags the step back after an excursion as well, so the good value after a spike
    # is raised; we flag only the value that jumped
    assert {i + 1 for i in SPIKES} | {IMPOSSIBLE + 1} <= returns
    for i in returns:
        assert theirs[i] in (S, F) and ours[i] == G, i
    # ioos_qc calls the first slot and the slot after a gap GOOD; we cannot judge them
    unjudged = {0, GAP.stop}
    for i in unjudged:
        assert theirs[i] == G and ours[i] == N, i
    same = np.ones(v.size, bool)
    same[list(returns | unjudged)] = False
    np.testing.assert_array_equal(ours[same], theirs[same])
    assert _raised(ours) >= set(SPIKES) | {IMPOSSIBLE}


def test_flat_line_equals_ioos_except_across_gaps(series):
    v, t = series
    ours = qc.flat_line(v, tolerance=0.05, suspect_count=3, fail_count=6)
    theirs = np.ma.filled(
        ioos_qartod.flat_line_test(v, t, suspect_threshold=3 * HOUR, fail_threshold=6 * HOUR, tolerance=0.05)
    )
    # ioos_qc ignores NaN inside its window, so a value right after a gap can be "flat" with the
    # values before the gap; a NaN breaks our run (a stuck sensor must be seen stuck)
    diff = set(np.flatnonzero(ours != theirs))
    assert diff and all(GAP.stop <= i < GAP.stop + 6 for i in diff), sorted(diff)
    assert all(ours[i] == G for i in diff)
    # the injected stuck run: FAIL from its 6th repeat on, in both
    assert (ours[FLAT.start + 6 : FLAT.stop] == F).all() and (theirs[FLAT.start + 6 : FLAT.stop] == F).all()
    assert (ours[FLAT.start : FLAT.start + 3] <= G).all()
