"""Fitting the nowcast model with Lightning: the trainer, the fit with keep-best (Lightning's
`ModelCheckpoint` on the validation RMSE), the checkpoint, and the validation forecasts the caller
verifies. Nothing here knows about the registry or the store: `forecast.registry.training` orchestrates.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from forecast.model.config import ModelConfig
from forecast.model.data import Series
from forecast.model.lightning import EpochSeed, NowcastDataModule, NowcastModule

log = logging.getLogger(__name__)

__all__ = ["Fitted", "fit", "make_trainer", "quiet_lightning", "validation_forecasts"]


def quiet_lightning() -> None:
    """Lightning's banners (GPU available, tips) go to the log at INFO; operators see warnings only."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def make_trainer(cfg: ModelConfig, *, progress: bool = False, callbacks=(), fast_dev_run: bool | int = False,
                 max_epochs: int | None = None, checkpointing: bool = False) -> L.Trainer:
    quiet_lightning()
    tr = cfg.training
    on_gpu = tr.accelerator in ("gpu", "cuda") or (tr.accelerator == "auto" and torch.cuda.is_available())
    return L.Trainer(
        max_epochs=max_epochs or tr.max_epochs, accelerator=tr.accelerator, devices=1, precision=tr.precision,
        deterministic=True if not on_gpu else "warn", logger=False, enable_checkpointing=checkpointing,
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[EpochSeed(), *callbacks], fast_dev_run=fast_dev_run, log_every_n_steps=10,
    )


@dataclass
class Fitted:
    """A fitted model: the module (best epoch's weights, on the CPU), its data module, the checkpoint
    file (in ``workdir``), and the training figures."""

    module: NowcastModule
    datamodule: NowcastDataModule
    checkpoint: Path
    training: dict[str, Any]


def fit(series: Series, cfg: ModelConfig, *, workdir: Path, dataset: str, variable: str,
        progress: bool = False, thresholds: Sequence[float] = ()) -> Fitted:
    """Train on ``series`` (split by time into training and validation windows) and keep the epoch with
    the lowest validation RMSE; its weights are written to ``workdir/model.ckpt``.

    With ``thresholds`` (the catalog variable's) the model has the probabilistic head; its detection
    cut-offs are set on training windows before the checkpoint is written, and the figures of
    `forecast.model.detection.calibrate` go to ``training["probabilistic"]``."""
    _threads()
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    dm = NowcastDataModule(series, cfg)
    module = NowcastModule(config=cfg.to_dict(), norm=dm.norm.to_dict(), variable=variable, dataset=dataset,
                           units=str(series.attrs.get("units", "")),
                           step_seconds=int(series.step / np.timedelta64(1, "s")),
                           thresholds=[float(t) for t in thresholds] or None)
    best = ModelCheckpoint(dirpath=workdir / "epochs", monitor="val_rmse", mode="min", save_top_k=1,
                           save_last=False, save_weights_only=True, filename="best", enable_version_counter=False)
    trainer = make_trainer(cfg, progress=progress, callbacks=[best], checkpointing=True)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t0
    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    module = module.cpu()
    samples = cfg.training.samples_per_epoch * trainer.current_epoch
    best_epoch = _epoch_of(best)
    training = {"seconds": round(seconds, 2), "epochs": int(trainer.current_epoch), "best_epoch": best_epoch,
                "samples_per_second": round(samples / seconds, 2) if seconds else None,
                "device": str(trainer.strategy.root_device), "precision": cfg.training.precision,
                "period": [str(series.times[0]) + "Z", str(series.times[-1]) + "Z"],
                **dm.split.to_json(series.times)}
    if module.has_head:
        from forecast.model.detection import calibrate

        t1 = time.perf_counter()
        training["probabilistic"] = calibrate(module, dm)
        training["probabilistic"]["seconds"] = round(time.perf_counter() - t1, 2)
    ckpt = workdir / "model.ckpt"
    trainer.strategy.connect(module)  # save the restored best weights
    trainer.save_checkpoint(ckpt)
    return Fitted(module=module, datamodule=dm, checkpoint=ckpt, training=training)


def _epoch_of(cb: ModelCheckpoint) -> int:
    """The epoch (0-based) whose weights ``cb`` kept, -1 when none was kept."""
    if not cb.best_model_path:
        return -1
    try:
        return int(torch.load(cb.best_model_path, map_location="cpu", weights_only=True).get("epoch", -1))
    except (OSError, RuntimeError):  # pragma: no cover - the file was just written
        return -1


def validation_forecasts(fitted: Fitted) -> Iterator[tuple[np.datetime64, np.ndarray, np.ndarray, np.ndarray,
                                                            np.ndarray]]:
    """For every validation window (full grid): ``(init_time, model, persistence, obs, valid)``, each
    (lead_time, y, x) in physical units (``valid``: the QC-usable targets)."""
    module, dm = fitted.module, fitted.datamodule
    module.eval()
    k = dm.cfg.inputs
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
        yield dm.series.times[start + k - 1], fc, pers, obs, valid


def _threads() -> None:
    n = os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def scratch_dir(prefix: str = "forecast-train-") -> tempfile.TemporaryDirectory:
    """A scratch folder for a fit's epoch checkpoints (removed with the object)."""
    return tempfile.TemporaryDirectory(prefix=prefix)
