"""Hyperparameters of the nowcast model and of forecast production: versioned YAML, validated strictly.

The defaults suit 5-minute radar (6 input slots -> 12 leads = 60 minutes) and train on 2 CPU cores in a
few minutes. The file used is saved beside every checkpoint in the registry. No torch here.

Example ``model.yaml``::

    inputs: 6
    leads: 12
    network: {base_channels: 24, depth: 3}
    training: {max_epochs: 8, patch: 64, batch_size: 8, lr: 0.002, seed: 42}
    production: {deadline_seconds: 20, max_degraded_share: 0.5}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forecast.errors import BadInputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    """The U-Net: ``depth`` poolings, channels doubling from ``base_channels``."""

    architecture: Literal["unet"] = "unet"
    base_channels: int = Field(24, ge=4, le=256)
    depth: int = Field(3, ge=1, le=5)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class TrainingConfig(_Strict):
    max_epochs: int = Field(16, ge=1, le=10_000)
    samples_per_epoch: int = Field(384, ge=1, description="Random training crops drawn per epoch.")
    patch: int = Field(64, ge=16, description="Side of the square training crop (cells); a multiple of 2**depth.")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 42
    val_fraction: float = Field(0.25, gt=0, lt=1, description="Share of the slots (the latest) held out.")
    max_val_windows: int = Field(24, ge=1, description="Validation windows used per epoch (evenly spaced).")
    augment: bool = Field(True, description="Random flips and 90 degree rotations of training crops.")
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    intensity_weights: tuple[tuple[float, float], ...] = Field(
        ((2.0, 2.0), (5.0, 5.0), (10.0, 10.0), (30.0, 30.0)),
        description="(threshold, weight) pairs: a target at or above the threshold weighs this much in the loss "
        "(balanced MSE, Shi et al. 2017): keeps the model from washing out rain it is unsure where to put. "
        "Only for non-negative variables; empty: plain MSE.")
    physical_loss_weight: float = Field(
        0.1, ge=0, description="Weight of the loss in physical units (normalised) beside the transformed-space loss.")
    probability_loss_weight: float = Field(
        1.0, ge=0, description="Weight of the probabilistic head's cross-entropy (the observed intensity bin, bins "
        "edged by the catalog variable's thresholds) beside the regression loss; 0: the head is not trained. "
        "Variables without thresholds have no head.")


class ProductionConfig(_Strict):
    """How `forecast predict` guards the model."""

    deadline_seconds: float = Field(30.0, gt=0, description="The model must answer within this; else fallback.")
    max_degraded_share: float = Field(
        0.5, ge=0, le=1, description="Above this share of FAIL / rejected / missing input cells, fall back.")
    degraded_cell_share: float = Field(
        0.5, ge=0, le=1, description="A value is marked degraded_inputs when more than this share of its "
        "cell's input slots were unusable.")
    fallback_chain: tuple[Literal["extrapolation", "sprog", "persistence"], ...] = ("extrapolation", "persistence")
    probability_matching: bool = Field(
        False, description="Give each lead the value distribution of the last observed field (restores "
        "intensities a mean-square-trained model damps at long leads; trades RMSE for CSI).")


class ModelConfig(_Strict):
    inputs: int = Field(6, ge=2, le=48, description="k past slots (the last is the init time).")
    leads: int = Field(12, ge=1, le=96, description="n lead slots predicted.")
    transform: Literal["auto", "log1p", "none"] = Field(
        "auto", description="auto: log1p for non-negative variables (precipitation), none otherwise.")
    include_unreviewed_suspect: bool = Field(True, description="Train on SUSPECT values not yet reviewed.")
    network: NetworkConfig = NetworkConfig()
    training: TrainingConfig = TrainingConfig()
    production: ProductionConfig = ProductionConfig()

    @model_validator(mode="after")
    def _patch_fits_depth(self) -> ModelConfig:
        m = 2 ** self.network.depth
        if self.training.patch % m:
            raise ValueError(f"training.patch {self.training.patch} must be a multiple of 2**network.depth = {m}")
        return self

    @property
    def window(self) -> int:
        """Slots spanned by one sample: inputs then leads."""
        return self.inputs + self.leads

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def parse_model_config(doc: Any, source: str = "model config") -> ModelConfig:
    """Validate a mapping; every problem is reported together as ``source: dotted.path: message``."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadInputError(f"{source}: expected a mapping of model settings, got {type(doc).__name__}")
    try:
        return ModelConfig.model_validate(doc)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {loc}: {msg}")
        raise BadInputError("; ".join(problems)) from None


def load_model_config(path: str | Path | None) -> ModelConfig:
    """The config in a YAML file (None: the defaults)."""
    if path is None:
        return ModelConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInputError(f"cannot read the model config {path}: {e.strerror or e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadInputError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_model_config(doc, str(path))
