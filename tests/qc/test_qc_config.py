"""The QC config (strict, errors with paths, hash) and run_checks over a Dataset."""

from __future__ import annotations

from types import SimpleNamespace

import dask
import numpy as np
import pytest
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

import qc
from qc import QCConfig, QCConfigError, TestBit, load_qc_config, run_checks
from qc import config as qc_config

G, N, S, F, M = 1, 2, 3, 4, 9


def test_defaults_validate_and_match_the_documented_yaml():
    cfg = qc.default_config()
    doc = yaml.safe_load(qc_config.__doc__.split("::", 1)[1])
    assert load_qc_config(doc["qc"]) == cfg
    assert set(cfg.variables) == {"precipitation_rate", "air_temperature", "dew_point_temperature"}
    assert [s.test for s in cfg.stages("precipitation_rate")][:3] == ["missing", "physical_range", "climatology"]


def _doc(**stage):
    return {"variables": {"precipitation_rate": [{"test": "physical_range"}, stage]}}


@pytest.mark.parametrize(
    "doc, match",
    [
        (
            _doc(test="spike", suspect=40.0, fail=10.0),
            r"qc\.variables\.precipitation_rate\[1\]\.fail: must be greater than suspect \(40\.0\) \(got 10\.0\)",
        ),
        (
            _doc(test="spatial", window=4, suspect_z=5, min_scale=1),
            r"qc\.variables\.precipitation_rate\[1\]\.window: must be an odd integer .*\(got 4\)",
        ),
        (
            _doc(test="flat_line", tolerance=0, suspect_count=0),
            r"qc\.variables\.precipitation_rate\[1\]\.suspect_count: Input should be greater than or equal to 1 \(got 0\)",
        ),
        (
            _doc(test="spikes", suspect=1),
            r"qc\.variables\.precipitation_rate\[1\]: unknown test; valid tests are missing, physical_range, "
            r"climatology, spike, rate_of_change, flat_line, spatial \(got 'spikes'\)",
        ),
        (
            _doc(test="spike", suspect=1, treshold=3),
            r"qc\.variables\.precipitation_rate\[1\]: unknown key 'treshold'",
        ),
        (_doc(suspect=1), r"qc\.variables\.precipitation_rate\[1\]: each stage needs a 'test' key"),
        (
            _doc(test="spike", suspect=-1),
            r"qc\.variables\.precipitation_rate\[1\]\.suspect: Input should be greater than 0 \(got -1\)",
        ),
        (
            _doc(test="spatial", suspect_z=5, min_scale=1, min_valid=9),
            r"\[1\]\.min_valid: must be at most 8 \(the neighbours in a 3x3 window\) \(got 9\)",
        ),
        (
            _doc(test="climatology", record_max=[1.0] * 11),
            r"\[1\]\.record_max: needs 12 monthly values \(January first\), got 11",
        ),
        (
            _doc(test="rate_of_change", suspect_per_step=2, max_gap=2.5),
            r"\[1\]\.max_gap: Input should be a valid integer",
        ),
        (_doc(test="physical_range"), r"lists test 'physical_range' twice"),
        (
            {"variables": {"a": []}, "cross_variable": [{"a": "a", "b": "dew", "tolerance": 1}]},
            r"qc: .*cross_variable\[0\]\.b: 'dew' is not one of the variables of this QC config",
        ),
        (
            {"variables": {"a": []}, "cross_variable": [{"a": "a", "b": "a", "tolerance": 1}]},
            r"qc\.cross_variable\[0\]\.b: must name a different variable than a \('a'\)",
        ),
        ({"variables": {}, "mask_impossibles": True}, r"qc: unknown key 'mask_impossibles'"),
        (["not", "a", "mapping"], r"qc: expected a mapping"),
    ],
)
def test_bad_config_raises_at_load_naming_the_path(doc, match):
    with pytest.raises(QCConfigError, match=match):
        load_qc_config(doc)


