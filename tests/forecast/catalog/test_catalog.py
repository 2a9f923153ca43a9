"""Catalog loading and strict validation: every problem named with file and path."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml
from typer.testing import CliRunner

from testkit import ROOT, catalog_doc, write_catalog
from forecast.catalog import exceedance_name, get_catalog, json_schema, load_catalog, load_catalogs, parse_catalog
from forecast.cli import app
from forecast.errors import CatalogError, UnknownDatasetError


def test_shipped_catalogs_are_valid():
    cats = load_catalogs(ROOT / "catalogs")
    assert {"radar_precip", "surface_obs", "ostia_sst"} <= set(cats)
    r = cats["radar_precip"]
    assert r.variables["precipitation_rate"].standard_name == "lwe_precipitation_rate"
    assert r.variables["precipitation_rate"].units == "mm h-1"
    assert r.time.step_seconds == 300 and r.grid.shape == (256, 256) and abs(r.grid.x.step) == 1000
    lat, lon = r.grid.latlon()
    assert lat.shape == (256, 256) and 40 < lat.mean() < 55 and 5 < lon.mean() < 20
    s = cats["surface_obs"]
    assert s.time.step_seconds == 3600 and s.grid.shape[0] < r.grid.shape[0]
    assert s.grid.elevation_field().shape == s.grid.shape
    assert "degC" in s.variables["air_temperature"].accepted_units


def test_schema_json_is_current():
    committed = json.loads((ROOT / "catalogs" / "schema.json").read_text())
    assert committed == json_schema(), "run `make schema` to refresh catalogs/schema.json"


def test_unknown_keys_and_all_problems_reported_together(tmp_path):
    doc = catalog_doc("radar_precip")
    doc["colour"] = "blue"
    doc["variables"]["precipitation_rate"]["physcal_range"] = [0, 1]
    doc["variables"]["precipitation_rate"]["climatological_record"]["max"] = [1.0] * 11
    doc["time"]["step"] = "5 fortnights"
    p = write_catalog(tmp_path, doc)
    with pytest.raises(CatalogError) as ei:
        load_catalog(p)
    probs = ei.value.problems
    assert len(probs) == 4, probs
    assert all(x.startswith(str(p) + ": ") for x in probs)
    text = "\n".join(probs)
    assert "colour: unknown key" in text
    assert "variables.precipitation_rate.physcal_range: unknown key" in text
    assert "variables.precipitation_rate.climatological_record.max: needs 12 monthly values" in text
    assert "time.step: '5 fortnights' is not a duration" in text


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["variables"]["precipitation_rate"].update(physical_range=[10, 0]), "low < high"),
        (lambda d: d["variables"]["precipitation_rate"]["climatological_record"].update(max=[600.0] * 12),
         r"climatological_record.max for Jan \(600.0\) lies outside the physical range"),
        (lambda d: d["variables"]["precipitation_rate"].update(accepted_units=["K"]),
         "accepted unit 'K' cannot be converted to 'mm h-1'"),
        (lambda d: d["variables"]["precipitation_rate"].update(units="furlongs per gallon per wombat"), "unknown units"),
        (lambda d: d["grid"].update(crs="EPSG:99999999"), "unknown CRS"),
        (lambda d: d["grid"]["x"].update(step=0), "step must be a finite non-zero number"),
        (lambda d: d.update(id="Radar Precip"), "id: String should match pattern"),
        (lambda d: d["time"].update(tolerance="1month"), "tolerance must be given in s, min, h or d"),
        (lambda d: d["variables"]["precipitation_rate"].update(thresholds=[1.0, 0.1]),
         r"thresholds must increase strictly, got \[1.0, 0.1\]"),
        (lambda d: d["variables"]["precipitation_rate"].update(thresholds=[1.0, 500.0]),
         r"thresholds \[500.0\] lie outside the physical range"),
    ],
)
def test_bad_values_name_the_path(tmp_path, edit, message):
    doc = catalog_doc("radar_precip")
    edit(doc)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(doc, "x.yaml")


def test_threshold_parameter_names():
    cat = get_catalog(ROOT / "catalogs", "radar_precip")
    names = [exceedance_name("precipitation_rate", t) for t in cat.variables["precipitation_rate"].thresholds]
    assert names == ["precipitation_rate_exceedance_0p1", "precipitation_rate_exceedance_1",
                     "precipitation_rate_exceedance_5", "precipitation_rate_exceedance_10",
                     "precipitation_rate_exceedance_30"]
    assert exceedance_name("air_temperature", -2.5) == "air_temperature_exceedance_m2p5"


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("id: broken\ntitle: [unclosed\n")
    with pytest.raises(CatalogError, match=r"broken.yaml: line \d+, column \d+: not valid YAML"):
        load_catalog(p)


def test_duplicate_ids_and_unknown_dataset(tmp_path):
    doc = catalog_doc("radar_precip")
    write_catalog(tmp_path, doc)
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match="dataset id 'radar_precip' is already defined"):
        load_catalogs(tmp_path)
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'nope'; catalogs in .* define: radar_precip, surface_obs"):
        get_catalog(_only(tmp_path, ["radar_precip", "surface_obs"]), "nope")


def _only(tmp_path, ids):
    folder = tmp_path / "only"
    for i in ids:
        write_catalog(folder, catalog_doc(i))
    return folder


def test_time_axis_slots():
    r = load_catalog(ROOT / "catalogs" / "radar_precip.yaml").time
    t = int(datetime(2026, 7, 15, 12, 5, tzinfo=timezone.utc).timestamp())
    i = r.slot_of(t)
    assert int(r.label(i)) == t
    assert r.slot_of(t + 20) == i  # within the 30 s tolerance
    assert r.slot_of(t + 120) is None  # 2 minutes off the 5-minute axis
    assert r.slot_of(r.start_s - 300) is None  # before the start
    m = load_catalog(ROOT / "catalogs" / "ostia_sst.yaml").time
    mid_april = int(datetime(2006, 4, 16, 12, tzinfo=timezone.utc).timestamp())
    assert m.slot_of(mid_april) == 3  # period placement: the month containing the time
    assert m.label_datetime(3) == datetime(2006, 4, 1, tzinfo=timezone.utc)
    assert m.slot_of(int(datetime(2005, 12, 31, tzinfo=timezone.utc).timestamp())) is None


def test_cli_validate(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["catalog", "validate", str(ROOT / "catalogs"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["valid"] and len(doc["catalogs"]) >= 3
    bad = catalog_doc("surface_obs")
    bad["variables"]["air_temperature"]["units"] = "kelvinz"
    bad["extra"] = 1
    p = write_catalog(tmp_path, bad)
    res = runner.invoke(app, ["catalog", "validate", str(p), "--json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert not doc["valid"] and len(doc["problems"]) == 2
    assert any("variables.air_temperature.units: unknown units 'kelvinz'" in x for x in doc["problems"])
