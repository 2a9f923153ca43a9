"""Grouping SUSPECT cells into review events (qc.events)."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from qc.errors import QCError
from qc.events import (
    cells_from_bytes,
    cells_to_bytes,
    event_key,
    find_events,
    hazard_score,
)
from qc.flags import QCFlag, TestBit

T0 = np.datetime64("2026-07-15T12:00:00")
STEP = np.timedelta64(5, "m")
RECORD = 250.0  # mm/h, July record max


def grid(nt=6, ny=60, nx=80):
    values = np.full((nt, ny, nx), 1.0, dtype=np.float32)
    qc = np.full((nt, ny, nx), np.uint8(QCFlag.GOOD), dtype=np.uint8)
    tests = np.zeros((nt, ny, nx), dtype=np.uint32)
    times = T0 + np.arange(nt) * STEP
    return values, qc, tests, times


def suspect(values, qc, tests, idx, value, bits=TestBit.CLIMATOLOGY):
    values[idx] = value
    qc[idx] = QCFlag.SUSPECT
    tests[idx] |= np.uint32(bits)


def events_of(values, qc, tests, times, **kw):
    kw.setdefault("record", RECORD)
    return find_events(values, qc, tests, times=times, variable="precipitation_rate", dataset="radar", **kw)


def epoch(t) -> int:
    return int(np.datetime64(t, "s").astype(np.int64))


def test_moving_storm_over_four_slots_is_one_event():
    values, qc, tests, times = grid()
    # a 20 x 30 block of suspect rain moving 6 columns east per slot, slots 1..4 (2400 cells)
    for k, t in enumerate(range(1, 5)):
        suspect(values, qc, tests, (t, slice(10, 30), slice(5 + 6 * k, 35 + 6 * k)), 300.0 + 10 * k)
    tests[2, 15, 20] |= np.uint32(TestBit.SPIKE)

    (ev,) = events_of(values, qc, tests, times)

    assert ev.n_cells == 4 * 20 * 30
    assert ev.n_slots == 4
    assert ev.t_first == datetime(2026, 7, 15, 12, 5, tzinfo=timezone.utc)
    assert ev.t_last == datetime(2026, 7, 15, 12, 20, tzinfo=timezone.utc)
    assert ev.bbox == (10, 29, 5, 34 + 18)
    assert ev.max_value == pytest.approx(330.0) and ev.min_value == pytest.approx(300.0)
    assert ev.side == "max" and ev.record == RECORD
    assert ev.excess == pytest.approx(80.0)
    assert ev.relative_excess == pytest.approx(80.0 / 250.0)
    assert ev.exceeds_record
    assert ev.peak[0] == datetime(2026, 7, 15, 12, 20, tzinfo=timezone.utc)
    assert ev.test_names == ("climatology", "spike")
    assert ev.tests == int(TestBit.CLIMATOLOGY | TestBit.SPIKE)
    assert ev.hazard == pytest.approx(0.32 * math.log(1 + 2400))
    # cells: compact int64 triplets (epoch s, iy, ix), sorted, one per suspect cell
    assert ev.cells.dtype == np.int64 and ev.cells.shape == (2400, 3)
    assert np.array_equal(ev.cells, ev.cells[np.lexsort((ev.cells[:, 2], ev.cells[:, 1], ev.cells[:, 0]))])
    assert ev.cells[0].tolist() == [epoch(times[1]), 10, 5]
    it = (ev.cells[:, 0] - epoch(T0)) // 300
    assert (qc[it, ev.cells[:, 1], ev.cells[:, 2]] == QCFlag.SUSPECT).all()


def test_two_distant_regions_are_two_events():
    values, qc, tests, times = grid()
    suspect(values, qc, tests, (slice(1, 3), slice(5, 15), slice(5, 15)), 280.0)
    suspect(values, qc, tests, (slice(1, 3), slice(40, 50), slice(60, 70)), 400.0)
    evs = events_of(values, qc, tests, times)
    assert len(evs) == 2
    assert [e.bbox for e in evs] == [(40, 49, 60, 69), (5, 14, 5, 14)]  # bigger exceedance first
    assert [e.n_cells for e in evs] == [200, 200]
    assert evs[0].key != evs[1].key


def test_isolated_pixels_are_each_their_own_event():
    values, qc, tests, times = grid()
    pixels = [(0, 3, 3), (0, 3, 6), (2, 20, 20), (4, 20, 20), (5, 59, 79)]  # same place, slots 2 and 4: a gap
    for p in pixels:
        suspect(values, qc, tests, p, 260.0)
    evs = events_of(values, qc, tests, times)
    assert len(evs) == len(pixels)
    assert all(e.n_cells == 1 and e.n_slots == 1 for e in evs)
    got = sorted(
        (int((e.cells[0, 0] - epoch(T0)) // 300), int(e.cells[0, 1]), int(e.cells[0, 2])) for e in evs
    )
    assert got == sorted(pixels)


def test_regions_join_when_they_overlap_or_touch_across_consecutive_slots():
    values, qc, tests, times = grid()
    suspect(values, qc, tests, (1, 10, 10), 260.0)
    suspect(values, qc, tests, (2, 11, 11), 260.0)  # diagonal neighbour in the next slot: touches
    suspect(values, qc, tests, (3, 13, 11), 260.0)  # two rows away: does not touch
    assert sorted(e.n_cells for e in events_of(values, qc, tests, times)) == [1, 2]
    assert sorted(e.n_cells for e in events_of(values, qc, tests, times, link=2)) == [3]
    assert sorted(e.n_cells for e in events_of(values, qc, tests, times, link=0)) == [1, 1, 1]


def test_a_split_storm_stays_one_event_and_two_storms_merging_become_one():
    values, qc, tests, times = grid()
    # slot 1: two separate cells far apart; slot 2: one band touching both -> all one event
    suspect(values, qc, tests, (1, 10, slice(10, 14)), 260.0)
    suspect(values, qc, tests, (1, 10, slice(40, 44)), 260.0)
    suspect(values, qc, tests, (2, 11, slice(12, 42)), 260.0)
    (ev,) = events_of(values, qc, tests, times)
    assert ev.n_cells == 4 + 4 + 30


def test_only_suspect_cells_are_grouped():
    values, qc, tests, times = grid()
    qc[1, 5:10, 5:10] = QCFlag.FAIL
    qc[2, 5:10, 5:10] = QCFlag.MISSING
    qc[3, 5:10, 5:10] = QCFlag.NOT_EVALUATED
    assert events_of(values, qc, tests, times) == []


def test_ordering_by_hazard():
    values, qc, tests, times = grid()
    suspect(values, qc, tests, (1, slice(5, 25), slice(5, 25)), 275.0)  # 400 cells, +10 %: 0.1*ln401 = 0.60
    suspect(values, qc, tests, (1, 40, 70), 500.0)  # 1 cell, +100 %: 1*ln2 = 0.69
    suspect(values, qc, tests, (4, slice(40, 45), slice(5, 10)), 255.0)  # 25 cells, +2 %: 0.02*ln26 = 0.07
    suspect(values, qc, tests, (5, 30, 40), 100.0, bits=TestBit.SPIKE)  # not beyond the record: 0
    evs = events_of(values, qc, tests, times)
    assert [e.n_cells for e in evs] == [1, 400, 25, 1]
    assert [e.hazard for e in evs] == pytest.approx(
        [math.log(2), 0.1 * math.log(401), 0.02 * math.log(26), 0.0]
    )
    last = evs[-1]
    assert not last.exceeds_record and last.excess == pytest.approx(-150.0) and last.test_names == ("spike",)


def test_hazard_formula():
    assert hazard_score(1.0, 1) == pytest.approx(math.log(2))
    assert hazard_score(0.5, 999) == pytest.approx(0.5 * math.log(1000))
    assert hazard_score(-0.2, 100) == 0.0
    assert hazard_score(None, 100) == 0.0
    assert hazard_score(float("nan"), 100) == 0.0


def test_key_is_stable_and_order_independent():
    values, qc, tests, times = grid()
    suspect(values, qc, tests, (slice(1, 4), slice(10, 20), slice(10, 20)), 300.0)
    (a,) = events_of(values, qc, tests, times)
    (b,) = events_of(values.copy(), qc.copy(), tests.copy(), times)
    assert a.key == b.key
    rng = np.random.default_rng(0)
    assert event_key("radar", "precipitation_rate", a.cells[rng.permutation(len(a.cells))]) == a.key
    assert event_key("radar2", "precipitation_rate", a.cells) != a.key
    assert event_key("radar", "precipitation_rate", a.cells[1:]) != a.key
    # the key depends on the cells, not on the values or the record
    (c,) = events_of(values * 2, qc, tests, times, record=100.0)
    assert c.key == a.key
    assert np.array_equal(cells_from_bytes(cells_to_bytes(a.cells)), a.cells)


def test_records_per_slot_per_cell_and_minimum():
    values, qc, tests, times = grid(nt=3, ny=10, nx=10)
    suspect(values, qc, tests, (0, 2, 2), 120.0)
    suspect(values, qc, tests, (2, 2, 2), 120.0)
    per_slot = np.array([100.0, 500.0, 60.0])
    evs = events_of(values, qc, tests, times, record=per_slot)
    assert sorted((e.record, e.relative_excess) for e in evs) == [(60.0, 1.0), (100.0, 0.2)]

    per_cell = np.full((10, 10), 100.0)
    per_cell[2, 2] = 80.0
    evs = events_of(values, qc, tests, times, record=per_cell)
    assert {e.record for e in evs} == {80.0}

    # cold extreme (temperature in K): beyond the record minimum
    values, qc, tests, times = grid(nt=2, ny=10, nx=10)
    values[:] = 280.0
    suspect(values, qc, tests, (1, slice(3, 5), slice(3, 5)), 262.0)
    (ev,) = events_of(values, qc, tests, times, record=313.0, record_min=270.0, scale=10.0)
    assert ev.side == "min" and ev.record == 270.0
    assert ev.excess == pytest.approx(8.0) and ev.relative_excess == pytest.approx(0.8)
    assert ev.exceeds_record


def test_months_without_record_give_no_exceedance():
    values, qc, tests, times = grid(nt=2, ny=10, nx=10)
    suspect(values, qc, tests, (1, 4, 4), 300.0)
    (ev,) = events_of(values, qc, tests, times, record=np.array([np.nan, np.nan]))
    assert ev.record is None and ev.excess is None and ev.hazard == 0.0 and not ev.exceeds_record


def test_coordinate_boxes():
    values, qc, tests, times = grid(nt=2, ny=10, nx=12)
    suspect(values, qc, tests, (1, slice(2, 5), slice(3, 7)), 300.0)
    lat1, lon1 = np.linspace(50.0, 59.0, 10), np.linspace(0.0, 11.0, 12)
    (ev,) = events_of(
        values, qc, tests, times, lat=lat1, lon=lon1, y=np.arange(10) * 1000.0, x=np.arange(12) * 1000.0
    )
    assert ev.latlon_box == pytest.approx((52.0, 54.0, 3.0, 6.0))
    assert ev.xy_box == pytest.approx((2000.0, 4000.0, 3000.0, 6000.0))
    lat2, lon2 = np.meshgrid(lat1, lon1, indexing="ij")
    (ev2,) = events_of(values, qc, tests, times, lat=lat2, lon=lon2)
    assert ev2.latlon_box == pytest.approx(ev.latlon_box)


def test_bad_arguments_raise_clear_errors():
    values, qc, tests, times = grid(nt=2, ny=4, nx=4)
    with pytest.raises(QCError, match=r"qc must be shaped \(time, y, x\)"):
        find_events(values[0], qc[0], tests[0], times=times, variable="v", dataset="d", record=1.0)
    with pytest.raises(QCError, match="tests must be shaped like qc"):
        find_events(values, qc, tests[:1], times=times, variable="v", dataset="d", record=1.0)
    with pytest.raises(QCError, match=r"one datetime64 per slot \(2\)"):
        find_events(values, qc, tests, times=times[:1], variable="v", dataset="d", record=1.0)
    with pytest.raises(QCError, match="record must be a scalar or shaped"):
        find_events(values, qc, tests, times=times, variable="v", dataset="d", record=np.ones(3))
    with pytest.raises(QCError, match="link must be >= 0"):
        find_events(values, qc, tests, times=times, variable="v", dataset="d", record=1.0, link=-1)


def test_many_scattered_suspects_are_fast():
    rng = np.random.default_rng(1)
    nt, ny, nx = 24, 400, 400
    qc = np.ones((nt, ny, nx), dtype=np.uint8)
    qc[rng.random((nt, ny, nx)) < 0.002] = QCFlag.SUSPECT  # ~7700 mostly isolated cells
    values = np.full(qc.shape, 300.0, dtype=np.float32)
    tests = np.where(qc == 3, np.uint32(TestBit.CLIMATOLOGY), np.uint32(0))
    times = T0 + np.arange(nt) * STEP
    t = time.perf_counter()
    evs = events_of(values, qc, tests, times)
    took = time.perf_counter() - t
    assert sum(e.n_cells for e in evs) == int((qc == 3).sum())
    assert len({e.key for e in evs}) == len(evs)
    assert took < 10, f"find_events took {took:.1f} s"
