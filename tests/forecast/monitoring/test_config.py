"""The catalog's monitoring and alerts sections and catalogs/alerts.yaml: strict, every problem named with
the file and the path; the catalog hash ignores them; alerts.yaml is not mistaken for a dataset."""

from __future__ import annotations

import pytest

from forecast.catalog import load_catalogs, parse_catalog
from forecast.catalog.monitoring import AlertRule, MonitoringConfig
from forecast.errors import CatalogError
from forecast.monitoring.config import alert_rules_for, default_alert_rules, load_alert_rules
from forecast.settings import Settings
from testkit import ROOT, small_doc, write_catalog


def test_the_shipped_rules_and_catalogs_validate():
    rules = load_alert_rules(ROOT / "catalogs" / "alerts.yaml")
    assert {r.kind for r in rules.rules} >= {"skill_below_reference", "skill_change", "input_drift", "data_missing",
                                             "fail_share", "deadline_miss", "review_waiting", "stratum_below_reference"}
    assert [r.name for r in default_alert_rules().rules] == [r.name for r in rules.rules]
    cats = load_catalogs(ROOT / "catalogs")  # alerts.yaml is not a dataset catalog
    assert "radar_precip" in cats and cats["radar_precip"].monitoring.regions


@pytest.mark.parametrize("rule, message", [
    ({"name": "a", "kind": "skill_drop"}, "unknown alert kind 'skill_drop'"),
    ({"name": "a", "kind": "skill_change", "lead_minutes": 30}, "does not take lead_minutes"),
    ({"name": "a", "kind": "skill_below_reference"}, "needs lead_minutes"),
    ({"name": "a", "kind": "fail_share"}, "needs threshold"),
    ({"name": "a", "kind": "input_drift", "window": "medium"}, "window must be short or long"),
    ({"name": "a", "kind": "review_waiting", "max_age": "soon"}, "max_age"),
    ({"name": "a", "kind": "skill_change", "colour": "red"}, "colour"),
])
def test_a_bad_rule_is_refused_naming_the_field(tmp_path, rule, message):
    p = tmp_path / "alerts.yaml"
    import yaml

    p.write_text(yaml.safe_dump({"rules": [rule]}))
    with pytest.raises(CatalogError, match=message) as e:
        load_alert_rules(p)
    assert str(p) in str(e.value)


def test_catalog_sections_are_validated_and_do_not_change_the_hash(tmp_path):
    doc = small_doc("radar_precip")
    doc.pop("monitoring", None)
    base = parse_catalog(doc, "x")
    doc2 = {**doc, "monitoring": {"short_window": "3h", "regions": [{"name": "n", "cells": {"iy": [0, 4], "ix": [0, 4]}}]},
            "alerts": [{"name": "mine", "kind": "skill_change", "clear_cycles": 2}]}
    cat = parse_catalog(doc2, "x")
    assert cat.hash == base.hash and cat.monitoring.short_window == "3h"
    with pytest.raises(CatalogError, match="monitoring.long_window"):
        parse_catalog({**doc, "monitoring": {"long_window": "yesterday"}}, "x")
    with pytest.raises(CatalogError, match="exactly one of bbox, polygon, cells, elevation"):
        parse_catalog({**doc, "monitoring": {"regions": [{"name": "r"}]}}, "x")
    with pytest.raises(CatalogError, match="longer than short_window"):
        parse_catalog({**doc, "monitoring": {"short_window": "2d", "long_window": "1d"}}, "x")
    # a dataset's own rules join the file's (the built-in defaults here) and apply to it alone
    write_catalog(tmp_path / "catalogs", doc2)
    st = Settings(home=tmp_path / "home", catalogs=tmp_path / "catalogs")
    rules, source = alert_rules_for(st, cat)
    mine = next(r for r in rules if r.name == "mine")
    assert mine.datasets == [cat.id] and "built-in defaults" in source and "alerts: section" in source


def test_rule_scope_and_defaults():
    r = AlertRule(name="x", kind="input_drift", datasets=["radar_precip"], features=["edge_contrast@*"])
    assert r.applies("radar_precip", "precipitation_rate") and not r.applies("surface_obs", "t2m")
    assert MonitoringConfig().seconds("long_window") == 30 * 86400


def test_catalog_validate_checks_the_alert_rules_too(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from forecast.cli import app

    write_catalog(tmp_path, small_doc("radar_precip"))
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"rules": [{"name": "x", "kind": "skill_change",
                                                                       "lead_minutes": 30}]}))
    res = CliRunner().invoke(app, ["catalog", "validate", str(tmp_path), "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 2 and any("does not take lead_minutes" in p for p in doc["problems"])
    res = CliRunner().invoke(app, ["catalog", "validate", str(ROOT / "catalogs"), "--json"])
    assert res.exit_code == 0 and any(r.get("id") == "alert rules" for r in json.loads(res.stdout)["catalogs"])
