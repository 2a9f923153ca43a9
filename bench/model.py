"""The nowcast model against its baselines on the demo dataset's held-out period.

    python bench/model.py            # the demo's radar day, default model config
    python bench/model.py --quick    # one short epoch and 6 inits (CI smoke, a few minutes)
    python bench/model.py --home DIR # reuse a FORECAST_HOME that holds the demo data (else a scratch one)

Steps:

1. the demo dataset (24 h of 5-minute radar, 256 x 256, planted faults, ingested in feed order and QC'd,
   exactly as ``forecast demo`` builds it) unless ``--home`` already holds it;
2. training with the default config (or the quick one) through ``forecast.registry.training.train_model``:
   training samples/s on this CPU (the model registered as a candidate; a model already trained on the
   same snapshot and config is reused and its recorded figures are shown);
3. the held-out period (the demo's last 6 hours, after the training period; else the validation slots
   after the gap): for inits every
   ``--every`` minutes, forecasts through ``forecast.predict.Forecaster.produce`` (the code path of
   ``forecast predict``) by the model, persistence, Lucas-Kanade extrapolation and S-PROG, each from the
   same as-of inputs, verified with ``forecast.verify.Verifier`` against the QC-usable observations;
4. inference seconds per full-grid forecast (model: median over inits, checkpoint loaded once);
5. when the model has the probabilistic head (the catalog's thresholds): on the same inits, exceedance
   probabilities of the model (one pass with its detection product, ``LearnedNowcaster.predict_both``),
   STEPS and the local Lagrangian probability at 1 and 10 mm/h, verified with
   ``forecast.evaluation.ProbabilisticVerifier`` (Brier score, BSS against climatology and STEPS, ECE);
   frequency bias and CSI of the detection product beside the mean forecast and S-PROG.

Targets: model RMSE at +60 min at least 20% below persistence; model CSI at 1 mm/h above S-PROG at every
lead; full-grid model forecast under 1 s on CPU. A GPU epoch (bf16-mixed) is reported when one exists.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Table, median, scratch_dir  # noqa: E402

DATASET, VAR = "radar_precip", "precipitation_rate"
LEADS_SHOWN = (15, 30, 60)


def build_demo_data(settings) -> None:
    """Samples -> ingest -> QC as the demo does (skipped when the store already holds the dataset)."""
    from rich.console import Console

    from forecast.stores import store_for

    store = store_for(settings)
    if store.exists():
        from forecast.stores import dataset_summary

        try:
            if dataset_summary(store, DATASET)["slots_filled"] > 200:
                return
        except Exception:  # noqa: BLE001 - not there yet
            pass
    from forecast.cli.demo_data import backfill, qc_and_review, sample_for

    # the demo's data steps for the radar dataset (run_demo also runs the live service, not wanted here)
    say = Console(file=open(os.devnull, "w")).print
    sample, manifest = sample_for(settings, DATASET, 42, say)
    backfill(settings, DATASET, sample, until=None, seed=42, say=say)
    qc_and_review(settings, DATASET, manifest, say)


def _train_end(settings):
    """The demo's training period: the first 18 hours (the rest is held out)."""
    from datetime import timedelta

    from forecast.cli.demo import DEMO_START, TRAIN_HOURS

    return DEMO_START[DATASET] + timedelta(hours=TRAIN_HOURS) - timedelta(minutes=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--every", type=int, default=None, help="Minutes between hindcast inits (default 15; quick 45).")
    ap.add_argument("--config", type=Path, default=None, help="A model config YAML instead of the default.")
    args = ap.parse_args()
    with scratch_dir("bench-model-") as tmp:
        home = args.home or tmp
        run(home, quick=args.quick, every=args.every or (45 if args.quick else 15), config=args.config)


def run(home: Path, *, quick: bool, every: int, config: Path | None = None) -> None:
    import yaml

    from forecast.catalog import get_catalog
    from forecast.cli.demo import QUICK_MODEL, trained_on
    from forecast.model.config import parse_model_config
    from forecast.registry.training import train_model
    from forecast.nowcast.forecaster import Forecaster
    from forecast.nowcast.predict import read_inputs
    from forecast.registry.store import ModelRegistry
    from forecast.settings import Settings
    from forecast.stores import open_observations, store_for
    from forecast.evaluation import Verifier
    from qc.flags import usable_mask

    repo = Path(__file__).resolve().parents[1]
    st = Settings(home=home, catalogs=repo / "catalogs")
    st.home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_demo_data(st)
    print(f"demo data ready in {time.perf_counter() - t0:.0f} s ({st.home})")
    store = store_for(st)
    snapshot = store.head()
    from forecast.model.config import load_model_config

    cfg = load_model_config(config) if config else parse_model_config(QUICK_MODEL if quick else {})
    cfg_path = st.home / "bench-model.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    reg = ModelRegistry(st.db_url, st.models_dir)
    same = trained_on(reg, DATASET, VAR, snapshot, cfg)
    if same is not None:
        doc = same.to_json()
        training = same.extra.get("training", {})
        print(f"reusing model {doc['version']} trained on this snapshot with this config")
    else:
        doc = train_model(st, DATASET, VAR, config_path=cfg_path, by="bench", end=_train_end(st))
        training = doc["training"]
    version = doc["version"]
    t = Table(["training", "value"], title=f"\nmodel {version}: training on CPU ({os.cpu_count()} cores)")
    for key in ("epochs", "seconds", "samples_per_second", "device", "train_windows", "val_windows", "gap_slots"):
        t.add([key, training.get(key)])
    head = training.get("probabilistic")
    if head:
        t.add(["head calibration windows", head["train_windows"]])
        t.add(["head calibration seconds", head.get("seconds")])
        for thr, row in head["train"].items():
            t.add([f"detection bias on training cells, {thr}", row["detection_frequency_bias"]])
    print(t)

    cat = get_catalog(st.catalogs, DATASET)
    ds = open_observations(DATASET, store=store, snapshot=snapshot)
    times = ds["time"].values
    step = np.timedelta64(300, "s")
    trained_until = np.datetime64(training["period"][1].rstrip("Z"))
    if trained_until + (cfg.inputs + cfg.leads) * step <= times[-1]:
        held_out = trained_until + step  # data after the training period (the demo keeps 6 hours back)
        what = "after the training period"
    else:
        held_out = np.datetime64(training["val_first_slot"].rstrip("Z"))
        what = "the validation slots, after the gap"
    first_init = held_out + (cfg.inputs - 1) * step
    last_init = times[-1] - cfg.leads * step
    inits = np.arange(first_init, last_init + step, np.timedelta64(every, "m"))
    if quick:
        inits = inits[:6]
    methods = {"model": Forecaster(cat, VAR, registry=reg, model=version)}
    for m in ("persistence", "extrapolation", "sprog"):
        methods[m] = Forecaster(cat, VAR, method=m)
    leads = np.arange(1, cfg.leads + 1) * step
    ver = Verifier(leads, [1.0, 10.0], [1])
    prob = ProbBench(cat, leads, cfg.leads) if cat.variables[VAR].thresholds else None
    secs: dict[str, list[float]] = {m: [] for m in methods}
    obs_all = ds[[VAR, f"{VAR}_qc", f"{VAR}_qc_tests"]]
    span = f"{np.datetime_as_string(inits[0], unit='m')}Z to {np.datetime_as_string(inits[-1], unit='m')}Z"
    print(f"\nheld-out period: {len(inits)} inits every {every} min from {span} ({what})")
    for i, init in enumerate(inits):
        init_dt = init.astype("datetime64[s]").astype(object).replace(tzinfo=__import__("datetime").timezone.utc)
        inputs = read_inputs(store, cat, VAR, init_dt, max(f.k for f in methods.values()) if prob is None else max(prob.k, *(f.k for f in methods.values())), as_of=init_dt + timedelta(days=1),
                             snapshot=snapshot)
        valid_t = init + leads
        o = obs_all.sel(time=valid_t).load()
        obs = o[VAR].values
        usable = np.asarray(usable_mask(o[f"{VAR}_qc"], o[f"{VAR}_qc_tests"]).values) & np.isfinite(obs)
        fields = {}
        fallbacks: dict[str, object] = {}
        for name, f in methods.items():
            t1 = time.perf_counter()
            p = f.produce(inputs, init_dt)
            secs[name].append(time.perf_counter() - t1)
            if name == "model" and p.fallback:
                print(f"  warning: model fell back at {init}: {p.fallback['reason']}")
            fallbacks[name] = p.fallback
            fields[name] = p.forecast[VAR].values
        valid = usable & np.logical_and.reduce([np.isfinite(v) for v in fields.values()])
        if prob is not None and not fallbacks.get("model"):
            fields.update(prob.add(init, inputs, methods["model"], obs, valid))
        for name, v in fields.items():
            ver.add(init, name, v, obs, valid)
        print(f"  init {i + 1}/{len(inits)} {np.datetime_as_string(init, unit='m')}Z", file=sys.stderr)
    s = ver.summary(reference="persistence", compare=("model",), n_boot=200)
    step_min = 5
    idx = [lm // step_min - 1 for lm in LEADS_SHOWN if lm // step_min <= cfg.leads]
    tab = Table(["method", *[f"RMSE +{lm}" for lm in LEADS_SHOWN], *[f"CSI1 +{lm}" for lm in LEADS_SHOWN],
                 *[f"CSI10 +{lm}" for lm in LEADS_SHOWN], "s/forecast"], title="\nskill on the held-out period")
    for name in methods:
        m = s["methods"][name]
        tab.add([name, *[m["continuous"]["rmse"][j] for j in idx], *[m["categorical"]["1"]["csi"][j] for j in idx],
                 *[m["categorical"]["10"]["csi"][j] for j in idx], median(secs[name])])
    print(tab)
    model, pers, sprog = (s["methods"][k] for k in ("model", "persistence", "sprog"))
    gain60 = 1 - model["continuous"]["rmse"][cfg.leads - 1] / pers["continuous"]["rmse"][cfg.leads - 1]
    csi_m, csi_s = np.array(model["categorical"]["1"]["csi"], float), np.array(sprog["categorical"]["1"]["csi"], float)
    wins = int(np.sum(csi_m > csi_s))
    t_inf = median(secs["model"])
    r = Table(["target", "reached", "met"], title="\ntargets")
    r.add([f"RMSE at +{cfg.leads * 5} min >= 20% below persistence", f"{gain60:.1%}", gain60 >= 0.2])
    r.add(["CSI at 1 mm/h above S-PROG at every lead", f"{wins}/{cfg.leads} leads", wins == cfg.leads])
    r.add(["full-grid model forecast < 1 s on CPU", f"{t_inf:.3f} s (median, incl. input prep)", t_inf < 1.0])
    print(r)
    if prob is not None:
        prob.report(s, idx)
    import torch

    if torch.cuda.is_available():
        print("\nGPU present: run `forecast train` with training.precision bf16-mixed for the GPU epoch figure")
    else:
        print("\nno GPU on this machine: the bf16-mixed GPU epoch figure is not measured here")
    reg.close()


def _g(v: float | None) -> str | None:
    """Brier scores and ECE are small numbers: three significant digits."""
    return None if v is None else f"{v:.3g}"


class ProbBench:
    """Exceedance probabilities of the model's head, STEPS and the local Lagrangian probability at 1 and
    10 mm/h on the bench's inits, and the model's detection product (added to the deterministic verifier as
    ``detection``)."""

    THRESHOLDS = (1.0, 10.0)

    def __init__(self, cat, leads, n_leads: int):
        from forecast.evaluation import ProbabilisticVerifier
        from forecast.nowcast import get_method

        self.ver = ProbabilisticVerifier(leads, self.THRESHOLDS)
        self.n_leads = n_leads
        self.baselines = {name: get_method(name) for name in ("steps", "local_probability")}
        self.k = max(nc.min_slots for nc in self.baselines.values())
        self.detector = None
        self.secs: dict[str, list[float]] = {m: [] for m in ("model", *self.baselines)}
        self.skipped: str | None = None

    def add(self, init, inputs, forecaster, obs, valid) -> dict[str, np.ndarray]:
        from forecast.model.learned import LearnedNowcaster
        from forecast.nowcast.forecaster import input_quality

        nowcaster = forecaster._nowcaster  # loaded by produce
        if not getattr(nowcaster, "probabilistic", False):
            self.skipped = "the model has no probabilistic head"
            return {}
        if self.detector is None:
            self.detector = LearnedNowcaster(nowcaster.module, version=nowcaster.version, product="detection")
        ds = inputs.sel(time=slice(None, init)).isel(time=slice(-max(self.k, forecaster.k), None))
        step = np.timedelta64(300, "s")
        out = {}
        for name, nc in (("model", self.detector), *self.baselines.items()):
            part = ds.isel(time=slice(-max(nc.min_slots, 1), None))
            da = part[VAR]
            mask = da.copy(data=input_quality(part, VAR)[1])
            t1 = time.perf_counter()
            if name == "model":
                det, p = nc.predict_both(da, n_leads=self.n_leads, step=step, thresholds=self.THRESHOLDS, mask=mask)
                out["detection"] = det.values
            else:
                p = nc.predict_probabilities(da, n_leads=self.n_leads, step=step, thresholds=self.THRESHOLDS,
                                             mask=mask)
            self.secs[name].append(time.perf_counter() - t1)
            pv = np.asarray(p.transpose("threshold", "lead_time", "y", "x").values)
            self.ver.add(init, name, pv, obs, valid & np.isfinite(pv).all(axis=0))
        return out

    def report(self, det_summary: dict, idx: list[int]) -> None:
        if not self.ver.methods:
            print(f"\nno probabilistic figures: {self.skipped or 'no init verified'}")
            return
        s = self.ver.summary(reference="steps")
        cols = [f"+{(j + 1) * 5}" for j in idx]
        t = Table(["method", "threshold", *[f"BS {c}" for c in cols], *[f"BSS {c}" for c in cols],
                   *[f"BSS_steps {c}" for c in cols], "ECE mean", "s/forecast"],
                  title="\nexceedance probabilities on the held-out period (BSS: vs climatology; BSS_steps: vs STEPS)")
        for name in ("model", *self.baselines):
            for thr in ("1", "10"):
                b = s["methods"][name]["thresholds"][thr]
                ece = [v for v in b["ece"] if v is not None]
                t.add([name, thr, *[_g(b["brier"][j]) for j in idx], *[b["bss"][j] for j in idx],
                       *[b["bss_reference"][j] for j in idx], _g(float(np.mean(ece))) if ece else None,
                       median(self.secs[name])])
        print(t)
        d = Table(["method", "threshold", *[f"CSI {c}" for c in cols], *[f"bias {c}" for c in cols]],
                  title="\ndetection product (cut-offs from training windows) vs the mean forecast and S-PROG")
        for name in ("detection", "model", "sprog"):
            for thr in ("1", "10"):
                c = det_summary["methods"][name]["categorical"][thr]
                d.add([name, thr, *[c["csi"][j] for j in idx], *[c["frequency_bias"][j] for j in idx]])
        print(d)


if __name__ == "__main__":
    main()
