"""`forecast replay`'s feed order and its outage: files due during an outage land when it ends."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from forecast.errors import BadInputError
from forecast.worker.replay import schedule, with_outage
from workerkit import START, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("replay"), hours=1.0)


def test_schedule_orders_the_feed_with_its_faults(world):
    st, cat, sample, manifest = world
    drops = schedule(sample, cat, seed=1)
    assert [d.at for d in drops] == sorted(d.at for d in drops)
    kinds = {d.kind for d in drops}
    assert {"on_time", "late", "duplicate", "corrupt"} <= kinds
    assert drops == schedule(sample, cat, seed=1)  # the jitter is seeded


def test_an_outage_holds_files_back_until_it_ends(world):
    st, cat, sample, _ = world
    drops = schedule(sample, cat, seed=1)
    a, b = START + timedelta(minutes=10), START + timedelta(minutes=30)
    moved = with_outage(drops, a, b)
    assert len(moved) == len(drops)
    held = [d for d in moved if d.kind == "held"]
    assert held and all(d.at == b for d in held)
    assert len(held) == sum(a <= d.at < b for d in drops)
    assert not any(a <= d.at < b for d in moved)  # nothing lands during the outage
    with pytest.raises(BadInputError, match="the outage must end after it starts"):
        with_outage(drops, b, a)


def test_replay_cli_with_an_outage(world, monkeypatch):
    from forecast.cli.app import app

    st, cat, sample, _ = world
    monkeypatch.setenv("FORECAST_HOME", str(st.home))
    monkeypatch.setenv("FORECAST_CATALOGS", str(st.catalogs))
    # the whole hour at 36000x real time; an outage over the first 20 minutes of the feed
    window = f"{START.isoformat()}/{(START + timedelta(minutes=20)).isoformat()}"
    r = CliRunner().invoke(app, ["replay", cat.id, str(sample), "--speed", "36000", "--outage", window, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    expected = sum(d.kind == "held" for d in with_outage(schedule(sample, cat), START, START + timedelta(minutes=20)))
    assert doc["kinds"]["held"] == expected >= 2 and doc["outage"][0].startswith("2026-07-15T12:00:00")
    inbox = st.home / "inbox" / cat.id
    assert len([p for p in inbox.iterdir() if not p.name.startswith(".")]) >= doc["files"] - doc["kinds"].get(
        "duplicate", 0) - doc["kinds"].get("revised", 0)
    r = CliRunner().invoke(app, ["replay", cat.id, str(sample), "--speed", "100", "--outage", "12:00"])
    assert r.exit_code == 2 and "--outage must be two times T0/T1, got '12:00'" in r.output