def test_all_problems_reported_together():
    doc = {"variables": {"x": [{"test": "spike", "suspect": 0}, {"test": "flat_line", "tolerance": -1, "suspect_count": 2}]}}
    with pytest.raises(QCConfigError) as e:
        load_qc_config(doc)
    assert len(e.value.problems) == 2
    assert isinstance(e.value, ValueError)


def test_config_hash_canonical():
    a = load_qc_config({"variables": {"v": [{"test": "spike", "suspect": 3.0, "fail": 9.0}]}})
    b = load_qc_config({"variables": {"v": [{"fail": 9, "suspect": 3, "test": "spike"}]}})
    c = load_qc_config({"variables": {"v": [{"test": "spike", "suspect": 3.0, "fail": 9.5}]}})
    assert a.config_hash() == b.config_hash() != c.config_hash()
    assert len(a.config_hash()) == 64


# ------------------------------------------------------------------------------------------
# run_checks


def _dataset(chunks=None):
    t = np.datetime64("2021-06-30T20") + np.arange(12) * np.timedelta64(1, "h")  # crosses into July
    rng = np.random.default_rng(7)
    ta = (290 + rng.normal(0, 0.2, (12, 6, 7))).astype("float32")
    td = (ta - 4).astype("float32")
    ta[5, 2, 3] = 400.0  # impossible
    ta[5, 2, 4] = 297.0  # spike next to it, and a neighbour of the impossible value
    td[8, 4, 4] = ta[8, 4, 4] + 2.0  # dew point above air temperature
    ta[2, :, :] = np.nan  # missing slot
    ds = xr.Dataset(
        {"air_temperature": (("time", "y", "x"), ta), "dew_point_temperature": (("time", "y", "x"), td)},
        coords={"time": t, "y": np.arange(6), "x": np.arange(7)},
    )
    return ds.chunk(chunks) if chunks else ds


META = {
    "air_temperature": {
        "physical_range": (183.0, 333.0),
        "climatological_record": {"min": [243.0] * 12, "max": [295.0] * 5 + [296.5] * 7},
        "standard_name": "air_temperature",
    },
    # a catalog-like object, as forecast.catalog.Variable would be
    "dew_point_temperature": SimpleNamespace(
        physical_range=(173.0, 313.0),
        climatological_record=SimpleNamespace(min=[236.0] * 12, max=[301.0] * 12),
        standard_name="dew_point_temperature",
        long_name="Dew point",
    ),
}

CFG = {
    "variables": {
        "air_temperature": [
            {"test": "physical_range"},
            {"test": "climatology"},
            {"test": "spike", "suspect": 3.0, "fail": 50.0},
            {"test": "spatial", "suspect_z": 5.0, "min_scale": 0.5},
        ],
        "dew_point_temperature": [{"test": "physical_range"}],
    },
    "cross_variable": [
        {"a": "air_temperature", "b": "dew_point_temperature", "rule": "a_ge_b", "tolerance": 0.5, "flag": "b"}
    ],
}


def test_run_checks_known_flags():
    ds = _dataset()
    before = {k: v.values.tobytes() for k, v in ds.data_vars.items()}
    out = run_checks(ds, CFG, variables_meta=META)
    assert {k: v.values.tobytes() for k, v in ds.data_vars.items()} == before  # values untouched
    q, t = out["air_temperature_qc"].values, out["air_temperature_qc_tests"].values
    assert q.dtype == np.uint8 and t.dtype == np.uint32
    assert q[5, 2, 3] == F and t[5, 2, 3] == TestBit.PHYSICAL_RANGE | TestBit.CLIMATOLOGY
    # 297 on 1 July is beyond the July record (296.5) -> SUSPECT; a spike too; the impossible neighbour
    # was taken out of its neighbourhood (mask_impossible) so it still counts as isolated
    assert q[5, 2, 4] == S
    assert t[5, 2, 4] == TestBit.CLIMATOLOGY | TestBit.SPIKE | TestBit.SPATIAL
    assert (q[2] == M).all() and (t[2] == TestBit.MISSING).all()
    # cross rule flags only the dew point (flag: b)
    qd, tdm = out["dew_point_temperature_qc"].values, out["dew_point_temperature_qc_tests"].values
    assert qd[8, 4, 4] == S and tdm[8, 4, 4] == TestBit.CROSS_VARIABLE
    assert t[8, 4, 4] == 0
    # where the air temperature is impossible, the cross rule could not judge the dew point
    assert qd[5, 2, 3] == G
    assert (qd[2] == G).all()  # dew point present, air temperature missing: not evaluated -> GOOD
    n_flagged = int((q == S).sum() + (q == F).sum())
    assert n_flagged == 2


