"""The hindcast: as-of inputs (no leakage), QC-aware verification, resume, determinism, the promotion gate,
the CLI. One small world (24 x 32 cells, rain advected one cell per 5-minute step, so extrapolation-like
forecasts are right and persistence is wrong) shared by the module; a tiny model trained on its first
two hours."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from testkit import small_doc, write_catalog, trains_model
from forecast.catalog import parse_catalog
from forecast.cli import app
from forecast.errors import BadInputError
from forecast.ingest.batch import ingest
from forecast.quality import ReviewDecision, run_qc, write_decisions
from forecast.settings import Settings
from forecast.stores import ObservationStore
from forecast.timeutil import to_epoch
from ncfiles import write_nc

P = "precipitation_rate"
T0 = datetime(2026, 7, 15, 8, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
TRAIN_END = T0 + timedelta(hours=2) - STEP  # 09:55: the model and the climatology learn up to here
N_SLOTS = 48  # 08:00 .. 11:55
REVISED = datetime(2026, 7, 15, 10, 30, tzinfo=timezone.utc)  # preliminary at 10:30, final at 10:45
LATE = datetime(2026, 7, 15, 11, 0, tzinfo=timezone.utc)  # arrives at 11:12
LATE_AT = LATE + timedelta(minutes=12)
BAD_TIME = datetime(2026, 7, 15, 10, 35, tzinfo=timezone.utc)  # a FAIL value and a rejected value
EXTREME_TIME = datetime(2026, 7, 15, 10, 40, tzinfo=timezone.utc)  # an accepted record extreme
FAIL_CELL, REJECTED_CELL, EXTREME_CELL = (3, 3), (12, 20), (14, 22)
PLANT = 40.0  # added to a block of the final revision of REVISED


def truth(t: datetime, ny: int = 24, nx: int = 32) -> np.ndarray:
    """Rain cells moving east one cell per step: f(y, x - s), s = steps since T0 (new cells keep coming)."""
    s = (t - T0) // STEP
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    rng = np.random.default_rng(5)
    out = np.zeros((ny, nx))
    for k in range(40):
        cy, cx = rng.uniform(2, ny - 2), -12.0 * k + rng.uniform(0, 10) + nx
        peak, r = rng.uniform(5, 70), rng.uniform(1.5, 3.5)
        out = np.maximum(out, peak * np.exp(-((yy - cy) ** 2 + (xx - (cx + s)) ** 2) / (2 * r * r)))
    out[out < 0.1] = 0.0
    return out.astype("float32")


@pytest.fixture(scope="module")
@trains_model
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hindcast")
    doc = small_doc("radar_precip")
    # the model trained here (seconds) has the probabilistic head, not meant to beat the probabilistic baselines:
    # these tests gate on the deterministic scores (the probabilistic gate is tested in tests/forecast/registry)
    doc["gate"] = {**doc.get("gate", {}), "probabilistic": []}
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    store = ObservationStore(tmp / "home" / "observations.icechunk")
    times = [T0 + i * STEP for i in range(N_SLOTS)]
    files = {}
    for t in times:
        f = truth(t)
        if t == BAD_TIME:
            f[FAIL_CELL] = 600.0  # beyond the physical range: FAIL
            f[REJECTED_CELL] = 45.0  # an ordinary-looking value an operator rejects
        if t == EXTREME_TIME:
            f[EXTREME_CELL] = 300.0  # beyond July's record of 250: SUSPECT, then accepted as real
        files[t] = write_nc(tmp / "feed" / f"radar_{t:%Y%m%dT%H%M}.nc", cat, t, {P: f})
    # the training period as one backfill, known before the hindcast; then a live feed, slot by slot
    ingest(cat, [files[t] for t in times if t <= TRAIN_END], store=store, available_at=TRAIN_END, scheduler="sync")
    for t in times:
        if t > TRAIN_END and t != LATE:
            ingest(cat, [files[t]], store=store, available_at=t, scheduler="sync")
    ingest(cat, [files[LATE]], store=store, available_at=LATE_AT, scheduler="sync")
    final = truth(REVISED)
    final[8:16, 8:16] += PLANT
    ingest(cat, [write_nc(tmp / "revised" / "radar_rev.nc", cat, REVISED, {P: final})], store=store,
           available_at=REVISED + timedelta(minutes=15), scheduler="sync")
    run_qc(cat, store=store)
    cells = lambda t, c: np.array([[to_epoch(t), *c]])  # noqa: E731
    write_decisions(cat, [ReviewDecision(1, P, cells(BAD_TIME, REJECTED_CELL), accepted=False),
                          ReviewDecision(2, P, cells(EXTREME_TIME, EXTREME_CELL), accepted=True)], store=store)

    env = {"FORECAST_HOME": str(tmp / "home"), "FORECAST_CATALOGS": str(tmp / "catalogs"),
           "FORECAST_GATE_MIN_INITS": "8", "FORECAST_GATE_KEY_LEADS_MINUTES": "[5, 15]"}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    mp.delenv("FORECAST_DATABASE_URL", raising=False)
    mp.delenv("FORECAST_MODELS", raising=False)
    from forecast.registry.training import train_model

    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"inputs": 3, "leads": 3, "network": {"base_channels": 4, "depth": 2},
                                   "training": {"max_epochs": 1, "samples_per_epoch": 8, "patch": 16,
                                                "batch_size": 4, "max_val_windows": 2}}))
    st = Settings()
    v1 = train_model(st, cat.id, P, config_path=cfg, start=T0, end=TRAIN_END, by="test")
    assert v1["version"] == "v1"
    yield {"tmp": tmp, "cat": cat, "store": store, "settings": st}
    mp.undo()


@pytest.fixture
def st(world, monkeypatch):
    for k, v in {"FORECAST_HOME": str(world["tmp"] / "home"), "FORECAST_CATALOGS": str(world["tmp"] / "catalogs"),
                 "FORECAST_GATE_MIN_INITS": "8", "FORECAST_GATE_KEY_LEADS_MINUTES": "[5, 15]"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FORECAST_DATABASE_URL", raising=False)
    monkeypatch.delenv("FORECAST_MODELS", raising=False)
    return Settings()


@pytest.fixture
def no_figures(monkeypatch):
    """Report figures cost seconds each; the numbers are what most tests check."""
    import forecast.evaluation.report as report

    monkeypatch.setattr(report, "_figures", lambda summary, examples: [])


def _at(hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 7, 15, h, m, tzinfo=timezone.utc)


def _key_numbers(summary: dict) -> dict:
    return {m: (s["n_inits"], s["continuous"], s["categorical"], s["fss"]) for m, s in summary["methods"].items()}


# --------------------------------------------------------------------------------------------------


def test_leakage_guard_and_qc_aware_verification(st, world, tmp_path, monkeypatch, no_figures):
    """Inputs as of the init (preliminary revision, late slot missing); verification on the latest
    revision with FAIL and rejected values excluded and the accepted extreme included."""
    from forecast.evaluation.hindcast import run_hindcast
    from forecast.nowcast.forecaster import Forecaster
    from forecast.evaluation import Verifier

    seen_inputs: dict = {}
    produce = Forecaster.produce

    def spy_produce(self, obs, init, *, as_of=None):
        seen_inputs[(to_epoch(init), self.method or "model")] = obs.copy(deep=True)
        assert as_of == init
        return produce(self, obs, init, as_of=as_of)

    added: dict = {}
    add = Verifier.add

    def spy_add(self, init_time, method, fcst, obs, valid):
        added[(int(np.datetime64(init_time, "s").astype("int64")), method)] = (np.array(obs), np.array(valid))
        return add(self, init_time, method, fcst, obs, valid)

    monkeypatch.setattr(Forecaster, "produce", spy_produce)
    monkeypatch.setattr(Verifier, "add", spy_add)
    res = run_hindcast(st, "radar_precip", model="v1", start=_at("10:30"), end=_at("11:15"), every="15min",
                       baselines=("persistence", "climatology"), scheduler="sync", out=tmp_path / "h", n_boot=50)
    assert res["inits"] == {"requested": 4, "verified": 4, "skipped": 0, "resumed": 0, "run_now": 4}

    # revised slot: at init 10:30 the inputs hold the preliminary value (revision 0), not the final one
    inp = seen_inputs[(to_epoch(REVISED), "model")]
    last = inp[P].sel(time=np.datetime64(REVISED.replace(tzinfo=None), "ns"))
    np.testing.assert_array_equal(last.values, truth(REVISED))
    assert int(inp[f"{P}_revision"].sel(time=np.datetime64(REVISED.replace(tzinfo=None), "ns"))) == 0
    # the same for every method at that init (one as-of read shared by all)
    np.testing.assert_array_equal(seen_inputs[(to_epoch(REVISED), "persistence")][P].values, inp[P].values)

    # late slot: at init 11:00 it had not arrived (missing); at 11:15 it is there
    at_late = seen_inputs[(to_epoch(LATE), "model")]
    late64 = np.datetime64(LATE.replace(tzinfo=None), "ns")
    assert np.isnan(at_late[P].sel(time=late64).values).all()
    assert int(at_late[f"{P}_revision"].sel(time=late64)) == -1
    later = seen_inputs[(to_epoch(_at("11:15")), "model")]
    assert np.isfinite(later[P].sel(time=late64).values).all()

    # verification: FAIL and rejected values at 10:35 (lead 1 of init 10:30) excluded, the accepted extreme at
    obs, valid = added[(to_epoch(REVISED), "model")]
    # 10:40 (lead 2) included, every method on the same mask
    assert not valid[0][FAIL_CELL] and not valid[0][REJECTED_CELL]
    assert valid[1][EXTREME_CELL] and obs[1][EXTREME_CELL] == 300.0
    assert valid[0][REJECTED_CELL[0], REJECTED_CELL[1] + 2]
    for m in ("persistence", "climatology"):
        np.testing.assert_array_equal(added[(to_epoch(REVISED), m)][1], valid)

    prov = res["provenance"]
    assert prov["observations"]["snapshot"] == world["store"].head()
    assert prov["model"]["version"] == "v1" and len(prov["model"]["checkpoint_sha256"]) == 64
    assert "as-of read at each init time" in prov["revision_policy"] and prov["qc"]["config_hash"]
    assert prov["climatology"]["fitted_on"][1] <= "2026-07-15T09:55:00Z"  # training data, before the start
    assert prov["training_overlap"] == {"model": False}
    s = res["summary"]["methods"]["model"]
    assert s["valid_fraction"][0] < 1.0 and s["continuous"]["n"][0] > 0


def test_verification_uses_the_final_revision(st, world, tmp_path, no_figures, monkeypatch):
    """An init whose lead verifies the revised slot is verified against the final (planted) value."""
    from forecast.evaluation.hindcast import run_hindcast
    from forecast.evaluation import Verifier

    added = {}
    add = Verifier.add

    def spy_add(self, init_time, method, fcst, obs, valid):
        added[method] = np.array(obs)
        return add(self, init_time, method, fcst, obs, valid)

    monkeypatch.setattr(Verifier, "add", spy_add)
    run_hindcast(st, "radar_precip", model="v1", start=_at("10:25"), end=_at("10:25"),
                 baselines=("persistence",), scheduler="sync", out=tmp_path / "h", n_boot=10)
    np.testing.assert_allclose(added["model"][0][8:16, 8:16], truth(REVISED)[8:16, 8:16] + PLANT)


def test_resume_after_interruption_gives_the_same_numbers(st, world, tmp_path, no_figures):
    from forecast.evaluation.hindcast import run_hindcast

    kw = dict(model="v1", start=_at("10:00"), end=_at("11:00"), every="10min", baselines=("persistence",),
              scheduler="sync", n_boot=100, batch_size=2)
    whole = run_hindcast(st, "radar_precip", out=tmp_path / "whole", **kw)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done, total):
        if done >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_hindcast(st, "radar_precip", out=tmp_path / "cut", progress=stop_after_first_batch, **kw)
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert len(state["verifier"]["methods"]["model"]["per_init"]["init_time"]) == 2
    assert not (tmp_path / "cut" / "report.json").exists()

    resumed = run_hindcast(st, "radar_precip", out=tmp_path / "cut", **kw)
    assert resumed["inits"]["resumed"] == 2 and resumed["inits"]["run_now"] == 5
    assert resumed["summary"] == whole["summary"]

    with pytest.raises(BadInputError, match="holds a hindcast with other arguments.*every_s"):
        run_hindcast(st, "radar_precip", out=tmp_path / "cut", **{**kw, "every": "5min"})


def test_rerun_gives_identical_numbers(st, world, tmp_path):
    """Same command, same snapshots -> identical report.json numbers (threads, all baselines, figures)."""
    from forecast.evaluation.hindcast import run_hindcast

    kw = dict(model="v1", start=_at("10:00"), end=_at("10:50"), every="10min", n_boot=200)
    a = run_hindcast(st, "radar_precip", out=tmp_path / "a", **kw)
    run_hindcast(st, "radar_precip", out=tmp_path / "b", scheduler="sync", **kw)
    ra = json.loads((tmp_path / "a" / "report.json").read_text())
    rb = json.loads((tmp_path / "b" / "report.json").read_text())
    assert ra["summary"] == rb["summary"] and ra["provenance"] == rb["provenance"]
    assert set(a["summary"]["methods"]) == {"model", "persistence", "extrapolation", "sprog", "climatology"}
    assert (tmp_path / "a" / "report.html").exists() and ra["examples"][0]["obs_max"] >= 60
    assert {"continuous.png", "csi_threshold.png", "fss_window.png", "example_1.png"} <= {
        p.split("/")[-1] for p in a["report"]["figures"]}
    # the model beats persistence on advected rain
    assert all(a["summary"]["bootstrap"]["model"]["persistence"]["rmse"]["better"])


def _cli(*args: str, code: int = 0) -> dict:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def test_cli_json_and_bad_inputs(st, world, no_figures):
    doc = _cli("hindcast", "radar_precip", "--model", "v1", "--start", "2026-07-15T10:00Z", "--end",
               "2026-07-15T10:20Z", "--every", "10min", "--baselines", "persistence", "--n-boot", "20")
    assert set(doc) >= {"report", "summary", "verdict", "inits", "provenance"}
    assert doc["report"].endswith("hindcasts/radar_precip-v1-20260715T1000Z-20260715T1020Z/report.json")
    assert doc["inits"]["verified"] == 3 and "model vs persistence" in doc["verdict"]
    base = ["hindcast", "radar_precip", "--start", "2026-07-15T10:00Z", "--end", "2026-07-15T10:20Z"]
    assert "known versions: v1" in _cli(*base, "--model", "v9", code=2)["error"]
    bad = _cli("hindcast", "radar_precip", "--model", "v1", "--start", "2026-07-15T11:00Z", "--end",
               "2026-07-15T10:00Z", code=2)
    assert bad["error"] == "the start 2026-07-15T11:00:00Z is after the end 2026-07-15T10:00:00Z (option --start)"
    empty = _cli("hindcast", "radar_precip", "--model", "v1", "--start", "2026-07-16T10:00Z", "--end",
                 "2026-07-16T11:00Z", "--baselines", "persistence", code=2)
    assert empty["error"].startswith("no init time between 2026-07-16T10:00:00Z and 2026-07-16T11:00:00Z could be "
                                     "verified")
    assert "not a multiple" in _cli(*base, "--model", "v1", "--every", "7min", code=2)["error"]
    assert "unknown or repeated baseline" in _cli(*base, "--model", "v1", "--baselines", "magic", code=2)["error"]


# --------------------------------------------------------------------------------------------------
# the promotion gate


def _register_garbage(reg, tmp_path, base_version: str) -> str:
    """A deliberately worse model: the trained checkpoint with noise on the output head."""
    import torch

    from forecast.registry.store import RECORD_FIELDS

    base = reg.get(base_version)
    ckpt = torch.load(reg.checkpoint_path(base_version), map_location="cpu", weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for k, v in ckpt["state_dict"].items():
        if "head" in k:
            ckpt["state_dict"][k] = v + 3.0 * torch.randn(v.shape, generator=gen)
    path = tmp_path / "garbage.ckpt"
    torch.save(ckpt, path)
    doc = base.to_json()
    record = {k: doc[k] for k in RECORD_FIELDS} | {"training": base.extra["training"]}
    return reg.register(dataset=base.dataset, variable=base.variable, checkpoint=path, config=base.config,
                        record=record, by="test").version


def test_gate_accepts_a_better_model_and_refuses_a_worse_one(st, world, tmp_path, no_figures):
    from forecast.registry.gate import check_promotion
    from forecast.registry.store import ModelRegistry

    hind = ["hindcast", "radar_precip", "--start", "2026-07-15T10:00Z", "--end", "2026-07-15T11:30Z",
            "--every", "10min", "--baselines", "persistence,sprog", "--n-boot", "300"]
    # a report over too few inits, and without S-PROG: refused, saying both
    short = _cli("hindcast", "radar_precip", "--model", "v1", "--start", "2026-07-15T10:00Z", "--end",
                 "2026-07-15T10:20Z", "--every", "10min", "--baselines", "persistence", "--n-boot", "20",
                 "--out", str(tmp_path / "short"))
    refused = _cli("models", "promote", "v1", "--by", "ana", "--reason", "r", "--report", short["report"], code=2)
    assert refused["error"] == ("promotion of v1 refused: the hindcast of v1 covers 3 init times, fewer than the 8 "
                                "required; the report has no comparison of v1 with S-PROG; rerun the hindcast with it")
    # the first model, on an empty registry: gated against the baselines alone
    _cli(*hind, "--model", "v1")
    promoted = _cli("models", "promote", "v1", "--by", "ana", "--reason", "beats the baselines")
    change = promoted["history"][-1]
    assert promoted["stage"] == "production" and change["override"] is False
    rep = change["report"]
    assert rep["gate"]["passed"] and rep["gate"]["references"] == ["persistence", "sprog"]
    assert rep["gate"]["n_inits"] == 10 and len(rep["sha256"]) == 64 and rep["path"].endswith("report.json")
    assert {(c["reference"], c["lead_minutes"]) for c in rep["gate"]["comparisons"]} == {
        ("persistence", 5), ("sprog", 5), ("persistence", 15), ("sprog", 15)}

    with ModelRegistry(st.db_url, st.models_dir) as reg:
        worse = _register_garbage(reg, tmp_path, "v1")
        # a report of v1 is no report of v2
        v1_report = json.loads(next((st.home / "hindcasts").glob("*v1*/report.json")).read_text())
        d = check_promotion(st, reg, worse, v1_report)
        assert not d.passed and d.reasons[0] == f"the report is a hindcast of model v1, not of {worse}"

    out = _cli(*hind, "--model", worse)
    assert out["provenance"]["production"]["version"] == "v1"  # the production model ran beside it
    refused = _cli("models", "promote", worse, "--by", "ana", "--reason", "r", code=2)
    assert refused["error"].startswith(f"promotion of {worse} refused: {worse} is worse than the production model v1 "
                                       "at +5 min: RMSE difference CI [")
    assert not refused["gate"]["passed"] and "production" in refused["gate"]["references"]

    # --override promotes anyway and is recorded as such, with the failed gate
    over = _cli("models", "promote", worse, "--by", "ben", "--reason", "emergency test", "--override")
    last = over["history"][-1]
    assert last["override"] is True and last["report"]["gate"]["passed"] is False


def test_distributed_scheduler_gives_the_same_numbers(st, world, tmp_path, no_figures):
    """`--scheduler ADDRESS`: the tasks run on a dask.distributed cluster, with the same numbers."""
    from distributed import LocalCluster

    from forecast.evaluation.hindcast import run_hindcast

    kw = dict(model="v1", start=_at("10:00"), end=_at("10:20"), every="10min", baselines=("persistence",), n_boot=50)
    local = run_hindcast(st, "radar_precip", out=tmp_path / "local", scheduler="sync", **kw)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        remote = run_hindcast(st, "radar_precip", out=tmp_path / "remote", scheduler=cluster.scheduler_address, **kw)
    assert remote["summary"] == local["summary"]


# --------------------------------------------------------------------------------------------------
# probabilistic verification (the catalog names thresholds 0.1, 1, 5, 10, 30 mm/h)


def test_probabilistic_methods_are_verified_and_resume(st, world, tmp_path, no_figures):
    from forecast.evaluation.hindcast import run_hindcast
    from forecast.nowcast import PROBABILISTIC_BASELINES

    kw = dict(model="v1", start=_at("10:00"), end=_at("10:30"), every="10min", baselines=("persistence",),
              scheduler="sync", n_boot=50, batch_size=2)
    whole = run_hindcast(st, "radar_precip", out=tmp_path / "whole", **kw)
    prob = whole["summary"]["probabilistic"]
    # the learned model has the probabilistic head (the catalog has thresholds): verified beside the baselines
    # (with the production model, when an earlier test promoted one)
    assert set(PROBABILISTIC_BASELINES) | {"model"} <= set(prob["methods"]) <= set(PROBABILISTIC_BASELINES) | {
        "model", "production"}
    assert prob["thresholds"] == [0.1, 1.0, 5.0, 10.0, 30.0] and prob["reference"] == "steps"
    for m, s in prob["methods"].items():
        assert s["n_inits"] == 4 and s["n"][0] > 0
        assert 0 <= s["thresholds"]["1"]["brier"][0] <= 1
    assert prob["methods"]["steps"]["crps"][0] > 0 and prob["methods"]["local_probability"]["crps"] is None
    # on rain advected one cell per step, the motion-aware probabilities beat neighbourhood persistence
    bss = {m: prob["methods"][m]["thresholds"]["1"]["bss"][0] for m in prob["methods"]}
    assert bss["local_probability"] > bss["neighbourhood_persistence"]
    doc = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert doc["brier"]["steps"]["5"]["5"] == prob["methods"]["steps"]["thresholds"]["5"]["brier"][0]
    assert set(doc["reliability"]["local_probability"]["0.1"]) == {"5", "10", "15"}
    assert doc["roc"]["neighbourhood_persistence"]["30"]["15"]["cutoffs"][:2] == [0.0, 0.05]
    assert doc["provenance"]["settings"]["probabilistic_methods"] == list(PROBABILISTIC_BASELINES)
    assert "steps" in doc["provenance"]["methods"]

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done, total):
        if done >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_hindcast(st, "radar_precip", out=tmp_path / "cut", progress=stop_after_first_batch, **kw)
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert len(state["prob_verifier"]["methods"]["steps"]["per_init"]["init_time"]) == 2
    resumed = run_hindcast(st, "radar_precip", out=tmp_path / "cut", **kw)
    assert resumed["inits"]["resumed"] == 2 and resumed["summary"] == whole["summary"]
    # switching probabilistic verification off is another set of arguments: not resumed into
    with pytest.raises(BadInputError, match="other arguments.*probabilistic"):
        run_hindcast(st, "radar_precip", out=tmp_path / "cut", probabilistic=False, **kw)


def test_no_probabilistic_flag_skips_them(st, world, no_figures, tmp_path):
    doc = _cli("hindcast", "radar_precip", "--model", "v1", "--start", "2026-07-15T10:00Z", "--end",
               "2026-07-15T10:10Z", "--every", "10min", "--baselines", "persistence", "--n-boot", "20",
               "--no-probabilistic", "--out", str(tmp_path / "h"))
    assert "probabilistic" not in doc["summary"]
    report = json.loads((tmp_path / "h" / "report.json").read_text())
    assert "brier" not in report and report["provenance"]["settings"]["probabilistic_methods"] == []


def test_probabilistic_baselines_by_variable():
    from forecast.evaluation.references import probabilistic_baselines
    from forecast.nowcast import PROBABILISTIC_BASELINES

    cat = parse_catalog(small_doc("radar_precip"), "x.yaml")
    assert probabilistic_baselines(cat, P) == PROBABILISTIC_BASELINES
    doc = small_doc("radar_precip")
    var = doc["variables"][P]
    var.update(standard_name="air_temperature", long_name="Air temperature", units="K", accepted_units=["K"],
               physical_range=[180.0, 340.0], thresholds=[273.15, 303.15])
    var.pop("climatological_record", None)
    doc["variables"] = {"t2m": var}
    doc.pop("qc", None)
    cat = parse_catalog(doc, "x.yaml")
    assert probabilistic_baselines(cat, "t2m") == ("neighbourhood_persistence",)
