"""forecast.evaluation.report: files, byte-identical JSON on re-run, HTML content, one-screen summary."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from forecast.evaluation.metrics import Verifier
from forecast.evaluation.report import terminal_summary, verdict, write_report

LEADS = np.arange(1, 13) * np.timedelta64(5, "m")
T0 = np.datetime64("2026-07-15T12:00", "s")
METHODS = ("model", "persistence", "extrapolation", "sprog", "climatology")
PROVENANCE = {
    "dataset": "radar_precip",
    "variable": "precipitation_rate",
    "model": {"version": "v3", "stage": "candidate", "checkpoint_sha256": "ab" * 32, "architecture": "unet"},
    "observations": {"dataset": "radar_precip", "snapshot": "SNAP123", "revision_policy": "as-of init"},
    "qc": {"config_hash": "cfg456"},
    "catalog_hash": "cat789",
    "software": {"forecast": "0.1.0", "torch": None},
    "period": {"start": dt.datetime(2026, 7, 15, 12, tzinfo=dt.timezone.utc), "end": T0 + np.timedelta64(4, "h")},
}


@pytest.fixture(scope="module")
def hindcast():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    v = Verifier(LEADS, [0.5, 2.0, 5.0], [1, 3, 9], [1.0, 5.0])
    noise = {"model": 0.4, "persistence": 2.0, "extrapolation": 1.0, "sprog": 0.9, "climatology": 3.0}
    example = None
    for i in range(10):
        cy, cx = rng.uniform(4, 20, 2)
        obs = np.stack([10 * np.exp(-((yy - cy) ** 2 + (xx - cx - k) ** 2) / 18) for k in range(len(LEADS))])
        valid = np.ones(obs.shape, bool)
        valid[:, :2, :3] = False
        fields = {m: np.clip(obs + rng.normal(0, s, obs.shape), 0, None) for m, s in noise.items()}
        for m, f in fields.items():
            v.add(T0 + i * np.timedelta64(30, "m"), m, f, obs, valid)
        if i == 3:
            example = {
                "title": "most intense event",
                "init_time": T0 + 3 * np.timedelta64(30, "m"),
                "lead_time": LEADS[5],
                "obs": np.where(valid[5], obs[5], np.nan),
                "fields": {m: f[5] for m, f in fields.items()},
            }
    return v.summary(reference="persistence", compare=("model",), n_boot=200, block=2), example


def test_report_files_and_identical_json_bytes(hindcast, tmp_path):
    summary, example = hindcast
    cmd = "forecast hindcast radar_precip --model v3 --start 2026-07-15T12:00Z --end 2026-07-15T17:00Z"
    a = write_report(summary, tmp_path / "a", provenance=PROVENANCE, examples=[example], command=cmd)
    write_report(summary, tmp_path / "b", provenance=PROVENANCE, examples=[example], command=cmd)
    for key in ("json", "html"):
        assert (tmp_path / "a" / f"report.{key}").exists() and a[key].endswith(f"report.{key}")
    raw = (tmp_path / "a" / "report.json").read_bytes()
    assert raw == (tmp_path / "b" / "report.json").read_bytes()
    doc = json.loads(raw)
    assert doc["summary"] == summary
    assert doc["command"] == cmd
    assert doc["provenance"]["model"]["checkpoint_sha256"] == "ab" * 32
    assert doc["provenance"]["period"] == {"start": "2026-07-15T12:00:00Z", "end": "2026-07-15T16:00:00Z"}
    assert doc["examples"][0]["lead_time"] == 1800 and doc["examples"][0]["methods"] == sorted(METHODS)
    assert json.dumps(doc, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n" == raw.decode()
    names = {p.rsplit("/", 1)[-1] for p in a["figures"]}
    assert {"continuous.png", "csi_lead.png", "csi_threshold.png", "fss_window.png", "bootstrap.png"} <= names
    assert "example_1.png" in names
    for p in a["figures"]:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_html_has_methods_figures_provenance_and_verdict(hindcast, tmp_path):
    summary, example = hindcast
    out = write_report(summary, tmp_path, provenance=PROVENANCE, examples=[example], command="forecast hindcast x")
    page = open(out["html"], encoding="utf-8").read()
    for m in METHODS:
        assert m in page
    assert page.count("data:image/png;base64,") == len(out["figures"]) == 6
    assert "SNAP123" in page and "cfg456" in page and "model.checkpoint_sha256" in page
    assert "Verdict:" in page and "model vs persistence: RMSE lower at 12/12 leads" in page
    assert "forecast hindcast x" in page
    assert "&gt;=" in page  # the conventions table states the threshold operator


def test_terminal_summary_fits_one_screen(hindcast):
    summary, _ = hindcast
    text = terminal_summary(summary)
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 100
    for m in METHODS:
        assert m in text
    assert "CSI@0.5" in text and "FSS@1/3" in text and "*" in text
    many = dict(summary, methods={f"m{i:02d}": summary["methods"]["model"] for i in range(45)}, compare=[])
    assert len(terminal_summary(many).splitlines()) <= 40


def test_verdict_and_report_without_comparison(hindcast, tmp_path):
    summary, _ = hindcast
    bare = dict(summary, bootstrap={}, compare=[], reference=None)
    assert verdict(bare).startswith("No comparison")
    assert "model vs sprog" in verdict(summary)
    out = write_report(bare, tmp_path, provenance={})
    assert json.loads(open(out["json"]).read())["examples"] == []


# --- the probabilistic part -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prob_summary():
    from forecast.evaluation.probabilistic import ProbabilisticVerifier

    rng = np.random.default_rng(1)
    pv = ProbabilisticVerifier(LEADS[:3], [0.5, 5.0])
    for i in range(6):
        obs = rng.gamma(0.7, 2.5, (3, 16, 16))
        valid = np.ones(obs.shape, bool)
        ens = np.clip(obs[None] + rng.normal(0, 1.5, (4, *obs.shape)), 0, None)
        for m, p in {"steps": (ens[None] >= np.array([0.5, 5.0])[:, None, None, None, None]).mean(axis=1),
                     "blurry": np.full((2, *obs.shape), 0.3)}.items():
            pv.add(T0 + i * np.timedelta64(30, "m"), m, p, obs, valid, members=ens if m == "steps" else None)
    return pv.summary(reference="steps")


def test_report_carries_probabilistic_keys_tables_and_figures(hindcast, prob_summary, tmp_path):
    summary, example = hindcast
    paths = write_report({**summary, "probabilistic": prob_summary}, tmp_path, provenance=PROVENANCE,
                         examples=[example])
    doc = json.loads((tmp_path / "report.json").read_text())
    s = prob_summary["methods"]
    # method -> threshold -> lead minutes, the same numbers as summary.probabilistic
    assert set(doc["brier"]) == {"steps", "blurry"} and set(doc["brier"]["steps"]) == {"0.5", "5"}
    assert doc["brier"]["steps"]["5"]["10"] == s["steps"]["thresholds"]["5"]["brier"][1]
    assert doc["bss"]["blurry"]["0.5"]["15"] == s["blurry"]["thresholds"]["0.5"]["bss"][2]
    assert doc["bss_reference"]["reference"] == "steps"
    assert doc["bss_reference"]["scores"]["steps"]["0.5"]["5"] == 0.0
    rel = doc["reliability"]["blurry"]["0.5"]["5"]
    assert rel["n"][3] == 16 * 16 * 6 and sum(rel["n"]) == rel["n"][3]  # every p = 0.3 is in bin [0.3, 0.4)
    assert rel["ece"] == pytest.approx(abs(rel["obs_freq"][3] - 0.3))
    roc = doc["roc"]["steps"]["5"]["5"]
    assert roc["pod"][0] == 1.0 and roc["pod"][-1] == 0.0 and roc["auc"] == doc["auc"]["steps"]["5"]["5"] > 0.5
    assert doc["auc"]["blurry"]["5"]["5"] == pytest.approx(0.5)  # a constant forecast has no discrimination
    assert set(doc["crps"]) == {"steps"} and doc["crps"]["steps"]["5"] == s["steps"]["crps"][0]
    assert doc["summary"]["probabilistic"]["methods"].keys() == s.keys()
    names = {p.split("/")[-1] for p in paths["figures"]}
    assert {"brier_skill_lead.png", "reliability.png", "roc.png"} <= names
    html = (tmp_path / "report.html").read_text()
    assert "Probabilistic scores by lead time" in html and "BSS vs steps &gt;= 5" in html and "CRPS (fair)" in html


def test_report_without_probabilistic_block_has_no_probabilistic_keys(hindcast, tmp_path):
    summary, _ = hindcast
    write_report(summary, tmp_path, provenance=PROVENANCE)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert not {"brier", "reliability", "roc", "crps"} & set(doc)
    assert "Probabilistic scores" not in (tmp_path / "report.html").read_text()