def test_run_checks_cf_attrs_and_hash():
    out = run_checks(_dataset(), CFG, variables_meta=META)
    a = out["air_temperature_qc"].attrs
    assert a["standard_name"] == "air_temperature status_flag"
    assert a["qc_config_hash"] == load_qc_config(CFG).config_hash() == out.attrs["qc_config_hash"]
    assert out["dew_point_temperature_qc"].attrs["long_name"] == "Aggregate quality flag of Dew point"
    tattrs = out["air_temperature_qc_tests"].attrs
    assert tattrs["qc_tests_run"] == "missing physical_range climatology spike spatial"
    assert "flag_masks" in tattrs
    assert out["dew_point_temperature_qc_tests"].attrs["qc_tests_run"].endswith("cross_variable")
    assert out["air_temperature_qc"].dims == ("time", "y", "x")
    np.testing.assert_array_equal(out["time"].values, _dataset()["time"].values)


@pytest.mark.parametrize("chunks", [{"time": 4, "y": 3, "x": 4}, {"time": 1, "y": 2, "x": 2}, {"time": 5}])
def test_run_checks_lazy_on_dask_and_equal_to_numpy(chunks, monkeypatch):
    ref = run_checks(_dataset(), CFG, variables_meta=META)
    out = run_checks(_dataset(chunks), CFG, variables_meta=META)
    for k in ref.data_vars:
        assert dask.is_dask_collection(out[k]), k
        np.testing.assert_array_equal(out[k].values, ref[k].values, err_msg=k)
    # slab-wise processing inside blocks gives the same answer
    from qc.checks import common

    monkeypatch.setattr(common, "SLAB_CELLS", 20)
    slabbed = run_checks(_dataset(chunks), CFG, variables_meta=META)
    for k in ref.data_vars:
        np.testing.assert_array_equal(slabbed[k].values, ref[k].values, err_msg=k)


def test_run_checks_dims_order_kept():
    ds = _dataset().transpose("y", "x", "time")
    out = run_checks(ds, CFG, variables_meta=META)
    assert out["air_temperature_qc"].dims == ("y", "x", "time")
    ref = run_checks(_dataset(), CFG, variables_meta=META)
    np.testing.assert_array_equal(out["air_temperature_qc"].transpose("time", "y", "x").values, ref["air_temperature_qc"].values)


def test_run_checks_without_mask_impossible():
    masked = run_checks(_dataset(), CFG, variables_meta=META)["air_temperature_qc_tests"].values
    cfg = {**CFG, "mask_impossible": False}
    raw = run_checks(_dataset(), cfg, variables_meta=META)["air_temperature_qc_tests"].values
    # with masking, the impossible 400 K is only judged by the value-by-value tests; without,
    # the neighbourhood tests see it too (and its neighbours see it in their neighbourhoods)
    assert masked[5, 2, 3] == TestBit.PHYSICAL_RANGE | TestBit.CLIMATOLOGY
    assert raw[5, 2, 3] == TestBit.PHYSICAL_RANGE | TestBit.CLIMATOLOGY | TestBit.SPIKE | TestBit.SPATIAL


