"""spike, rate_of_change, flat_line (qc.checks.temporal): known values, gaps, chunk boundaries, and
slow, obviously-right loops on random series."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import qc
from qc import QCError
from qc.checks import temporal

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


def arr(*v, dtype="float64"):
    return np.array(v, dtype=dtype)


# ------------------------------------------------------------------------------------------
# spike


def test_spike_known_values_only_the_spike_is_flagged():
    x = arr(10, 10, 10, 30, 10, 10, 14, 10.5, 10, 10)
    out = qc.spike(x, suspect=3, fail=15)
    # 30 stands out by 20 from both sides -> FAIL; 14 by 3.5 (from 10) / 3.5 (from 10.5) -> SUSPECT
    np.testing.assert_array_equal(out, [N, G, G, F, G, G, S, G, G, N])


def test_spike_good_neighbours_with_noise_are_not_flagged():
    rng = np.random.default_rng(3)
    x = 280 + rng.normal(0, 0.2, 200)
    spikes = [20, 77, 150]
    x[spikes] += [12.0, -9.0, 15.0]
    out = qc.spike(x, suspect=3, fail=10)
    assert set(np.flatnonzero(out >= S)) == set(spikes)
    assert out[20] == F and out[77] == S and out[150] == F
    for i in spikes:
        assert out[i - 1] == G and out[i + 1] == G


def test_spike_step_change_and_ramp_are_not_spikes():
    step = arr(0, 0, 0, 10, 10, 10)
    np.testing.assert_array_equal(qc.spike(step, suspect=1), [N, G, G, G, G, N])
    ramp = np.arange(10.0) * 5
    assert (qc.spike(ramp, suspect=1)[1:-1] == G).all()


def test_spike_gaps():
    x = arr(10, 10, nan, 30, 10, nan, nan, 10, 10)
    # max_gap=1: 30's neighbours are 10 (two slots back, one NaN between) and 10 -> flagged;
    # index 4's next valid value is 3 slots ahead (two NaN): out of reach -> NOT_EVALUATED
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=1), [N, G, M, S, N, M, M, N, G][:8] + [N])
    # max_gap=0: neighbours must be adjacent slots (ioos_qc's behaviour)
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=0), [N, N, M, N, N, M, M, N, N])
    np.testing.assert_array_equal(qc.spike(x, suspect=3, max_gap=2), [N, G, M, S, G, M, M, G, N])


def test_spike_short_series():
    np.testing.assert_array_equal(qc.spike(arr(1, 50), suspect=1), [N, N])
    np.testing.assert_array_equal(qc.spike(arr(1, nan), suspect=1), [N, M])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"suspect": 0}, "suspect must be a finite number > 0, got 0"),
        ({"suspect": 5, "fail": 5}, r"fail must be greater than suspect \(5\), got 5"),
        ({"suspect": 5, "max_gap": -1}, "max_gap must be an integer >= 0, got -1"),
        ({"suspect": 5, "max_gap": 1.5}, "max_gap must be an integer"),
    ],
)
def test_spike_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.spike(arr(1.0, 2.0, 3.0), **kw)


# ------------------------------------------------------------------------------------------
# rate of change


def test_rate_of_change_only_the_jumping_value_when_the_series_returns():
    x = arr(10, 10, 20, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, G, G])


def test_rate_of_change_step_that_stays_is_flagged_once():
    x = arr(10, 10, 20, 20, 20)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, fail_per_step=8), [N, G, F, G, G])


def test_rate_of_change_two_slot_excursion_flagged_at_both_ends():
    x = arr(10, 10, 20, 20, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, G, S, G])


def test_rate_of_change_overshoot_is_not_a_return():
    # 10 -> 20 -> -30: -30 does not come back to 10, so it is flagged too
    x = arr(10, 10, 20, -30)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3), [N, G, S, S])


def test_rate_of_change_gaps_divide_by_distance():
    # 10 -> (gap) -> 15 over 2 steps = 2.5 per step: fine at 3; 15 -> (gap) -> 23 = 4 per step
    x = arr(10, nan, 15, 15, nan, 23, nan, nan, -20)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=1), [N, M, G, G, M, S, M, M, N])
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=2), [N, M, G, G, M, S, M, M, S])
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=0), [N, M, N, G, M, N, M, M, N])


def test_rate_of_change_return_across_gap():
    x = arr(10, 30, nan, 10, 10)
    np.testing.assert_array_equal(qc.rate_of_change(x, suspect_per_step=3, max_gap=1), [N, S, M, G, G])


def test_rate_of_change_bad_parameters():
    with pytest.raises(QCError, match=r"fail_per_step must be greater than suspect_per_step \(3\), got 2"):
        qc.rate_of_change(arr(1, 2), suspect_per_step=3, fail_per_step=2)
    with pytest.raises(QCError, match="suspect_per_step must be a finite number > 0"):
        qc.rate_of_change(arr(1, 2), suspect_per_step=-1)


# ------------------------------------------------------------------------------------------
# flat line


def test_flat_line_known_values():
    x = arr(1, 2, 5, 5, 5, 5, 5, 5, 5, 3)
    out = qc.flat_line(x, tolerance=0, suspect_count=3, fail_count=5)
    # run of 5 from index 2: index 5 is the 3rd repeat (window 2..5) -> SUSPECT, index 7 the 5th
    np.testing.assert_array_equal(out, [G, G, G, G, G, S, S, F, F, G])


def test_flat_line_tolerance_is_a_range():
    x = arr(1.00, 1.04, 0.98, 1.03, 1.10)
    np.testing.assert_array_equal(qc.flat_line(x, tolerance=0.07, suspect_count=3), [G, G, G, S, G])
    # a slow drift whose steps are within tolerance but whose range is not: no flag
    drift = np.arange(10) * 0.05
    assert (qc.flat_line(drift, tolerance=0.07, suspect_count=3) == G).all()


def test_flat_line_nan_breaks_the_run():
    x = arr(5, 5, 5, nan, 5, 5, 5, 5)
    np.testing.assert_array_equal(qc.flat_line(x, tolerance=0, suspect_count=3), [G, G, G, M, G, G, G, S])


def test_flat_line_ignores_dry_spells():
    rain = arr(0, 0, 0, 0, 0, 0, 2.5, 2.5, 2.5, 2.5)
    np.testing.assert_array_equal(
        qc.flat_line(rain, tolerance=0, suspect_count=3, ignore_below=0.1), [G, G, G, G, G, G, G, G, G, S]
    )
    assert (qc.flat_line(rain, tolerance=0, suspect_count=3)[3:6] == S).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"tolerance": -1, "suspect_count": 3}, "tolerance must be a finite number >= 0"),
        ({"tolerance": 0, "suspect_count": 0}, "suspect_count must be an integer >= 1, got 0"),
        ({"tolerance": 0, "suspect_count": 3, "fail_count": 3}, r"fail_count must be greater than suspect_count"),
    ],
)
def test_flat_line_bad_parameters(kw, match):
    with pytest.raises(QCError, match=match):
        qc.flat_line(arr(1, 2), **kw)


def test_spike_at_chunk_boundary_equals_numpy():
    x = 10 + np.zeros(20)
    x[9] = 30.0  # chunks of 10: the spike is the last value of the first chunk
    x[10] = 10.2
    x[14], x[15] = nan, 25.0
    for chunks in (10, 5, 9, 1):
        d = da.from_array(x, chunks=chunks)
        for fn, kw in ((qc.spike, {"suspect": 3}), (qc.rate_of_change, {"suspect_per_step": 3})):
            np.testing.assert_array_equal(fn(d, **kw).compute(), fn(x, **kw))
    assert qc.spike(x, suspect=3)[9] == S and qc.spike(x, suspect=3)[10] == G


# ------------------------------------------------------------------------------------------
# temporal checks against slow, obviously-right loops (random series with gaps and repeats)


def _prev(x, i, reach, step=-1):
    for k in range(1, reach + 1):
        j = i + step * k
        if 0 <= j < len(x) and not np.isnan(x[j]):
            return j
    return None


def _ref_spike(x, suspect, fail, max_gap):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        p, n = _prev(x, i, max_gap + 1, -1), _prev(x, i, max_gap + 1, +1)
        if p is None or n is None:
            out[i] = N
            continue
        dp, dn = x[i] - x[p], x[i] - x[n]
        e = min(dp, dn) if dp > 0 and dn > 0 else min(-dp, -dn) if dp < 0 and dn < 0 else 0.0
        out[i] = F if fail is not None and e > fail else S if e > suspect else G
    return out


def _ref_roc(x, s, f, max_gap):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        j = _prev(x, i, max_gap + 1)
        if j is None:
            out[i] = N
            continue
        rate = abs(x[i] - x[j]) / (i - j)
        jj = _prev(x, j, max_gap + 1)
        exempt = (
            jj is not None and abs(x[j] - x[jj]) / (j - jj) > s and abs(x[i] - x[jj]) <= s * (i - jj)
        )
        if not exempt:
            out[i] = F if f is not None and rate > f else S if rate > s else G
    return out


def _ref_flat(x, tol, sc, fc, ib):
    out = np.ones(len(x), np.uint8)
    for i in range(len(x)):
        if np.isnan(x[i]):
            out[i] = M
            continue
        for n, code in ((sc, S), (fc, F)):
            if n is None or i - n < 0:
                continue
            w = x[i - n : i + 1]
            if not np.isnan(w).any() and w.max() - w.min() <= tol and (ib is None or x[i] >= ib):
                out[i] = code
    return out


@pytest.mark.parametrize("seed", range(8))
def test_temporal_checks_match_slow_loops(seed):
    rng = np.random.default_rng(100 + seed)
    t, cells = int(rng.integers(3, 60)), 5
    x = np.round(rng.normal(0, 2.0, (t, cells)) * 2) / 2  # quantised: repeats happen
    x[rng.random((t, cells)) < 0.15] = nan
    x[rng.random((t, cells)) < 0.05] += 20
    flat_cell = rng.integers(0, cells)
    x[t // 3 : t // 3 + 9, flat_cell] = 1.5
    mg = int(rng.integers(0, 3))
    sc = int(rng.integers(1, 4))
    kw_flat = dict(tolerance=float(rng.choice([0.0, 0.5, 1.0])), suspect_count=sc, fail_count=sc + 3, ignore_below=None)
    if seed % 2:
        kw_flat["ignore_below"] = 0.0
    for col in range(cells):
        xc = x[:, col]
        np.testing.assert_array_equal(qc.spike(x, suspect=2.0, fail=6.0, max_gap=mg)[:, col], _ref_spike(xc, 2.0, 6.0, mg))
        np.testing.assert_array_equal(
            qc.rate_of_change(x, suspect_per_step=2.0, fail_per_step=6.0, max_gap=mg)[:, col], _ref_roc(xc, 2.0, 6.0, mg)
        )
        np.testing.assert_array_equal(
            qc.flat_line(x, **kw_flat)[:, col],
            _ref_flat(xc, kw_flat["tolerance"], sc, sc + 3, kw_flat["ignore_below"]),
        )
    # and the gap-free fast paths
    filled = np.nan_to_num(x, nan=0.25)
    for col in range(cells):
        np.testing.assert_array_equal(qc.spike(filled, suspect=2.0)[:, col], _ref_spike(filled[:, col], 2.0, None, mg))
        np.testing.assert_array_equal(
            qc.rate_of_change(filled, suspect_per_step=2.0)[:, col], _ref_roc(filled[:, col], 2.0, None, 1)
        )


def test_flat_line_dense_candidates_use_the_whole_block_path(monkeypatch):
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(0, 0.02, (40, 30)), 2)  # nearly flat everywhere
    kw = dict(tolerance=0.03, suspect_count=4, fail_count=8)
    monkeypatch.setattr(temporal, "_FLAT_GATHER_MAX", 1.0)  # always gather each candidate's window
    gathered = qc.flat_line(x, **kw)
    monkeypatch.setattr(temporal, "_FLAT_GATHER_MAX", 0.0)  # always double over the whole block
    np.testing.assert_array_equal(qc.flat_line(x, **kw), gathered)
    assert (gathered >= S).any() and (gathered == G).any()
    for col in range(30):
        np.testing.assert_array_equal(gathered[:, col], _ref_flat(x[:, col], 0.03, 4, 8, None))
