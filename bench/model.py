"""The nowcast model against its baselines on held-out hours of two synthetic weather regimes.

    python bench/model.py                    # both regimes, default model config
    python bench/model.py --regime curving   # one regime (demo | curving | both)
    python bench/model.py --quick            # one short epoch and 6 inits per regime (CI smoke, a few minutes)
    python bench/model.py --home DIR         # reuse a FORECAST_HOME that holds the data (else a scratch one)
    python bench/model.py --home DIR --compare-only   # the regimes side by side from earlier runs in DIR

Regimes (each 24 h of 5-minute radar, 256 x 256, every planted fault, ingested in feed order and QC'd, exactly
as ``forecast demo`` builds its radar data; trained on the first 18 hours, the last 6 held out):

- ``demo``: the demo's radar day (seed 42, steady steering flow of about 15 m/s), in ``--home``;
- ``curving``: another seed (7) with faster, curving motion (``forecast.synthetic`` motion ``curving``:
  27 m/s turning a full circle every 8 hours, so features move along arcs), in ``--home/regime-curving``.

Steps per regime:

1. the data unless ``--home`` already holds them;
2. training with the default config (or the quick one) through ``forecast.registry.training.train_model``:
   training samples/s on this CPU (the model registered as a candidate; a model already trained on the
   same snapshot and config is reused and its recorded figures are shown);
3. the held-out period (after the training period; else the validation slots after the gap): for inits every
   ``--every`` minutes, forecasts through ``forecast.predict.Forecaster.produce`` (the code path of
   ``forecast predict``) by the model, persistence, Lucas-Kanade extrapolation and S-PROG, each from the
   same as-of inputs, verified with ``forecast.verify.Verifier`` against the QC-usable observations;
4. inference seconds per full-grid forecast (model: median over inits, checkpoint loaded once);
5. when the model has the probabilistic head (the catalog's thresholds): on the same inits, exceedance
   probabilities of the model (one pass with its detection product, ``LearnedNowcaster.predict_both``),
   STEPS and the local Lagrangian probability at 1 and 10 mm/h, verified with
   ``forecast.evaluation.ProbabilisticVerifier`` (Brier score, BSS against climatology and STEPS, ECE, and the
   paired block bootstrap over inits of the BSS differences); frequency bias and CSI of the detection product
   beside the mean forecast and S-PROG;
6. the targets of issue 14, each at every lead from +5 to +60 min, with the value reached, the margin (positive:
   met with room; negative: missed by that much) and met yes/no.

With both regimes, the model's skill on the second regime is printed beside the demo's at the end.
A GPU epoch (bf16-mixed) is reported when one exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Table, median, scratch_dir  # noqa: E402

DATASET, VAR = "radar_precip", "precipitation_rate"
LEADS_SHOWN = (15, 30, 60)
N_BOOT = 1000


@dataclass(frozen=True)
class Regime:
    name: str
    seed: int
    motion: str
    subdir: str | None  # None: the home itself (the demo's data, as `forecast demo` leaves them)
    description: str


REGIMES = {
    "demo": Regime("demo", 42, "steady", None, "the demo's radar day: seed 42, steady flow of about 15 m/s"),
    "curving": Regime("curving", 7, "curving", "regime-curving",
                      "seed 7, faster curving flow: 27 m/s turning a full circle every 8 h (45 degrees an hour)"),
}


def _has_data(settings) -> bool:
    from forecast.stores import dataset_summary, store_for

    store = store_for(settings)
    if not store.exists():
        return False
    try:
        return dataset_summary(store, DATASET)["slots_filled"] > 200
    except Exception:  # noqa: BLE001 - not there yet
        return False


def build_demo_data(settings) -> None:
    """Samples -> ingest -> QC as the demo does (skipped when the store already holds the dataset)."""
    build_regime_data(settings, REGIMES["demo"])


def build_regime_data(settings, regime: Regime) -> None:
    """The regime's 24 hours: the sample (the demo's period, every planted fault, the regime's seed and
    motion) -> ingest in feed order -> QC and the review decision, the demo's data steps (``run_demo`` also
    runs the live service, not wanted here). Skipped when the store already holds the dataset."""
    from rich.console import Console

    from forecast.catalog import get_catalog
    from forecast.cli.demo_data import DEMO_HOURS, DEMO_START, backfill, qc_and_review, sample_for
    from forecast.synthetic import generate_sample

    if _has_data(settings):
        return
    say = Console(file=open(os.devnull, "w")).print
    if regime.motion == "steady" and regime.seed == 42:
        sample, manifest = sample_for(settings, DATASET, regime.seed, say)
    else:
        sample = settings.home / "demo" / "samples" / DATASET
        path = sample / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else None
        if manifest is None or (manifest.get("seed"), manifest.get("motion")) != (regime.seed, regime.motion):
            manifest = generate_sample(get_catalog(settings.catalogs, DATASET), start=DEMO_START[DATASET],
                                       hours=DEMO_HOURS[DATASET], out=sample, faults=["all"], seed=regime.seed,
                                       motion=regime.motion)
    backfill(settings, DATASET, sample, until=None, seed=regime.seed, say=say)
    qc_and_review(settings, DATASET, manifest, say)


def _train_end(settings):
    """The demo's training period: the first 18 hours (the rest is held out)."""
    from forecast.cli.demo import DEMO_START, TRAIN_HOURS

    return DEMO_START[DATASET] + timedelta(hours=TRAIN_HOURS) - timedelta(minutes=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--regime", choices=("demo", "curving", "both"), default="both")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--every", type=int, default=None, help="Minutes between hindcast inits (default 15; quick 45).")
    ap.add_argument("--max-inits", type=int, default=None, help="At most this many inits (default: all; quick 6).")
    ap.add_argument("--config", type=Path, default=None, help="A model config YAML instead of the default.")
    ap.add_argument("--train-only", action="store_true", help="Build the data and train (or reuse); no hindcast.")
    ap.add_argument("--compare-only", action="store_true",
                    help="Print the regimes side by side from the results earlier runs left in --home.")
    args = ap.parse_args()
    names = ("demo", "curving") if args.regime == "both" else (args.regime,)
    if args.compare_only:
        if args.home is None:
            ap.error("--compare-only reads the results of earlier runs: give their --home")
        compare_regimes({n: json.loads((_home(args.home, REGIMES[n]) / RESULT).read_text()) for n in names})
        return
    with scratch_dir("bench-model-") as tmp:
        home = args.home or tmp
        results = {}
        for name in names:
            r = REGIMES[name]
            print(f"\n{'=' * 30} regime {name}: {r.description} {'=' * 30}")
            results[name] = run(_home(home, r), r, quick=args.quick,
                                every=args.every or (45 if args.quick else 15), config=args.config,
                                max_inits=args.max_inits or (6 if args.quick else None), train_only=args.train_only)
        if len(results) > 1 and not args.train_only:
            compare_regimes(results)