def test_run_checks_gridded_reference():
    ds = _dataset()
    ref_max = np.full((12, 6, 7), np.nan)
    ref_max[6] = 291.0  # July: every cell's own record is 291
    meta = {**META, "air_temperature": {**META["air_temperature"], "reference": {"max": ref_max}}}
    cfg = {"variables": {"air_temperature": [{"test": "climatology"}], "dew_point_temperature": []}}
    out = run_checks(ds, cfg, variables_meta=meta)
    ta = ds["air_temperature"].values
    july = ds["time"].dt.month.values == 7
    q = out["air_temperature_qc"].values
    np.testing.assert_array_equal(q[july] == S, ta[july] > 291.0)
    lazy = run_checks(_dataset({"time": 5, "y": 4}), cfg, variables_meta=meta)
    np.testing.assert_array_equal(lazy["air_temperature_qc"].values, q)
    # a reference Dataset whose dims are in another order is aligned by name
    ref_ds = xr.Dataset({"max": (("month", "y", "x"), ref_max)}).transpose("month", "x", "y")
    meta_ds = {**META, "air_temperature": {**META["air_temperature"], "reference": ref_ds}}
    by_name = run_checks(ds, cfg, variables_meta=meta_ds)
    np.testing.assert_array_equal(by_name["air_temperature_qc"].values, q)


@pytest.mark.parametrize(
    "cfg, meta, match",
    [
        ({"variables": {"snow": []}}, META, r"qc\.variables\.snow: the dataset has no variable 'snow'"),
        (
            {"variables": {"air_temperature": [{"test": "physical_range"}]}},
            {},
            r"qc\.variables\.air_temperature\[0\]: physical_range needs low/high here or physical_range",
        ),
        (
            {"variables": {"air_temperature": [{"test": "missing"}, {"test": "climatology"}]}},
            {},
            r"qc\.variables\.air_temperature\[1\]: climatology needs record_min/record_max",
        ),
    ],
)
def test_run_checks_config_that_does_not_fit_the_dataset(cfg, meta, match):
    with pytest.raises(QCConfigError, match=match):
        run_checks(_dataset(), cfg, variables_meta=meta)


def test_run_checks_spatial_needs_two_dims():
    ds = xr.Dataset({"v": (("time",), np.arange(5.0))}, coords={"time": np.arange(5)})
    with pytest.raises(QCConfigError, match=r"qc\.variables\.v\[0\]: spatial needs two spatial dimensions"):
        run_checks(ds, {"variables": {"v": [{"test": "spatial", "suspect_z": 3, "min_scale": 1}]}}, variables_meta={})
    out = run_checks(ds, {"variables": {"v": [{"test": "spike", "suspect": 0.5}]}}, variables_meta={})
    np.testing.assert_array_equal(out["v_qc"].values, [G, G, G, G, G])


# ------------------------------------------------------------------------------------------
# format_errors: the one formatter for config files (QC sections, catalogs, model configs)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sizes: list[int] = []
    qc: QCConfig | None = None


def _errors(doc, **kw):
    with pytest.raises(ValidationError) as e:
        _Doc.model_validate(doc)
    return qc_config.format_errors(e.value, **kw)


def test_format_errors_source_path_message_value():
    got = _errors({"sizes": [1, "x"], "colour": "red"}, source="cat.yaml")
    assert got == [
        "cat.yaml: name: Field required",
        "cat.yaml: sizes[1]: Input should be a valid integer, unable to parse string as an integer (got 'x')",
        "cat.yaml: colour: unknown key",
    ]
    assert _errors({"name": "n", "colour": "red"}, key_in_path=False) == ["(top level): unknown key 'colour'"]
    assert _errors({"name": ["a"]}, root="doc") == ["doc.name: Input should be a valid string"]


def test_format_errors_through_an_embedded_qc_section():
    doc = {"name": "n", "qc": {"variables": {"v": [{"test": "spike", "suspect": 3.0, "fail": 1.0, "x": 0}, {}]}}}
    assert _errors(doc, source="cat.yaml") == [
        "cat.yaml: qc.variables.v[0].fail: must be greater than suspect (3.0) (got 1.0)",
        "cat.yaml: qc.variables.v[0].x: unknown key",
        "cat.yaml: qc.variables.v[1]: each stage needs a 'test' key naming one of missing, physical_range, "
        "climatology, spike, rate_of_change, flat_line, spatial",
    ]
