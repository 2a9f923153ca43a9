"""The Lightning side of the nowcast model: where tensors first appear.

- `WindowDataset`: samples (inputs, base, target, target_mask) from a `Series` at given window starts,
  as random crops with flips / rotations (training) or the full grid (validation).
- `NowcastDataModule`: a pinned store snapshot -> `Series` -> time split with a gap -> loaders.
- `NowcastModule`: loss (QC-masked: unusable targets never count), optimiser, metrics per lead against
  persistence; the maths is `forecast.model.net.UNet`.
Shapes are documented as (batch, channel|lead_time, y, x).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch

from forecast.errors import BadInputError
from forecast.model.config import ModelConfig
from forecast.model.data import (
    Normaliser,
    Series,
    Split,
    choose_transform,
    model_inputs,
    n_channels,
    split_windows,
)
from forecast.model.net import UNet
from forecast.model.probabilistic import masked_cross_entropy

log = logging.getLogger(__name__)


class WindowDataset(torch.utils.data.Dataset):
    """Windows of a `Series`: k inputs then n targets.

    Item: dict with ``x`` (2k+2+n, py, px), ``base`` (n, py, px) the advected last field, ``target`` (n, py, px) normalised (0 where
    unusable), ``mask`` (n, py, px) 1.0 where the target is usable, ``target_phys`` (n, py, px).
    Training items are random crops of side ``patch`` (``length`` of them per epoch, drawn from a
    generator seeded per epoch); evaluation items are full grids padded to a multiple of ``multiple``.
    """

    def __init__(self, series: Series, starts: np.ndarray, cfg: ModelConfig, norm: Normaliser, *,
                 train: bool, length: int | None = None, seed: int = 0, multiple: int = 8):
        self.s = series
        self.starts = np.asarray(starts)
        self.k, self.n = cfg.inputs, cfg.leads
        self.norm = norm
        self.train = train
        self.patch = cfg.training.patch
        self.augment = cfg.training.augment
        self.length = length if train else len(self.starts)
        self.seed = seed
        self.epoch = 0
        self.multiple = multiple
        self.motions: dict[int, tuple[float, float]] = {}  # per window start: estimated once

    def __len__(self) -> int:
        return int(self.length)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            s = int(self.starts[rng.integers(len(self.starts))])
        else:
            rng = None
            s = int(self.starts[i])
        k, n = self.k, self.n
        vals = self.s.values[s:s + k + n]
        use = self.s.usable[s:s + k + n]
        ny, nx = vals.shape[1:]
        # motion and advection on the full grid (inflow from beyond a crop is known), then the crop
        x, base, self.motions[s] = model_inputs(vals[:k], use[:k], self.s.times[s + k - 1], self.norm, n,
                                                motion=self.motions.get(s))
        if self.train:
            p = self.patch
            oy = int(rng.integers(0, max(ny - p, 0) + 1))
            ox = int(rng.integers(0, max(nx - p, 0) + 1))
            crop = (..., slice(oy, oy + p), slice(ox, ox + p))
            vals, use, x, base = vals[crop], use[crop], x[crop], base[crop]
        tgt_use = use[k:]
        tgt_phys = np.where(tgt_use, vals[k:], 0.0).astype(np.float32)
        tgt = np.where(tgt_use, self.norm.forward(tgt_phys), 0.0).astype(np.float32)
        mask = tgt_use.astype(np.float32)
        if self.train and self.augment:
            rot = int(rng.integers(4))
            flip = bool(rng.integers(2))
            x, base, tgt, mask, tgt_phys = (_augment(a, rot, flip) for a in (x, base, tgt, mask, tgt_phys))
        elif not self.train:
            x, base, tgt, mask, tgt_phys = (pad_to(a, self.multiple) for a in (x, base, tgt, mask, tgt_phys))
        return {"x": torch.from_numpy(np.ascontiguousarray(x)), "base": torch.from_numpy(np.ascontiguousarray(base)),
                "target": torch.from_numpy(np.ascontiguousarray(tgt)), "mask": torch.from_numpy(np.ascontiguousarray(mask)),
                "target_phys": torch.from_numpy(np.ascontiguousarray(tgt_phys))}


def _augment(a: np.ndarray, rot: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, rot, axes=(-2, -1))
    return a[..., ::-1] if flip else a


def pad_to(a: np.ndarray, multiple: int) -> np.ndarray:
    """Zero-pad the last two axes at the far end up to a multiple of ``multiple`` (masks pad with 0:
    padded cells never count)."""
    ny, nx = a.shape[-2:]
    py, px = (-ny) % multiple, (-nx) % multiple
    if not py and not px:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, py), (0, px)]
    return np.pad(a, pad)


class NowcastDataModule(L.LightningDataModule):
    """Training / validation windows over one variable of a pinned store snapshot.

    ``series`` is read by the caller (`forecast.model.data.load_series` with the snapshot recorded), so the
    data this module sees is exactly the recorded one. Normalisation statistics come from the slots of
    the training windows only.
    """

    def __init__(self, series: Series, cfg: ModelConfig):
        super().__init__()
        self.series = series
        self.cfg = cfg
        k, n = cfg.inputs, cfg.leads
        self.split: Split = split_windows(series.usable, k, n, val_fraction=cfg.training.val_fraction)
        in_train = np.zeros(series.n, dtype=bool)
        for s in self.split.train:
            in_train[s:s + k + n] = True
        transform = choose_transform(cfg.transform, series.attrs)
        self.norm = Normaliser.fit(series.values[in_train], series.usable[in_train], transform=transform)
        val = self.split.val
        if len(val) > cfg.training.max_val_windows:
            val = val[np.linspace(0, len(val) - 1, cfg.training.max_val_windows).round().astype(int)]
        self.val_starts = val
        self.train_ds = WindowDataset(series, self.split.train, cfg, self.norm, train=True,
                                      length=cfg.training.samples_per_epoch, seed=cfg.training.seed,
                                      multiple=2 ** cfg.network.depth)
        self.val_ds = WindowDataset(series, self.val_starts, cfg, self.norm, train=False,
                                    multiple=2 ** cfg.network.depth)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_ds, batch_size=self.cfg.training.batch_size, shuffle=False,
                                           num_workers=0, drop_last=False)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.val_ds, batch_size=2, shuffle=False, num_workers=0)


class EpochSeed(L.Callback):
    """New random crops each epoch, reproducibly."""

    def on_train_epoch_start(self, trainer, pl_module):
        dm = trainer.datamodule
        if dm is not None:
            dm.train_ds.set_epoch(trainer.current_epoch)


class NowcastModule(L.LightningModule):
    """Loss, optimiser and per-lead validation metrics of the nowcast U-Net.

    Loss: mean squared error in normalised (log1p for precipitation) units over usable target cells,
    plus ``physical_loss_weight`` x the squared error in physical units (scaled by the training std),
    each weighted by the target's intensity class (``training.intensity_weights``, balanced MSE),
    which keeps rain the model is unsure where to put from being washed out. Hyperparameters (config, normalisation) are
    saved in the checkpoint.

    With ``thresholds`` (the catalog variable's, increasing) the net also has a probabilistic head: bins edged
    by the thresholds per lead and cell (`forecast.model.probabilistic`); its cross-entropy over the usable
    target cells (unweighted: a proper score) is added with ``training.probability_loss_weight``. The buffer
    ``detection_cutoffs`` (lead_time, threshold) holds the detection product's cut-offs, set at the end of
    training (`forecast.model.detection.calibrate`; -1 until then). Checkpoints without thresholds (older
    ones) load as before and have no head.
    """

    def __init__(self, config: dict[str, Any], norm: dict[str, Any], variable: str = "", dataset: str = "",
                 units: str = "", step_seconds: int = 300, thresholds: list[float] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = ModelConfig.model_validate(config)
        self.norm = Normaliser.from_dict(norm)
        self.thresholds = tuple(float(t) for t in thresholds or ())
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise BadInputError(f"thresholds must increase strictly, got {list(self.thresholds)}")
        edges = [float(v) for v in self.norm.forward(np.asarray(self.thresholds))] if self.thresholds else None
        net = self.cfg.network
        self.net = UNet(n_channels(self.cfg.inputs, self.cfg.leads), self.cfg.leads, base=net.base_channels, depth=net.depth,
                        dropout=net.dropout, z_floor=self.norm.z_floor, prob_edges_z=edges)
        if self.thresholds:
            self.register_buffer("thresholds_t", torch.tensor(self.thresholds, dtype=torch.float32), persistent=False)
            self.register_buffer("detection_cutoffs", torch.full((self.cfg.leads, len(self.thresholds)), -1.0))
        self._val: list[torch.Tensor] = []
        self._channels_last = False

    def for_inference(self) -> NowcastModule:
        """Eval mode, and the network's weights and inputs laid out channels-last: oneDNN's convolutions run
        about 40% faster that way on CPU (a 1000 x 1000 grid: 3.3 s for the U-Net instead of 5.5 s), with the
        same numbers up to float rounding. For a loaded model (training keeps the default layout)."""
        self.eval()
        self.net.to(memory_format=torch.channels_last)
        self._channels_last = True
        return self

    def _layout(self, xt: torch.Tensor) -> torch.Tensor:
        return xt.contiguous(memory_format=torch.channels_last) if self._channels_last else xt

    @property
    def has_head(self) -> bool:
        """Whether the net has the probabilistic head (trained with thresholds)."""
        return self.net.prob_head is not None

    def forward(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """x (batch, 2k+2+n, y, x), base (batch, n, y, x) -> (batch, lead_time, y, x) normalised."""
        return self.net(x, base)

    def forward_both(self, x: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pass: the deterministic forecast (batch, lead_time, y, x) normalised and the bin logits
        (batch, lead_time, bin, y, x), None without the head."""
        return self.net.forward_both(x, base)

    def physical(self, z: torch.Tensor) -> torch.Tensor:
        out = self.norm.inverse(z.float())
        return out.clamp_min(0.0) if self.norm.transform == "log1p" else out

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z, logits = self.forward_both(batch["x"], batch["base"])
        loss = self._regression_loss(z, batch)
        pw = self.cfg.training.probability_loss_weight
        if logits is not None and pw:
            loss = loss + pw * masked_cross_entropy(logits, batch["target_phys"], batch["mask"], self.thresholds_t)
        return loss, z

    def _regression_loss(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        m = batch["mask"]
        denom = m.sum().clamp_min(1.0)
        if self.norm.transform == "log1p" and self.cfg.training.intensity_weights:
            w = torch.ones_like(m)
            for thr, weight in self.cfg.training.intensity_weights:
                w = torch.where(batch["target_phys"] >= thr, torch.full_like(w, weight), w)
            m = m * w
        loss = (((z.float() - batch["target"]) ** 2) * m).sum() / denom
        w = self.cfg.training.physical_loss_weight
        if w:
            phys = self.physical(z)
            loss = loss + w * ((((phys - batch["target_phys"]) / self.norm.phys_scale) ** 2) * m).sum() / denom
        return loss

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch["x"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        loss, z = self._loss(batch)
        self.log("val_loss", loss, prog_bar=False, on_step=False, on_epoch=True, batch_size=batch["x"].shape[0])
        m = batch["mask"]
        phys = self.physical(z)
        pers = self.physical(batch["x"][:, self.cfg.inputs - 1]).unsqueeze(1).expand_as(phys)
        t = batch["target_phys"]
        # per lead: sum sq err model, sum sq err persistence, count
        self._val.append(torch.stack([(((phys - t) ** 2) * m).sum(dim=(0, 2, 3)),
                                      (((pers - t) ** 2) * m).sum(dim=(0, 2, 3)), m.sum(dim=(0, 2, 3))]).detach().cpu())

    def on_validation_epoch_end(self):
        if not self._val:
            return
        acc = torch.stack(self._val).sum(0)
        self._val.clear()
        n = acc[2].clamp_min(1)
        rmse, rmse_p = (acc[0] / n).sqrt(), (acc[1] / n).sqrt()
        self.log("val_rmse", rmse.mean(), prog_bar=True)
        self.log("val_skill", (1 - rmse / rmse_p.clamp_min(1e-9)).mean(), prog_bar=True)

    def configure_optimizers(self):
        tr = self.cfg.training
        opt = torch.optim.AdamW(self.parameters(), lr=tr.lr, weight_decay=tr.weight_decay)
        steps = max(1, self.trainer.estimated_stepping_batches) if self.trainer else 1000
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tr.lr, total_steps=int(steps), pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def predict_fields(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """One sample in numpy: x (2k+2+n, y, x), base (n, y, x) -> physical forecast (lead_time, y, x)."""
        m = 2 ** self.cfg.network.depth
        ny, nx = base.shape[-2:]
        xt = self._layout(torch.from_numpy(pad_to(x, m)).unsqueeze(0).to(self.device))
        bt = torch.from_numpy(pad_to(base, m)).unsqueeze(0).to(self.device)
        self.eval()
        out = self.physical(self(xt, bt))[0, :, :ny, :nx]
        return out.float().cpu().numpy()

    @torch.no_grad()
    def predict_both_fields(self, x: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One sample, one pass: the physical forecast (lead_time, y, x) and the exceedance probabilities
        (threshold, lead_time, y, x) at the trained thresholds (None without the head)."""
        m = 2 ** self.cfg.network.depth
        ny, nx = base.shape[-2:]
        xt = self._layout(torch.from_numpy(pad_to(x, m)).unsqueeze(0).to(self.device))
        bt = torch.from_numpy(pad_to(base, m)).unsqueeze(0).to(self.device)
        self.eval()
        z, prob = self.net.forward_exceedance(xt, bt)
        out = self.physical(z)[0, :, :ny, :nx].float().cpu().numpy()
        if prob is None:
            return out, None
        return out, prob[0, :, :, :ny, :nx].cpu().numpy()