RESULT = "bench-model-result.json"


def _home(home: Path, regime: Regime) -> Path:
    return home / regime.subdir if regime.subdir else home


def run(home: Path, regime: Regime, *, quick: bool, every: int, config: Path | None = None,
        max_inits: int | None = None, train_only: bool = False) -> dict:
    """One regime: data, training, the held-out hindcast, the tables and targets. Returns the figures the
    regimes are compared by."""
    import yaml

    from forecast.catalog import get_catalog
    from forecast.cli.demo import QUICK_MODEL, trained_on
    from forecast.evaluation import Verifier
    from forecast.model.config import load_model_config, parse_model_config
    from forecast.nowcast.forecaster import Forecaster
    from forecast.nowcast.predict import read_inputs
    from forecast.registry.store import ModelRegistry
    from forecast.registry.training import train_model
    from forecast.settings import Settings
    from forecast.stores import open_observations, store_for
    from qc.flags import usable_mask

    repo = Path(__file__).resolve().parents[1]
    st = Settings(home=home, catalogs=repo / "catalogs")
    st.home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_regime_data(st, regime)
    print(f"{regime.name} data ready in {time.perf_counter() - t0:.0f} s ({st.home})")
    store = store_for(st)
    snapshot = store.head()

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
    t = Table(["training", "value"], title=f"\nmodel {version} ({regime.name}): training on CPU ({os.cpu_count()} cores)")
    for key in ("epochs", "seconds", "samples_per_second", "device", "train_windows", "val_windows", "gap_slots"):
        t.add([key, training.get(key)])
    head = training.get("probabilistic")
    if head:
        t.add(["head calibration windows", head["train_windows"]])
        t.add(["head calibration seconds", head.get("seconds")])
        for thr, row in head["train"].items():
            t.add([f"detection bias on training cells, {thr}", row["detection_frequency_bias"]])
    print(t)
    if train_only:
        reg.close()
        return {"regime": regime.name, "version": version, "training": training}

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
    if max_inits:
        inits = inits[:max_inits]
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
    k_max = max(f.k for f in methods.values()) if prob is None else max(prob.k, *(f.k for f in methods.values()))
    for i, init in enumerate(inits):
        init_dt = init.astype("datetime64[s]").astype(object).replace(tzinfo=timezone.utc)
        inputs = read_inputs(store, cat, VAR, init_dt, k_max, as_of=init_dt + timedelta(days=1), snapshot=snapshot)
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
    compare = tuple(m for m in ("model", "detection", "detection_ec") if m in ver.methods)
    s = ver.summary(reference="persistence", compare=compare, n_boot=N_BOOT)
    idx = [lm // 5 - 1 for lm in LEADS_SHOWN if lm // 5 <= cfg.leads]
    tab = Table(["method", *[f"RMSE +{lm}" for lm in LEADS_SHOWN], *[f"CSI1 +{lm}" for lm in LEADS_SHOWN],
                 *[f"CSI10 +{lm}" for lm in LEADS_SHOWN], "s/forecast"], title=f"\nskill on the held-out period ({regime.name})")
    for name in methods:
        m = s["methods"][name]
        tab.add([name, *[m["continuous"]["rmse"][j] for j in idx], *[m["categorical"]["1"]["csi"][j] for j in idx],
                 *[m["categorical"]["10"]["csi"][j] for j in idx], median(secs[name])])
    print(tab)
    model, pers = s["methods"]["model"], s["methods"]["persistence"]
    rmse_m, rmse_p = (np.array(x["continuous"]["rmse"], float) for x in (model, pers))
    gain = 1 - rmse_m / rmse_p
    out = {"regime": regime.name, "description": regime.description, "version": version, "config": cfg.to_dict(),
           "training": {k: training.get(k) for k in ("epochs", "seconds", "samples_per_second", "train_windows")},
           "n_inits": int(len(inits)), "every_min": every, "rmse_gain": gain.tolist(),
           "csi1": {m: s["methods"][m]["categorical"]["1"]["csi"] for m in ver.methods},
           "s_per_forecast": {m: median(v) for m, v in secs.items()}}
    if prob is None or not prob.ver.methods:
        print(f"\nno probabilistic figures: {prob.skipped if prob else 'the variable has no thresholds'}")
        rows = [_rmse_row(gain, cfg.leads), ("full probabilistic inference < 1 s on CPU", "no head", None, False)]
    else:
        ps = prob.ver.summary(reference="steps", compare=("model",), n_boot=N_BOOT)
        prob.report(ps, s, idx, cfg.leads)
        rows = targets(s, ps, prob.secs, gain, cfg.leads)
        out["bss"] = {m: {t: ps["methods"][m]["thresholds"][t]["bss"] for t in ("1", "10")} for m in prob.ver.methods}
        out["ece1"] = ps["methods"]["model"]["thresholds"]["1"]["ece"]
        out["s_per_forecast"].update({f"{m} (probabilities)": median(v) for m, v in prob.secs.items()})
    r = Table(["target (every lead +5..+60 min)", "reached", "margin", "met"],
              title=f"\ntargets of issue 14 on the held-out period ({regime.name}; {len(inits)} inits; margin > 0: met "
                    "with room, < 0: missed by)")
    for row in rows:
        r.add([row[0], row[1], row[2], "yes" if row[3] else "no"])
    print(r)
    out["targets"] = [{"target": a, "reached": b, "margin": c, "met": bool(d)} for a, b, c, d in rows]
    print(f"\n{regime.name}: {sum(1 for x in rows if x[3])}/{len(rows)} targets met")
    if "detection_ec" in ver.methods:
        alt = detection_rows(s, "detection_ec", cfg.leads)
        a = Table(["target (every lead +5..+60 min)", "reached", "margin", "met"],
                  title="\nthe alternative detection product, the same inits (detection_ec: each forecast detects as "
                        "many cells per threshold as its probabilities expect, the most probable; no cut-offs)")
        for row in alt:
            a.add([row[0], row[1], row[2], "yes" if row[3] else "no"])
        print(a)
        out["targets_detection_ec"] = [{"target": x, "reached": b, "margin": c, "met": bool(d)} for x, b, c, d in alt]
    import torch

    if torch.cuda.is_available():
        print("\nGPU present: run `forecast train` with training.precision bf16-mixed for the GPU epoch figure")
    else:
        print("\nno GPU on this machine: the bf16-mixed GPU epoch figure is not measured here")
    reg.close()
    (st.home / RESULT).write_text(json.dumps(out, indent=1, default=_json_default) + "\n")
    return out


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return str(v)


def _lead_of(j: int) -> str:
    return f"+{(j + 1) * 5}"


def _rmse_row(gain: np.ndarray, n_leads: int) -> tuple:
    g = float(gain[n_leads - 1])
    return (f"RMSE-optimal field at +{n_leads * 5} min >= 20% below persistence", f"{g:.1%}", f"{g - 0.2:+.1%}",
            g >= 0.2)


def targets(det: dict, prob: dict, psecs: dict[str, list[float]], gain: np.ndarray, n_leads: int) -> list[tuple]:
    """The acceptance rows: (target, reached, margin, met). Margins are taken at the worst lead."""
    rows: list[tuple] = []
    boot = prob["bootstrap"]["model"]
    conf = None
    for thr in ("1", "10"):
        for ref, label in (("steps", "STEPS"), ("local_probability", "local Lagrangian probability")):
            b = boot[ref]["bss_diff"][thr]
            conf = boot[ref]["confidence"]
            lo, hi, diff = (np.array([np.nan if v is None else v for v in b[k]], float)
                            for k in ("lower", "upper", "diff"))
            better = np.array([bool(v) for v in b["better"]])
            j = int(np.nanargmin(lo)) if np.isfinite(lo).any() else 0
            rows.append((f"BSS {thr} mm/h above {label}, {conf:.0%} bootstrap interval of the difference > 0",
                         f"{int(better.sum())}/{n_leads} leads; worst {_lead_of(j)}: diff {diff[j]:+.3f} "
                         f"[{lo[j]:+.3f}, {hi[j]:+.3f}]", f"{lo[j]:+.3f} (lower bound)",
                         bool(better.all())))
    ece = np.array([np.nan if v is None else v for v in prob["methods"]["model"]["thresholds"]["1"]["ece"]], float)
    j = int(np.nanargmax(ece))
    rows.append(("ECE at 1 mm/h <= 0.05", f"max {ece[j]:.3f} at {_lead_of(j)} (mean {np.nanmean(ece):.3f})",
                 f"{0.05 - ece[j]:+.3f}", bool(np.all(ece <= 0.05))))
    rows += detection_rows(det, "detection", n_leads)
    rows.append(_rmse_row(gain, n_leads))
    t_m, t_s = median(psecs["model"]), median(psecs["steps"])
    rows.append(("full probabilistic inference < 1 s on CPU (one pass: mean, detection, probabilities)",
                 f"{t_m:.3f} s (median); STEPS {t_s:.2f} s, local probability {median(psecs['local_probability']):.2f} s",
                 f"{1.0 - t_m:+.3f} s", t_m < 1.0))
    return rows


def detection_rows(det: dict, product: str, n_leads: int) -> list[tuple]:
    """The detection product's two rows: CSI at 1 mm/h >= S-PROG and frequency bias in [0.8, 1.25]."""
    label = "detection product" if product == "detection" else f"{product} product"
    cd = np.array(det["methods"][product]["categorical"]["1"]["csi"], float)
    cs = np.array(det["methods"]["sprog"]["categorical"]["1"]["csi"], float)
    d = cd - cs
    j = int(np.nanargmin(d))
    rows = [(f"{label} CSI at 1 mm/h >= S-PROG", f"{int(np.sum(d >= 0))}/{n_leads} leads; worst "
             f"{_lead_of(j)}: {cd[j]:.3f} vs {cs[j]:.3f}", f"{d[j]:+.3f}", bool(np.all(d >= 0)))]
    bias = np.array(det["methods"][product]["categorical"]["1"]["frequency_bias"], float)
    inside = np.minimum(bias - 0.8, 1.25 - bias)
    j = int(np.nanargmin(inside))
    rows.append((f"{label} frequency bias at 1 mm/h in [0.8, 1.25]",
                 f"{np.nanmin(bias):.2f}..{np.nanmax(bias):.2f}; {int(np.sum(inside >= 0))}/{n_leads} leads inside",
                 f"{inside[j]:+.3f} at {_lead_of(j)}", bool(np.all(inside >= 0))))
    return rows


def compare_regimes(results: dict[str, dict]) -> None:
    """The model's skill on each regime side by side (the demo first)."""
    names = list(results)
    t = Table(["figure", *names], title="\nthe model on both regimes (held-out hours)")

    def at(v, lm):
        return None if v is None else v[lm // 5 - 1]

    for lm in LEADS_SHOWN:
        t.add([f"RMSE gain vs persistence +{lm}", *[f"{at(results[n]['rmse_gain'], lm):.1%}" for n in names]])
    for m in ("model", "detection", "detection_ec", "sprog", "persistence"):
        for lm in LEADS_SHOWN:
            t.add([f"CSI 1 mm/h +{lm} {m}", *[at(results[n]["csi1"].get(m), lm) for n in names]])
    for thr in ("1", "10"):
        for m in ("model", "steps", "local_probability"):
            for lm in LEADS_SHOWN:
                t.add([f"BSS {thr} mm/h +{lm} {m}", *[at(results[n].get("bss", {}).get(m, {}).get(thr), lm)
                                                    for n in names]])
    for lm in LEADS_SHOWN:
        t.add([f"ECE 1 mm/h +{lm} model", *[_g(at(results[n].get("ece1"), lm)) for n in names]])
    t.add(["targets met", *[f"{sum(r['met'] for r in results[n]['targets'])}/{len(results[n]['targets'])}"
                           for n in names]])
    print(t)
    for n in names:
        missed = [r for r in results[n]["targets"] if not r["met"]]
        print(f"{n}: missed " + ("nothing" if not missed else "; ".join(f"{r['target']} (margin {r['margin']})"
                                                                      for r in missed)))


def _g(v: float | None) -> str | None:
    """Brier scores and ECE are small numbers: three significant digits."""
    return None if v is None else f"{v:.3g}"


def _f(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.3f}"


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
        self.secs: dict[str, list[float]] = {m: [] for m in ("model", *self.baselines)}
        self.skipped: str | None = None

    def add(self, init, inputs, forecaster, obs, valid) -> dict[str, np.ndarray]:
        from forecast.model.probabilistic import clip_to_level, detection_field, expected_count_level
        from forecast.nowcast.forecaster import input_quality

        nowcaster = forecaster._nowcaster  # loaded by produce
        if not getattr(nowcaster, "probabilistic", False):
            self.skipped = "the model has no probabilistic head"
            return {}
        ds = inputs.sel(time=slice(None, init)).isel(time=slice(-max(self.k, forecaster.k), None))
        step = np.timedelta64(300, "s")
        out = {}
        for name, nc in (("model", nowcaster), *self.baselines.items()):
            part = ds.isel(time=slice(-max(nc.min_slots, 1), None))
            da = part[VAR]
            mask = da.copy(data=input_quality(part, VAR)[1])
            t1 = time.perf_counter()
            if name == "model":
                # one pass (as LearnedNowcaster.predict_both with product="detection"): the mean field, every
                # trained threshold's probabilities, the detection product from the checkpoint's cut-offs, and
                # the alternative detection product (the expected count of each forecast, no cut-offs)
                mean, p_all = nc.predict_both(da, n_leads=self.n_leads, step=step, mask=mask)
                thr = np.asarray(nc.thresholds, dtype=np.float64)
                pa = np.asarray(p_all.transpose("threshold", "lead_time", "y", "x").values)
                cut = nc.module.detection_cutoffs.detach().cpu().numpy()[:self.n_leads]
                out["detection"] = detection_field(mean.values, pa, cut, thr)
                out["detection_ec"] = clip_to_level(mean.values, expected_count_level(pa), thr)
                p = p_all.isel(threshold=[int(np.argmin(np.abs(thr - t))) for t in self.THRESHOLDS])
            else:
                p = nc.predict_probabilities(da, n_leads=self.n_leads, step=step, thresholds=self.THRESHOLDS,
                                             mask=mask)
            self.secs[name].append(time.perf_counter() - t1)
            pv = np.asarray(p.transpose("threshold", "lead_time", "y", "x").values)
            self.ver.add(init, name, pv, obs, valid & np.isfinite(pv).all(axis=0))
        return out

    def report(self, s: dict, det_summary: dict, idx: list[int], n_leads: int) -> None:
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
        every = list(range(n_leads))
        boot = s["bootstrap"]["model"]
        conf = next(iter(boot.values()))["confidence"]
        for thr in ("1", "10"):
            b = Table(["lead", *[f"BSS {m}" for m in ("model", *self.baselines)],
                       *[f"model - {m} [{conf:.0%} interval]" for m in self.baselines], "ECE model"],
                      title=f"\nBrier skill vs climatology at {thr} mm/h, every lead; the model's difference with its "
                            f"paired block-bootstrap interval over inits ({boot['steps']['n_boot']} replicates, "
                            f"blocks of {boot['steps']['block']})")
            for j in every:
                row = [_lead_of(j), *[s["methods"][m]["thresholds"][thr]["bss"][j] for m in ("model", *self.baselines)]]
                for m in self.baselines:
                    d = boot[m]["bss_diff"][thr]
                    row.append(f"{_f(d['diff'][j])} [{_f(d['lower'][j])}, {_f(d['upper'][j])}]"
                               + (" *" if d["better"][j] else ""))
                row.append(_g(s["methods"]["model"]["thresholds"][thr]["ece"][j]))
                b.add(row)
            print(b)
        print("  *: the interval excludes 0 in the model's favour")
        d = Table(["method", "threshold", *[f"CSI {_lead_of(j)}" for j in every]],
                  title="\nCSI of the detection product (cut-offs from training windows) vs the mean forecast and "
                        "S-PROG, every lead")
        e = Table(["method", "threshold", *[f"bias {_lead_of(j)}" for j in every]], title="\nfrequency bias, every lead")
        for name in ("detection", "detection_ec", "model", "sprog"):
            for thr in ("1", "10"):
                c = det_summary["methods"][name]["categorical"][thr]
                d.add([name, thr, *[c["csi"][j] for j in every]])
                e.add([name, thr, *[c["frequency_bias"][j] for j in every]])
        print(d)
        print(e)


if __name__ == "__main__":
    main()
