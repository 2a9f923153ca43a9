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
def test_demo_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CATALOGS", str(ROOT / "catalogs"))
    res = CliRunner().invoke(app, ["demo", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    model = doc["model"]
    assert model["version"] == "v1" and len(model["forecasts"]) == 3
    assert all(f["method"] == "model" and f["fallback"] is None for f in model["forecasts"])
    assert "deadline" in model["fallback_demo"]["fallback"]["reason"]
    radar = doc["datasets"]["radar_precip"]
    main, late, revised = radar["ingests"]
    assert len(main["written"]) > 20 and main["rejected"]  # the corrupt file is quarantined
    assert late["late"] and late["duplicates"]
    assert revised["revisions"]
    assert radar["store"]["variables"]["precipitation_rate"]["archived_revisions"] == 1
    # a second run ingests nothing new
    res = CliRunner().invoke(app, ["demo", "--quick", "--json"])
    assert res.exit_code == 0
    again = json.loads(res.stdout)
    assert all(not r["committed"] for r in again["datasets"]["radar_precip"]["ingests"])
    assert again["model"]["version"] == "v1"  # the model trained on this snapshot is reused
    assert not any(f["written"] for f in again["model"]["forecasts"])  # forecasts are idempotent
