"""The command line as a user meets it: help everywhere, the demo end to end."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from testkit import ROOT
from forecast.cli import app


def _is_group(path: list[str]) -> bool:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return hasattr(cmd, "commands")

def _walk(cmd, path=()):
    """Every command path of the click tree behind the typer app (groups included)."""
    yield list(path)
    if hasattr(cmd, "commands"):  # a group
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))
#: commands that report: they take --json (everything but the schema export, which writes a file)
REPORTING = [c for c in COMMANDS if c and c != ["catalog", "schema"]]


def test_the_command_tree_is_walked_from_the_app():
    names = {" ".join(c) for c in COMMANDS}
    assert {"ingest", "qc decide", "models promote", "hindcast", "db upgrade", "users add", "demo"} <= names


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "forecast")
def test_every_command_has_help(cmd):
    res = CliRunner().invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


@pytest.mark.parametrize("cmd", [c for c in REPORTING if not _is_group(c)], ids=lambda c: " ".join(c))
def test_reporting_commands_take_json(cmd):
    res = CliRunner().invoke(app, [*cmd, "--help"], terminal_width=200)
    assert "--json" in res.output, cmd


@pytest.mark.slow
def test_demo_runs_the_live_service_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CATALOGS", str(ROOT / "catalogs"))
    res = CliRunner().invoke(app, ["demo", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # the history: backfilled in the feed's order, QC'd, the storm accepted by the duty operator
    radar = doc["datasets"]["radar_precip"]
    on_time, *later = radar["ingests"]
    assert len(on_time["written"]) > 200 and any(r["late"] for r in later) and any(r["revisions"] for r in later)
    assert radar["qc"]["events_added"] >= 1
    # a quick model in production (by a recorded override) before the live service starts
    assert doc["model"]["version"] == "v1" and doc["model"]["production"] == "v1"
    # the live service: the replayed feed's files arrived and the worker served forecasts from them
    live = doc["live"]
    assert live["replay"]["files"] >= 5 and live["forecasts"] >= 5
    assert live["methods"].get("model", 0) >= 1  # the model answers once its process is warm
    from forecast.settings import Settings

    # something went wrong: the feed went silent; the monitor's data_missing alert fired while it was
    assert live["replay"]["kinds"]["held"] >= 3
    assert any(a["rule"] == "data_missing" and a["event"] == "fired" for a in live["alerts"]), live["alerts"]
    from forecast.monitoring.report import alerts_doc

    alert = next(a for a in alerts_doc(Settings())["alerts"] if a["rule"] == "data_missing")
    first = alert["events"][0]
    assert first["kind"] == "fired" and "have not arrived" in first["details"]["message"]
    from forecast.worker.status import worker_status

    status = worker_status(Settings())
    last = status["last_cycle"]
    assert status["lease"] is not None and last["method"] in ("model", "extrapolation", "persistence")
    # a fallback says why (on a loaded machine the last init may come while the model's process restarts
    # after a missed deadline, and a missing recent slot rules extrapolation out)
    assert (last["fallback"] is None) == (last["method"] == "model") and (last["fallback"] or {"reason": "-"})["reason"]
    # everything was stored once: feeding the same files again changes nothing
    sample = tmp_path / "home" / "demo" / "samples" / "radar_precip"
    res = CliRunner().invoke(app, ["ingest", "radar_precip", str(sample), "--json"])
    again = json.loads(res.stdout)
    assert not again["committed"] and again["written"] == [] and len(again["duplicates"]) > 200
