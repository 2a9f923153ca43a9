"""The provenance record: one typed description of what made a forecast, built here and serialised the
same way wherever it appears (the forecast store, API responses, hindcast reports).

A forecast's `Provenance` names its init time, the model (version, stage, checkpoint sha256, training
period) or method that made it, the fallback taken (if any) and why, the observation snapshot and the
revision and arrival time of every input slot, the QC config and the input quality, the catalog hash,
the software versions and when it was produced. A hindcast report's `HindcastProvenance` is made of the
same parts (`ModelRef`, `ObservationRef`, `QCRef`, `software_versions`) plus the period and settings.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict

from forecast import __version__

__all__ = ["Fallback", "HindcastProvenance", "InputSlot", "ModelRef", "ObservationRef", "Probabilities", "Provenance",
           "QCRef", "software_versions"]

#: the packages whose versions every provenance record names
SOFTWARE = ("numpy", "xarray", "dask", "zarr", "icechunk", "torch", "lightning", "pysteps", "scores")


@lru_cache(maxsize=1)
def software_versions() -> dict[str, str | None]:
    """Versions of this service, Python and the packages that shape its numbers (None: not installed).
    Read from the installed distributions, so asking never imports torch."""
    out: dict[str, str | None] = {"forecast": __version__, "python": ".".join(map(str, sys.version_info[:3]))}
    for name in SOFTWARE:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ModelRef(_Record):
    """A registered model as provenance names it."""

    version: str
    stage: str
    checkpoint_sha256: str
    architecture: str = "unet"
    leads: int | None = None
    inputs: int | None = None
    training_period: list[str] | None = None
    training_snapshot: str | None = None

    @classmethod
    def from_record(cls, rec) -> ModelRef:
        """From a `forecast.registry.ModelRecord`."""
        hp = rec.hyperparameters or {}
        period = ((rec.extra or {}).get("training") or {}).get("period")
        return cls(version=rec.version, stage=rec.stage, checkpoint_sha256=rec.checkpoint_sha256,
                   architecture=(hp.get("network") or {}).get("architecture", "unet"),
                   leads=int(hp.get("leads", 12)), inputs=int(hp.get("inputs", 6)),
                   training_period=list(period) if period else None, training_snapshot=rec.snapshot)


class InputSlot(_Record):
    """One input slot of a forecast: its time, the revision used (-1: not yet arrived) and when that
    revision became available."""

    time: str
    revision: int
    available_at: str | None


class ObservationRef(_Record):
    """The observations behind a forecast or a hindcast: dataset, store snapshot, the time they were read
    as known at, and (for a forecast) every input slot."""

    dataset: str
    snapshot: str | None
    as_of: str | None = None
    store: str | None = None
    input_slots: list[InputSlot] | None = None


class QCRef(_Record):
    """The QC config that judged the inputs and what it made of them (shares of cells per state), or for a
    hindcast which flags the verification used."""

    config_hash: str
    input_quality: dict[str, float] | None = None
    verification_uses: str | None = None


class Fallback(_Record):
    """Why the model did not answer and which method did."""

    reason: str
    method: str


class Probabilities(_Record):
    """How a forecast's exceedance probabilities were made: ``method`` "model" (the nowcaster's own
    probabilities), a probabilistic baseline's name, or "neighbourhood" (the share of cells at or above the
    threshold in a ``neighbourhood_size`` square window of the deterministic forecast); ``source`` says from
    what ("model", or "neighbourhood of <method>"); ``fallback`` why the nowcaster's own probabilities were
    not used (None: they were, or it has none)."""

    method: str
    source: str
    thresholds: list[float]
    units: str | None
    parameters: list[str]
    neighbourhood_size: int | None = None
    fallback: str | None = None
    annotations: dict[str, int] | None = None


class Provenance(_Record):
    """What made one forecast (see the module docstring). ``probabilities`` is None for a variable without
    catalog thresholds (and in records written before probabilities were stored)."""

    init_time: str
    dataset: str
    variable: str
    model: ModelRef | None
    method: str
    fallback: Fallback | None
    observations: ObservationRef
    qc: QCRef
    catalog_hash: str
    software: dict[str, str | None]
    produced_at: str
    annotations: dict[str, int]
    probabilities: Probabilities | None = None


class HindcastProvenance(_Record):
    """What a hindcast report verified and how (see `forecast.evaluation.hindcast`)."""

    dataset: str
    variable: str
    model: ModelRef
    production: ModelRef | None
    methods: dict[str, str]
    period: dict[str, Any]
    observations: ObservationRef
    qc: QCRef
    catalog_hash: str
    revision_policy: str
    climatology: dict[str, Any]
    fallbacks: dict[str, Any]
    training_overlap: dict[str, bool | None]
    software: dict[str, str | None]
    settings: dict[str, Any]
