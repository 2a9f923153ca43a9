"""The demo's full model, trained while the service already runs: ``python -m forecast.cli.demo_training``
(started by `forecast demo`, settings from the environment). It trains the default model on the first
hours, waits until the live feed has delivered the held-out hours, hindcasts them, and asks for promotion
through the gate (no override: a refused model stays a candidate and the log says why). Each step is a
line in ``HOME/demo/training.log``; the demo prints them as they come."""

from __future__ import annotations

import os
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone

from forecast.cli.demo_data import DEMO_HOURS, DEMO_START, TRAIN_HOURS
from forecast.settings import Settings
from forecast.timeutil import iso

DATASET, VARIABLE = "radar_precip", "precipitation_rate"


def log_path(settings: Settings):
    return settings.home / "demo" / "training.log"


def _log(settings: Settings, line: str) -> None:
    with open(log_path(settings), "a", encoding="utf-8") as f:
        f.write(f"{datetime.now(timezone.utc):%H:%M:%S} {line}\n")


def _wait_for(settings: Settings, t: datetime, timeout_s: float = 3600) -> bool:
    """Wait until the store holds the radar slot at ``t`` (the live feed delivered the held-out hours)."""
    from forecast.stores import dataset_summary, store_for

    t0 = time.time()
    while time.time() - t0 < timeout_s:
        try:
            if dataset_summary(store_for(settings), DATASET)["last"] >= iso(t):
                return True
        except Exception:  # noqa: BLE001 - the store is being written: look again
            pass
        time.sleep(5)
    return False


def main() -> int:
    from forecast.registry import ModelRegistry, PromotionRefused, promote
    from forecast.registry.training import train_model

    settings = Settings()
    try:
        os.nice(10)  # the service's cycles come first
    except OSError:
        pass
    start = DEMO_START[DATASET]
    step = timedelta(minutes=5)
    train_end = start + timedelta(hours=TRAIN_HOURS) - step
    try:
        _log(settings, f"training the full model on {iso(start)} .. {iso(train_end)} (default config)")
        doc = train_model(settings, DATASET, VARIABLE, end=train_end, by="demo")
        tr = doc["training"]
        leads = {r["lead_minutes"]: r for r in doc["metrics"]["leads"]}
        _log(settings, f"registered {doc['version']} as candidate: {tr['epochs']} epochs in {tr['seconds']:.0f} s; "
             f"validation RMSE at +60 min {leads[60]['rmse']:.3f} vs persistence {leads[60]['rmse_persistence']:.3f}")
        end = start + timedelta(hours=DEMO_HOURS[DATASET]) - step
        _log(settings, f"waiting for the live feed to deliver the held-out hours (up to {iso(end)})")
        if not _wait_for(settings, end):
            _log(settings, "the held-out hours did not arrive; no hindcast, the candidate stays a candidate")
            return 1
        from forecast.evaluation.hindcast import run_hindcast

        hc_start = start + timedelta(hours=TRAIN_HOURS) + 5 * step
        hc_end = end - 12 * step
        _log(settings, f"hindcast of {doc['version']} over {iso(hc_start)} .. {iso(hc_end)} every 10 min against "
             "persistence, extrapolation, S-PROG and climatology, and its exceedance probabilities (if any) "
             "against STEPS, local Lagrangian probability and neighbourhood persistence")
        hc = run_hindcast(settings, DATASET, model=doc["version"], start=hc_start, end=hc_end, every="10min")
        _log(settings, f"{hc['inits']['verified']} inits in {hc['seconds']:.0f} s: {hc['verdict']}")
        with ModelRegistry(settings.db_url, settings.models_dir) as reg:
            try:
                promote(settings, reg, doc["version"], by="duty-forecaster",
                        reason="the full model's hindcast beats the references", report=hc["report"]["json"])
                _log(settings, f"the gate passed: {doc['version']} is now the production model; the worker "
                     "serves it from its next cycle")
            except PromotionRefused as e:
                _log(settings, f"the gate refused {doc['version']}: {e.decision.message()} (it stays a candidate; "
                     "the quick model keeps serving)")
        _log(settings, "done")
        return 0
    except Exception as e:  # noqa: BLE001 - the demo shows the sentence, the log keeps the rest
        _log(settings, f"failed: {type(e).__name__}: {e}")
        with open(log_path(settings), "a", encoding="utf-8") as f:
            traceback.print_exc(file=f)
        return 1


if __name__ == "__main__":
    sys.exit(main())
