"""The promotion gate per the catalog's ``gate:``: references, deterministic scores and leads, Brier skill
requirements, and refusals that name the reference, score, lead and both values. Reports are built by
hand, reduced to what the gate reads (the hindcast tests run it on real reports)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from testkit import small_doc, write_catalog
from forecast.catalog import parse_catalog
from forecast.catalog.models import GateConfig, ProbabilisticRequirement
from forecast.errors import CatalogError
from forecast.registry.gate import check_promotion
from forecast.settings import Settings

LEADS = [300, 1800, 3600]  # 5, 30 and 60 min
SHA = "ab" * 32


@dataclass
class Rec:
    version: str
    dataset: str = "radar_precip"
    variable: str = "precipitation_rate"
    checkpoint_sha256: str = SHA


class FakeRegistry:
    """What check_promotion asks of the registry: the record, and the production model (none here)."""

    def get(self, version):
        return Rec(version)

    def production(self, dataset, variable):
        return None


def boot(better: bool, mine: float = 1.0, theirs: float = 1.2, *, csi: dict | None = None) -> dict:
    d = mine - theirs
    rmse = {"method": [mine] * 3, "reference": [theirs] * 3, "diff": [d] * 3,
            "lower": [d - 0.1] * 3, "upper": [d + 0.1] * 3, "better": [better] * 3}
    return {"rmse": rmse, "csi": csi or {}}


def csi_block(better: bool) -> dict:
    lo = 0.02 if better else -0.03
    return {"method": [0.5] * 3, "reference": [0.45] * 3, "diff": [0.05] * 3, "lower": [lo] * 3,
            "upper": [0.08] * 3, "better": [better] * 3}


def prob_block(brier: float, base_rate: float = 0.2) -> dict:
    return {"thresholds": {t: {"brier": [brier] * 3, "base_rate": [base_rate] * 3} for t in ("1", "10")}}


def report(references: dict, *, prob: dict | None = None) -> dict:
    summary = {"lead_time_s": LEADS, "thresholds": [1.0, 10.0], "methods": {"model": {"n_inits": 30}},
               "bootstrap": {"model": references}}
    if prob is not None:
        summary["probabilistic"] = {"lead_time_s": LEADS, "thresholds": [1.0, 10.0], "methods": prob}
    return {"summary": summary, "provenance": {
        "model": {"version": "v2", "checkpoint_sha256": SHA}, "dataset": "radar_precip",
        "variable": "precipitation_rate", "training_overlap": {"model": False},
        "fallbacks": {"model": {"count": 0, "share": 0.0}}}}


@pytest.fixture
def st(tmp_path, monkeypatch):
    for k in ("FORECAST_GATE_MIN_INITS", "FORECAST_GATE_KEY_LEADS_MINUTES", "FORECAST_GATE_MAX_FALLBACK_SHARE"):
        monkeypatch.delenv(k, raising=False)
    write_catalog(tmp_path / "catalogs", small_doc("radar_precip"))
    return Settings(home=tmp_path / "home", catalogs=tmp_path / "catalogs")


def judge(st, rep, **config):
    return check_promotion(st, FakeRegistry(), "v2", rep, config=GateConfig(**config))


GOOD = {"persistence": boot(True), "sprog": boot(True), "extrapolation": boot(True)}


def test_default_references_are_every_method_the_report_ran(st):
    d = judge(st, report(GOOD | {"climatology": boot(True)}))
    assert d.passed, d.reasons
    assert d.details["references"] == ["persistence", "sprog", "climatology", "extrapolation"]
    assert {(c["reference"], c["lead_minutes"]) for c in d.details["comparisons"]} >= {("climatology", 30),
                                                                                       ("extrapolation", 60)}
    # worse than climatology alone: refused, naming the reference, the score, the lead and both values
    d = judge(st, report(GOOD | {"climatology": boot(False, 1.3, 1.1)}))
    assert not d.passed
    assert d.reasons[0] == ("v2 is worse than climatology at +30 min: RMSE difference CI [0.1, 0.3] lies above 0 "
                            "(RMSE 1.3 against 1.1)")
    assert len(d.reasons) == 2 and "+60 min" in d.reasons[1]


def test_persistence_and_sprog_stay_required_by_default(st):
    d = judge(st, report({"persistence": boot(True)}))
    assert d.reasons == ("the report has no comparison of v2 with S-PROG; rerun the hindcast with it",)


def test_configured_references_and_leads(st):
    rep = report(GOOD | {"climatology": boot(False, 1.3, 1.1)})
    assert judge(st, rep, references=["persistence", "sprog"]).passed
    d = judge(st, rep, references=["climatology"], key_leads_minutes=[5])
    assert d.details["references"] == ["climatology"] and d.details["key_leads_minutes"] == [5]
    assert d.reasons == ("v2 is worse than climatology at +5 min: RMSE difference CI [0.1, 0.3] lies above 0 "
                         "(RMSE 1.3 against 1.1)",)
    assert judge(st, rep, references=["steps"]).reasons == (
        "the report has no comparison of v2 with STEPS; rerun the hindcast with it",)
    assert "no +45 min lead" in judge(st, rep, references=["persistence"], key_leads_minutes=[45]).reasons[0]


def test_csi_requirement(st):
    refs = {"persistence": boot(True, csi={"1": csi_block(True), "10": csi_block(False)}),
            "sprog": boot(True, csi={"1": csi_block(True), "10": csi_block(True)})}
    assert judge(st, report(refs), scores=["rmse", "csi"]).passed  # default: the lowest threshold, 1
    d = judge(st, report(refs), scores=["csi"], csi_thresholds=[10], key_leads_minutes=[30])
    assert d.reasons == ("v2 is not better than persistence at +30 min: CSI >= 10 difference CI [-0.03, 0.08] "
                         "includes 0 (CSI >= 10 0.5 against 0.45)",)
    assert judge(st, report(refs), scores=["csi"], csi_thresholds=[7]).reasons[0] == (
        "the report has no CSI at threshold 7 (its thresholds: 1, 10)")


def test_brier_skill_against_every_probabilistic_method_by_default(st):
    prob = {"model": prob_block(0.05), "steps": prob_block(0.04), "neighbourhood_persistence": prob_block(0.09)}
    d = judge(st, report(GOOD, prob=prob))
    assert not d.passed
    # worse than STEPS at both thresholds and both default key leads (30, 60): four refusals, one shown first
    assert d.reasons[0] == ("v2 is not better than STEPS in Brier score >= 1 at +30 min: 0.05 against 0.04 "
                            "(Brier skill -0.25, needs more than 0)")
    assert len(d.reasons) == 4 and all("STEPS" in r for r in d.reasons)
    comps = d.details["probabilistic_comparisons"]
    assert {c["reference"] for c in comps} == {"steps", "neighbourhood_persistence"}
    np_ = [c for c in comps if c["reference"] == "neighbourhood_persistence"][0]
    assert np_["better"] and np_["brier_skill"] == pytest.approx(1 - 0.05 / 0.09)
    # a deterministic candidate: nothing probabilistic is required by default
    assert judge(st, report(GOOD, prob={"steps": prob_block(0.04)})).passed


def test_configured_brier_requirements(st):
    prob = {"model": prob_block(0.05), "steps": prob_block(0.04)}
    req = [ProbabilisticRequirement(reference="climatology", thresholds=[10], leads_minutes=[60], min_skill=0.5)]
    d = judge(st, report(GOOD, prob=prob), probabilistic=req)
    # climatology: obar (1 - obar) = 0.16, skill 1 - 0.05 / 0.16 = 0.6875 > 0.5
    assert d.passed, d.reasons
    assert d.details["probabilistic_comparisons"][0]["brier_skill"] == pytest.approx(0.6875)
    req = [ProbabilisticRequirement(reference="steps", thresholds=[10], min_skill=-0.3)]
    assert judge(st, report(GOOD, prob=prob), probabilistic=req).passed  # -0.25 > -0.3
    assert judge(st, report(GOOD, prob=prob), probabilistic=[]).passed  # switched off
    # required but the report has no probabilities of the candidate
    d = judge(st, report(GOOD, prob={"steps": prob_block(0.04)}), probabilistic=req)
    assert d.reasons[0].startswith("the report has no probabilistic scores of v2, which the gate of this dataset "
                                   "requires")
    d = judge(st, report(GOOD, prob=prob), probabilistic=[ProbabilisticRequirement(reference="local_probability")])
    assert d.reasons[0].startswith("the report has no probabilistic scores of local_probability")


def test_gate_config_comes_from_the_catalog(st, tmp_path):
    doc = small_doc("radar_precip")
    hash_before = parse_catalog(doc, "x.yaml").hash
    doc["gate"] = {"references": ["persistence"], "key_leads_minutes": [5],
                   "probabilistic": [{"reference": "steps", "thresholds": [1.0]}]}
    cat = parse_catalog(doc, "x.yaml")
    assert cat.gate.references == ["persistence"] and cat.gate.probabilistic[0].reference == "steps"
    assert cat.hash == hash_before  # promotion rules are not data
    write_catalog(tmp_path / "catalogs", doc)
    d = check_promotion(st, FakeRegistry(), "v2", report(GOOD, prob={"model": prob_block(0.05),
                                                                     "steps": prob_block(0.04)}))
    assert d.details["references"] == ["persistence"] and d.details["key_leads_minutes"] == [5]
    assert d.reasons == ("v2 is not better than STEPS in Brier score >= 1 at +5 min: 0.05 against 0.04 "
                         "(Brier skill -0.25, needs more than 0)",)


@pytest.mark.parametrize(("gate", "match"), [
    ({"refrences": ["persistence"]}, "refrences"),
    ({"scores": ["mse"]}, "scores"),
    ({"key_leads_minutes": [0]}, "key_leads_minutes"),
    ({"probabilistic": [{"thresholds": [1]}]}, "reference"),
])
def test_bad_gate_config_is_a_catalog_error(gate, match):
    doc = small_doc("radar_precip") | {"gate": gate}
    with pytest.raises(CatalogError, match=match):
        parse_catalog(doc, "x.yaml")
