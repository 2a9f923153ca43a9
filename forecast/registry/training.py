"""`forecast train`: pin a store snapshot, fit the nowcast model, verify it on the held-out windows and
register it as a candidate.

The registry record says exactly what made the model: store snapshot, catalog and QC config hashes,
hyperparameters, validation metrics per lead against persistence (scored by `forecast.evaluation`, the
hindcast's code path), git commit, software versions and the checkpoint's sha256 (computed by the
registry on the copy it keeps). The torch side (`forecast.model.fit`) is imported when training starts.
"""

from __future__ import annotations

import getpass
import logging
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from forecast.catalog import get_catalog
from forecast.errors import BadInputError
from forecast.model.config import ModelConfig, load_model_config
from forecast.model.data import load_series
from forecast.provenance import software_versions
from forecast.quality.run import qc_config
from forecast.registry.store import ModelRegistry
from forecast.stores import store_for

log = logging.getLogger(__name__)

__all__ = ["CSI_THRESHOLDS", "git_commit", "train_model", "validation_metrics"]

#: thresholds (in the variable's units) at which validation CSI is reported for non-negative variables
CSI_THRESHOLDS = (1.0, 10.0)


def git_commit() -> str | None:
    """The commit of the code that trained (with ``-dirty`` when tracked files were modified)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=here, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def validation_metrics(fitted, cfg: ModelConfig) -> dict[str, Any]:
    """Validation metrics per lead on every validation window (full grid), by `forecast.evaluation`'s
    conventions: RMSE of the model and of persistence, skill (1 - RMSE / RMSE_persistence) and, for
    non-negative variables, CSI at 1 and 10."""
    from forecast.evaluation import Verifier
    from forecast.model.fit import validation_forecasts

    n = cfg.leads
    dm = fitted.datamodule
    thr = CSI_THRESHOLDS if dm.norm.transform == "log1p" else ()
    ver = Verifier(np.arange(1, n + 1) * dm.series.step, thr, [1])
    for init, fc, pers, obs, valid in validation_forecasts(fitted):
        ver.add(init, "model", fc, obs, valid)
        ver.add(init, "persistence", pers, obs, valid)
    summary = ver.summary(reference=None, compare=())["methods"]
    model, pers = summary["model"], summary["persistence"]
    rmse, rmse_p = model["continuous"]["rmse"], pers["continuous"]["rmse"]
    step_min = int(dm.series.step / np.timedelta64(1, "m"))
    leads = []
    for li in range(n):
        row: dict[str, Any] = {"lead_minutes": (li + 1) * step_min, "rmse": rmse[li], "rmse_persistence": rmse_p[li],
                               "skill_vs_persistence": 1 - rmse[li] / rmse_p[li] if rmse[li] is not None and rmse_p[li]
                               else None,
                               "n_cells": int(model["continuous"]["n"][li])}
        for t in thr:
            key = f"{t:g}"
            row[f"csi_{key}"] = model["categorical"][key]["csi"][li]
            row[f"csi_{key}_persistence"] = pers["categorical"][key]["csi"][li]
        leads.append(row)
    beats = all(a is not None and b is not None and a < b for a, b in zip(rmse, rmse_p))
    out = {"windows": int(len(dm.val_ds)), "leads": leads, "beats_persistence_at_every_lead": beats}
    if "probabilistic" in fitted.training:  # the head's figures (forecast.model.detection.calibrate)
        out["probabilistic"] = fitted.training["probabilistic"]
    return out


def train_model(settings, dataset: str, variable: str, *, config_path: str | Path | None = None,
                max_epochs: int | None = None, start=None, end=None, progress: bool = False,
                by: str | None = None) -> dict[str, Any]:
    """Train on the store's current head (pinned), evaluate against persistence, register a candidate.

    Returns the JSON report (``version`` first). Raises BadInputError for an unknown dataset / variable,
    a monthly dataset, a bad config or too little data.
    """
    catalog = get_catalog(settings.catalogs, dataset)
    if variable not in catalog.variables:
        raise BadInputError(f"dataset {dataset!r} has no variable {variable!r}; it has: {', '.join(catalog.variables)}")
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; the nowcast model needs a regular sub-daily axis")
    cfg = load_model_config(config_path)
    if max_epochs is not None:
        if max_epochs < 1:
            raise BadInputError(f"the number of epochs must be at least 1, got {max_epochs}", param="max_epochs")
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_epochs": max_epochs})})
    store = store_for(settings)
    store.require()
    snapshot = store.head()
    series = load_series(store, dataset, variable, snapshot=snapshot, start=start, end=end,
                         include_unreviewed_suspect=cfg.include_unreviewed_suspect)
    from forecast.model.fit import fit, scratch_dir

    with scratch_dir() as tmp:
        fitted = fit(series, cfg, workdir=Path(tmp), dataset=dataset, variable=variable, progress=progress,
                     thresholds=catalog.variables[variable].thresholds)
        metrics = validation_metrics(fitted, cfg)
        conf = Path(tmp) / "config.yaml"
        conf.write_text(cfg.to_yaml())
        settings.home.mkdir(parents=True, exist_ok=True)
        record = {
            "snapshot": snapshot, "catalog_hash": catalog.hash, "qc_config_hash": qc_config(catalog).config_hash(),
            "hyperparameters": cfg.to_dict(), "metrics": metrics, "git_commit": git_commit(),
            "versions": software_versions(), "training": fitted.training,
            "normalisation": fitted.datamodule.norm.to_dict(), "architecture": cfg.network.architecture,
        }
        reference = input_reference(store, catalog, variable, fitted.training.get("period"), snapshot)
        if reference is not None:
            record["input_reference"] = {k: v for k, v in reference.items() if k not in ("slots", "times")}
        with ModelRegistry(settings.db_url, settings.models_dir) as registry:
            rec = registry.register(dataset=dataset, variable=variable, checkpoint=fitted.checkpoint, config=conf,
                                    record=record, by=by or _user())
        if reference is not None:
            keep_input_reference(settings, dataset, variable, rec.version, reference)
    doc = rec.to_json()
    doc["training"] = fitted.training
    return doc


# -- the training period's input statistics (for the drift monitor) -------------------------------------------


def input_reference(store, catalog, variable: str, period, snapshot: str) -> dict | None:
    """The training period's input statistics for the drift monitor (`forecast.monitoring.drift`): per-slot
    features (wet fraction, intensity histogram and quantiles, motion speed, missing and FAIL shares, per
    region; the analogues for other variables) and their summary. The model record keeps the summary as
    ``input_reference`` (period, source, slot count, per feature mean / sd / quantiles, pooled histograms);
    the per-slot features, which the monitor's thresholds are derived from, go beside it in the service
    database (`keep_input_reference`). None (and a warning) when they cannot be computed: the monitor then
    computes them from the store over the record's training period."""
    if not period:
        return None
    try:
        from forecast.monitoring.config import monitoring_config
        from forecast.monitoring.monitor import reference_from_store
        from forecast.monitoring.strata import region_masks
        from forecast.timeutil import parse_time

        regions = region_masks(catalog, monitoring_config(catalog).regions)
        return reference_from_store(store, catalog, variable, parse_time(period[0]), parse_time(period[1]), regions,
                                    source=f"training period (store snapshot {snapshot[:12]})", snapshot=snapshot)
    except Exception as e:  # noqa: BLE001 - the model is registered either way
        log.warning("input reference statistics of the training period could not be computed: %s", e)
        return None


def keep_input_reference(settings, dataset: str, variable: str, version: str, reference: dict) -> None:
    """Keep the per-slot reference features of model ``version`` for the monitor (its ``monitor_state``)."""
    try:
        from forecast.monitoring.store import MonitorDB

        with MonitorDB(settings.db_url) as db:
            db.put_state(dataset, variable, f"reference:{version}", {"key": f"model {version}",
                                                                       "reference": reference})
    except Exception as e:  # noqa: BLE001 - the monitor recomputes them from the store when needed
        log.warning("input reference features of %s could not be kept: %s", version, e)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"
