"""The observation reader (api.readers.observations): slot ranges of queries, datasets and views per
snapshot."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from apihelpers import START, settings_for

from api.problems import Problem
from api.readers import ObservationReader


@pytest.fixture
def view(world):
    reader = ObservationReader(settings_for(world))
    assert reader.datasets() == ["radar_precip"]
    v = reader.view("radar_precip")
    assert reader.view("radar_precip") is v  # one view per snapshot
    return v


def _s(h, m):
    return int(datetime(2026, 7, 15, h, m, tzinfo=timezone.utc).timestamp())


def test_slot_range_default_interval_and_as_of(view):
    f = view.first_slot  # 12:00, the first slot holding data; 1.5 h of 5 min slots
    assert view.n_slots - f == 18 and view.catalog.time.step == "5min"
    assert view.catalog.time.slot_of(int(START.timestamp())) == f
    last = view.n_slots - 1
    assert view.slot_range(None, None, 12, 100) == (last - 11, last)
    assert view.slot_range((_s(12, 10), _s(12, 20)), None, 12, 100) == (f + 2, f + 4)
    assert view.slot_range(None, _s(12, 22), 12, 100) == (f, f + 4)  # as of 12:22: the slots up to 12:20
    with pytest.raises(Problem, match="before the first slot"):
        view.slot_range(None, int(view.catalog.time.start.timestamp()) - 60, 12, 100)
    with pytest.raises(Problem, match="no slot of radar_precip"):
        view.slot_range((_s(12, 11), _s(12, 14)), None, 12, 100)
    with pytest.raises(Problem, match="spans 5 slots of 5min; at most 4"):
        view.slot_range((_s(12, 0), _s(12, 20)), None, 12, 4)


def test_open_start_counts_back_from_the_end_of_the_interval(view):
    f = view.first_slot
    assert view.slot_range((None, _s(12, 20)), None, 3, 100) == (f + 2, f + 4)


def test_read_values_flags_and_revisions(world, view):
    reader = ObservationReader(settings_for(world))
    f = view.first_slot
    data, times = reader.read(reader.view("radar_precip"), f, f + 2, None, view.variables, (0, 2, 0, 3))
    vals, qc, tests, rev, available = data["precipitation_rate"]
    assert vals.shape == qc.shape == tests.shape == (3, 2, 3) and len(times) == 3 and len(rev) == 3
    assert all(a is None or a.endswith("Z") for a in available)


def test_no_store_yet(tmp_path):
    from forecast.settings import Settings

    reader = ObservationReader(Settings(home=tmp_path / "empty", catalogs=tmp_path / "none"))
    assert reader.head() is None and reader.datasets() == []
    with pytest.raises(Problem, match="holds no dataset 'x'"):
        reader.view("x")
