"""`forecast train`: fit the nowcast model on a pinned store snapshot and register it as a candidate.

The registry record says exactly what made the model: store snapshot, catalog and QC config hashes,
hyperparameters, validation metrics per lead against persistence, git commit, torch / lightning versions
and the checkpoint's sha256 (computed by the registry on the copy it keeps).
"""

from __future__ import annotations

import copy
import getpass
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from forecast import __version__
from forecast.catalog.models import get_catalog
from forecast.errors import BadInputError
from forecast.model.config import ModelConfig, load_model_config
from forecast.model.data import load_series
from forecast.model.lightning import NowcastDataModule, NowcastModule, _EpochSeed

log = logging.getLogger(__name__)

#: thresholds (in the variable's units) at which validation CSI is reported for non-negative variables
CSI_THRESHOLDS = (1.0, 10.0)


class _KeepBest(L.Callback):
    """Keep the weights of the epoch with the lowest validation RMSE (restored after fit)."""

    def __init__(self):
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1

    def on_train_epoch_end(self, trainer, pl_module):  # runs after the epoch's validation
        v = trainer.callback_metrics.get("val_rmse")
        if v is not None and float(v) < self.best:
            self.best = float(v)
            self.epoch = trainer.current_epoch
            self.state = copy.deepcopy({k: t.detach().cpu() for k, t in pl_module.state_dict().items()})


def software_versions() -> dict[str, str | None]:
    import lightning

    return {"forecast": __version__, "torch": torch.__version__, "lightning": lightning.__version__,
            "python": ".".join(map(str, __import__("sys").version_info[:3]))}


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


def quiet_lightning() -> None:
    """Lightning's banners (GPU available, tips) go to the log at INFO; operators see warnings only."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def make_trainer(cfg: ModelConfig, *, progress: bool = False, callbacks=(), fast_dev_run: bool | int = False,
                 max_epochs: int | None = None) -> L.Trainer:
    quiet_lightning()
    tr = cfg.training
    on_gpu = tr.accelerator in ("gpu", "cuda") or (tr.accelerator == "auto" and torch.cuda.is_available())
    return L.Trainer(
        max_epochs=max_epochs or tr.max_epochs, accelerator=tr.accelerator, devices=1, precision=tr.precision,
        deterministic=True if not on_gpu else "warn", logger=False, enable_checkpointing=False,
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[_EpochSeed(), *callbacks], fast_dev_run=fast_dev_run, log_every_n_steps=10,
    )


def evaluate(module: NowcastModule, dm: NowcastDataModule) -> dict[str, Any]:
    """Validation metrics per lead on every validation window (full grid), by `forecast.verify`'s
    conventions: RMSE of the model and of persistence, skill (1 - RMSE / RMSE_persistence) and, for
    non-negative variables, CSI at 1 and 10."""
    from forecast.evaluation import Verifier

    module.eval()
    k, n = dm.cfg.inputs, dm.cfg.leads
    thr = CSI_THRESHOLDS if dm.norm.transform == "log1p" else ()
    ver = Verifier(np.arange(1, n + 1) * dm.series.step, thr, [1])
    ny, nx = dm.series.values.shape[1:]
    for i, start in enumerate(dm.val_starts):
        item = dm.val_ds[i]
        fc = module.predict_fields(item["x"].numpy(), item["base"].numpy())[:, :ny, :nx]
        last = item["x"].numpy()[k - 1, :ny, :nx]
        pers = np.broadcast_to(dm.norm.inverse(last)[None], fc.shape)
        if dm.norm.transform == "log1p":
            pers = np.maximum(pers, 0)
        obs = item["target_phys"].numpy()[:, :ny, :nx]
        valid = item["mask"].numpy()[:, :ny, :nx] > 0
        init = dm.series.times[start + k - 1]
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
    return {"windows": int(len(dm.val_ds)), "leads": leads, "beats_persistence_at_every_lead": beats}


def train_model(settings, dataset: str, variable: str, *, config_path: str | Path | None = None,
                max_epochs: int | None = None, start=None, end=None, progress: bool = False,
                by: str | None = None) -> dict[str, Any]:
    """Train on the store's current head (pinned), evaluate against persistence, register a candidate.

    Returns the JSON report (``version`` first). Raises BadInputError for an unknown dataset / variable,
    a monthly dataset, a bad config or too little data.
    """
    from forecast.quality.run import qc_config
    from forecast.registry.store import ModelRegistry
    from forecast.stores.observations import store_for

    catalog = get_catalog(settings.catalogs, dataset)
    if variable not in catalog.variables:
        raise BadInputError(f"dataset {dataset!r} has no variable {variable!r}; it has: {', '.join(catalog.variables)}")
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; the nowcast model needs a regular sub-daily axis")
    cfg = load_model_config(config_path)
    if max_epochs is not None:
        if max_epochs < 1:
            raise BadInputError(f"--max-epochs must be at least 1, got {max_epochs}")
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_epochs": max_epochs})})
    store = store_for(settings)
    if not store.exists():
        raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
    snapshot = store.head()
    series = load_series(store, dataset, variable, snapshot=snapshot, start=start, end=end,
                         include_unreviewed_suspect=cfg.include_unreviewed_suspect)
    _threads()
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    dm = NowcastDataModule(series, cfg)
    module = NowcastModule(config=cfg.to_dict(), norm=dm.norm.to_dict(), variable=variable, dataset=dataset,
                           units=str(series.attrs.get("units", "")),
                           step_seconds=int(series.step / np.timedelta64(1, "s")))
    best = _KeepBest()
    trainer = make_trainer(cfg, progress=progress, callbacks=[best])
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t0
    if best.state is not None:
        module.load_state_dict(best.state)
    module = module.cpu()
    metrics = evaluate(module, dm)
    samples = cfg.training.samples_per_epoch * trainer.current_epoch
    training = {"seconds": round(seconds, 2), "epochs": int(trainer.current_epoch), "best_epoch": best.epoch,
                "samples_per_second": round(samples / seconds, 2) if seconds else None,
                "device": str(trainer.strategy.root_device), "precision": cfg.training.precision,
                "period": [str(series.times[0]) + "Z", str(series.times[-1]) + "Z"],
                **dm.split.to_json(series.times)}
    with tempfile.TemporaryDirectory(prefix="forecast-train-") as tmp:
        ckpt = Path(tmp) / "model.ckpt"
        trainer.strategy.connect(module)  # save the restored best weights
        trainer.save_checkpoint(ckpt)
        conf = Path(tmp) / "config.yaml"
        conf.write_text(cfg.to_yaml())
        settings.home.mkdir(parents=True, exist_ok=True)
        registry = ModelRegistry(settings.db_url, settings.models_dir)
        record = {
            "snapshot": snapshot, "catalog_hash": catalog.hash, "qc_config_hash": qc_config(catalog).config_hash(),
            "hyperparameters": cfg.to_dict(), "metrics": metrics, "git_commit": git_commit(),
            "versions": software_versions(), "training": training, "normalisation": dm.norm.to_dict(),
            "architecture": cfg.network.architecture,
        }
        rec = registry.register(dataset=dataset, variable=variable, checkpoint=ckpt, config=conf, record=record,
                                by=by or _user())
    doc = rec.to_json()
    doc["training"] = training
    return doc


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def _threads() -> None:
    n = os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
