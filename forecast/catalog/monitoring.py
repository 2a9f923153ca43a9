"""The catalog's monitoring sections: ``monitoring:`` (windows, key leads, the change detector, the drift
statistic, regions and regimes) and ``alerts:`` (alert rules; ``catalogs/alerts.yaml`` holds the rules of
every dataset, read by `forecast.monitoring.config`). Validated strictly: an unknown key, an unknown rule
kind or a parameter a rule kind does not take is an error naming the file and the path, never a silently
switched-off check. Plain pydantic: nothing here imports the monitor.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ALERT_KINDS", "DEFAULT_RULES", "AlertRule", "AlertRules", "DetectorConfig", "DriftConfig", "IndexBox",
           "MonitoringConfig", "RegimeSpec", "RegionSpec", "duration_s"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def duration_s(text: str | int | float, what: str = "duration") -> float:
    """Seconds of a duration like ``6h``, ``30d``, ``90s`` (ValueError naming ``what``)."""
    import re

    from forecast.timeutil import parse_duration

    if isinstance(text, str):  # pandas spells days 'D' ('d' is deprecated there)
        text = re.sub(r"(\d)\s*d$", r"\1D", text.strip())
    try:
        secs = parse_duration(text).total_seconds()
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    if not secs >= 0 or not math.isfinite(secs):
        raise ValueError(f"{what} must be a non-negative duration, got {text!r}")
    return secs


def _duration(v: str, info) -> str:
    duration_s(v, info.field_name)
    return v


# -- strata ------------------------------------------------------------------------------------------------


class IndexBox(_Strict):
    """Rows ``iy`` [start, stop) and columns ``ix`` [start, stop) of the grid."""

    iy: tuple[int, int]
    ix: tuple[int, int]

    @model_validator(mode="after")
    def _ordered(self) -> IndexBox:
        for name, (a, b) in (("iy", self.iy), ("ix", self.ix)):
            if a < 0 or b <= a:
                raise ValueError(f"{name} must be [start, stop) with 0 <= start < stop, got [{a}, {b}]")
        return self


class RegionSpec(_Strict):
    """A part of the grid verified on its own: exactly one of ``bbox`` (lon_min, lat_min, lon_max, lat_max),
    ``polygon`` (lon, lat vertices), ``cells`` (an index box) or ``elevation`` ([min, max) metres, either
    end open with null; needs the grid's elevation)."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    title: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    polygon: list[tuple[float, float]] | None = None
    cells: IndexBox | None = None
    elevation: tuple[float | None, float | None] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> RegionSpec:
        given = [k for k in ("bbox", "polygon", "cells", "elevation") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"region {self.name!r} needs exactly one of bbox, polygon, cells, elevation; "
                             f"got {', '.join(given) or 'none'}")
        if self.bbox is not None and not (self.bbox[0] < self.bbox[2] and self.bbox[1] < self.bbox[3]):
            raise ValueError(f"region {self.name!r}: bbox must be [lon_min, lat_min, lon_max, lat_max] with "
                             f"min < max, got {list(self.bbox)}")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError(f"region {self.name!r}: a polygon needs at least 3 vertices")
        if self.elevation is not None:
            lo, hi = self.elevation
            if lo is None and hi is None:
                raise ValueError(f"region {self.name!r}: give at least one end of the elevation band")
            if lo is not None and hi is not None and not lo < hi:
                raise ValueError(f"region {self.name!r}: elevation band must be [min, max) with min < max")
        return self


class RegimeSpec(_Strict):
    """A class of init times verified on its own, decided from what is known at the init (never from the
    outcome): ``hours`` [from, to) UTC of the init (wrapping past midnight when from > to) and/or
    ``intensity`` [min, max) of ``statistic`` over the usable cells of the field at the init."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    hours: tuple[int, int] | None = None
    intensity: tuple[float | None, float | None] | None = None
    statistic: Literal["p99", "p95", "p90", "mean", "max", "wet_fraction"] = "p99"

    @model_validator(mode="after")
    def _something(self) -> RegimeSpec:
        if self.hours is None and self.intensity is None:
            raise ValueError(f"regime {self.name!r} needs hours and/or intensity")
        if self.hours is not None and not all(0 <= h <= 24 for h in self.hours):
            raise ValueError(f"regime {self.name!r}: hours must lie in 0..24, got {list(self.hours)}")
        if self.intensity is not None and self.intensity[0] is None and self.intensity[1] is None:
            raise ValueError(f"regime {self.name!r}: give at least one end of the intensity class")
        return self


# -- detector and drift ------------------------------------------------------------------------------------


class DetectorConfig(_Strict):
    """The change detector on the per-init skill against persistence (see `forecast.monitoring.detector`).

    ``k`` (allowance) and ``h`` (decision threshold) are in units of the baseline's standard deviation;
    ``warmup`` inits build the baseline before it judges; ``memory`` is the e-folding length (inits) of the
    exponentially weighted baseline; standardised values are clipped to +-``clip`` so one outlier cannot
    raise an alarm alone."""

    method: Literal["cusum", "page_hinkley"] = "cusum"
    k: float = Field(1.0, ge=0)
    h: float = Field(10.0, gt=0)
    warmup: int = Field(72, ge=2)
    memory: int = Field(576, ge=2)
    clip: float = Field(4.0, gt=0)
    floor: float = Field(0.01, gt=0, description="Added to both mean square errors before their log ratio "
                         "(units of the variable squared): dry cases carry no signal.")


class DriftConfig(_Strict):
    """Input drift (see `forecast.monitoring.drift`): ``statistic`` per feature between a window and the
    reference: ``auto`` takes PSI for the intensity histogram (pooled over the window's slots) and the Wasserstein distance over the reference's spread for per-slot features (a window of a few dozen
    slots is too few for PSI's bins); ``psi`` or ``wasserstein`` force one. The
    threshold of each feature and window is ``sigma`` standard deviations above the mean of the statistic
    over the reference's own chunks of the window's length (each against the rest of the reference; a
    t prediction bound when the chunks are few), never below the statistic's floor (PSI 0.1: 'no change' by the usual rule; Wasserstein half a reference sd)."""

    statistic: Literal["auto", "psi", "wasserstein"] = "auto"
    bins: int = Field(10, ge=3, le=50)
    sigma: float = Field(5.0, gt=0)
    psi_floor: float = Field(0.1, ge=0)
    wasserstein_floor: float = Field(0.5, ge=0)
    features: list[str] = Field(default_factory=list, description="Only these features (default: all).")
    min_slots: int = Field(12, ge=2, description="Fewest slots with data a window needs before it is judged.")
    min_fraction: float = Field(0.5, gt=0, le=1, description="A window is judged once it spans this share of "
                                "its nominal length after the reference (a long window is not judged on an hour).")

    def statistic_of(self, feature: str) -> str:
        if self.statistic != "auto":
            return self.statistic
        return "psi" if feature.split("@", 1)[0] == "intensity" else "wasserstein"

    def floor_of(self, kind: str) -> float:
        return self.psi_floor if kind == "psi" else self.wasserstein_floor


class MonitoringConfig(_Strict):
    """The ``monitoring:`` section of a dataset's catalog (every key optional)."""

    short_window: str = "6h"
    long_window: str = "30d"
    long_every: str = Field("1h", description="How often (clock time) the long window is evaluated.")
    key_leads_minutes: list[int] = Field(default_factory=lambda: [30, 60])
    references: list[Literal["persistence", "extrapolation"]] = Field(
        default_factory=lambda: ["persistence", "extrapolation"])
    thresholds: list[float] | None = Field(None, description="Event thresholds (default: the hindcast's).")
    fss_windows: list[int] = Field(default_factory=lambda: [1, 9, 33], description="FSS windows (cells); the "
                                   "hindcast's are 1, 3, 9, 17, 33: the monitor's are a subset, so each FSS it "
                                   "reports equals the hindcast's of the same threshold and window.")
    fss_thresholds: list[float] | None = Field(None, description="FSS thresholds (default: the first two event "
                                               "thresholds: FSS is the costliest score per cycle).")
    include_unreviewed_suspect: bool = True
    n_boot: int = Field(500, ge=10)
    min_inits: int = Field(6, ge=2, description="Fewest verified inits a window needs to be judged.")
    verify_horizon: str = Field("2d", description="A monitor starting on an older store verifies this far back.")
    revision_horizon: str = Field("24h", description="Verifications older than this are not revisited when an "
                                  "observation is revised.")
    reference_period: tuple[str, str] | None = Field(
        None, description="Period of the inputs' reference statistics when the production model's record has "
        "none (default: the model's training period, else the first reference_hours of data).")
    reference_hours: float = Field(12.0, gt=0)
    detector: DetectorConfig = DetectorConfig()
    drift: DriftConfig = DriftConfig()
    regions: list[RegionSpec] = Field(default_factory=list)
    regimes: list[RegimeSpec] = Field(default_factory=list)

    _durations = field_validator("short_window", "long_window", "long_every", "verify_horizon",
                                 "revision_horizon")(_duration)

    @field_validator("key_leads_minutes")
    @classmethod
    def _leads(cls, v: list[int]) -> list[int]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("key_leads_minutes must be positive minutes, at least one")
        return sorted(set(v))

    @model_validator(mode="after")
    def _consistent(self) -> MonitoringConfig:
        if duration_s(self.short_window) <= 0 or duration_s(self.long_window) <= duration_s(self.short_window):
            raise ValueError(f"long_window ({self.long_window}) must be longer than short_window "
                             f"({self.short_window}), both positive")
        names = [r.name for r in self.regions] + [r.name for r in self.regimes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"region and regime names must be unique; repeated: {', '.join(dup)}")
        if "persistence" not in self.references:
            raise ValueError("references must include persistence (skill is measured against it)")
        return self

    def seconds(self, name: str) -> float:
        return duration_s(getattr(self, name), name)


# -- alert rules -------------------------------------------------------------------------------------------

#: rule kind -> (parameters it takes beyond the common ones, what it watches)
ALERT_KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "skill_below_reference": (("lead_minutes", "reference", "window", "threshold", "clear_threshold", "significant"),
                              "rolling skill (1 - RMSE / RMSE of the reference) at a lead below a threshold"),
    "skill_change": ((), "the change detector found a drop of the per-init skill against persistence"),
    "input_drift": (("window", "features"), "a drift statistic of an input feature beyond its threshold"),
    "data_missing": (("slots",), "the newest slots have not arrived (missing) for this many slots"),
    "data_late": (("max_late", "threshold", "window"), "slots arrive later than max_late (share in the window)"),
    "fail_share": (("threshold", "clear_threshold", "slots"), "the share of FAIL values in the newest slots"),
    "deadline_miss": (("threshold", "window"), "forecasts stored after their deadline within the window"),
    "review_waiting": (("max_age",), "a review item has waited longer than max_age"),
    "stratum_below_reference": (("lead_minutes", "reference", "window", "threshold", "min_inits"),
                                "a region or regime where the model is worse than the reference while the "
                                "mean is not"),
}
_PARAMS = ("lead_minutes", "reference", "window", "threshold", "clear_threshold", "significant", "features",
           "slots", "max_late", "max_age", "min_inits")


class AlertRule(_Strict):
    """One alert rule. ``for_cycles`` consecutive evaluations must hold before it fires and ``clear_cycles``
    must not before it resolves (hysteresis, with ``clear_threshold`` for numeric rules); one alert per
    rule, dataset, variable and subject is open at a time (deduplication)."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    kind: str
    datasets: list[str] = Field(default_factory=lambda: ["*"])
    variables: list[str] = Field(default_factory=lambda: ["*"])
    severity: Literal["info", "warning", "critical"] = "warning"
    for_cycles: int = Field(1, ge=1)
    clear_cycles: int = Field(3, ge=1)
    channels: list[Literal["webhook", "email"]] = Field(default_factory=lambda: ["webhook", "email"])
    description: str | None = None
    lead_minutes: int | None = Field(None, gt=0)
    reference: Literal["persistence", "extrapolation"] | None = None
    window: str | None = None
    threshold: float | None = None
    clear_threshold: float | None = None
    significant: bool | None = None
    features: list[str] | None = None
    slots: int | None = Field(None, ge=1)
    max_late: str | None = None
    max_age: str | None = None
    min_inits: int | None = Field(None, ge=2)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {v!r}; kinds: {', '.join(ALERT_KINDS)}")
        return v

    @model_validator(mode="after")
    def _params(self) -> AlertRule:
        takes = set(ALERT_KINDS[self.kind][0])
        extra = [p for p in _PARAMS if getattr(self, p) is not None and p not in takes]
        if extra:
            raise ValueError(f"rule {self.name!r} of kind {self.kind} does not take {', '.join(extra)} "
                             f"(it takes: {', '.join(sorted(takes)) or 'nothing beyond the common keys'})")
        if self.kind in ("skill_below_reference", "stratum_below_reference") and self.lead_minutes is None:
            raise ValueError(f"rule {self.name!r} of kind {self.kind} needs lead_minutes")
        if self.window is not None and self.kind in ("skill_below_reference", "stratum_below_reference",
                                                     "input_drift") and self.window not in ("short", "long"):
            raise ValueError(f"rule {self.name!r}: window must be short or long, got {self.window!r}")
        if self.window is not None and self.kind in ("data_late", "deadline_miss"):
            duration_s(self.window, "window")
        for name in ("max_late", "max_age"):
            if getattr(self, name) is not None:
                duration_s(getattr(self, name), name)
        if self.kind == "review_waiting" and self.max_age is None:
            raise ValueError(f"rule {self.name!r} of kind review_waiting needs max_age")
        if self.kind == "fail_share" and self.threshold is None:
            raise ValueError(f"rule {self.name!r} of kind fail_share needs threshold (a share, e.g. 0.05)")
        if self.threshold is not None and self.clear_threshold is not None and self.kind in (
                "skill_below_reference",) and self.clear_threshold < self.threshold:
            raise ValueError(f"rule {self.name!r}: clear_threshold ({self.clear_threshold}) must not lie below "
                             f"threshold ({self.threshold}): skill must recover past it to resolve")
        if self.threshold is not None and self.clear_threshold is not None and self.kind == "fail_share" \
                and self.clear_threshold > self.threshold:
            raise ValueError(f"rule {self.name!r}: clear_threshold ({self.clear_threshold}) must not exceed "
                             f"threshold ({self.threshold})")
        return self

    def applies(self, dataset: str, variable: str) -> bool:
        return ("*" in self.datasets or dataset in self.datasets) and ("*" in self.variables
                                                                       or variable in self.variables)


class AlertRules(_Strict):
    """``catalogs/alerts.yaml``: ``rules`` (a list of `AlertRule`)."""

    rules: list[AlertRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertRules:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        return self


#: the rules used when there is no catalogs/alerts.yaml (the shipped file holds the same)
DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "skill_below_persistence", "kind": "skill_below_reference", "lead_minutes": 30, "window": "short",
     "reference": "persistence", "threshold": 0.0, "clear_threshold": 0.05, "for_cycles": 3, "clear_cycles": 6,
     "severity": "warning"},
    {"name": "skill_below_persistence_long", "kind": "skill_below_reference", "lead_minutes": 60, "window": "long",
     "reference": "persistence", "threshold": 0.0, "clear_threshold": 0.02, "for_cycles": 1, "clear_cycles": 12,
     "severity": "warning"},
    {"name": "skill_drop", "kind": "skill_change", "for_cycles": 1, "clear_cycles": 6, "severity": "critical"},
    {"name": "input_drift_short", "kind": "input_drift", "window": "short", "for_cycles": 6, "clear_cycles": 12,
     "features": ["missing_share", "fail_share", "edge_contrast@*"],
     "description": "an instrument acting up: missing or FAIL values, a region out of calibration"},
    {"name": "input_drift_long", "kind": "input_drift", "window": "long", "for_cycles": 1, "clear_cycles": 12,
     "features": ["wet_fraction", "intensity", "intensity_p90", "intensity_p99", "motion_speed", "mean",
                  "spatial_sd", "p05", "p50", "p95"],
     "description": "the climate of the inputs moved away from the training period's"},
    {"name": "data_missing", "kind": "data_missing", "slots": 3, "clear_cycles": 2, "severity": "critical"},
    {"name": "data_late", "kind": "data_late", "max_late": "10min", "threshold": 0.5, "window": "1h",
     "for_cycles": 2, "clear_cycles": 3},
    {"name": "fail_share_spike", "kind": "fail_share", "threshold": 0.05, "clear_threshold": 0.02, "slots": 3,
     "for_cycles": 2, "clear_cycles": 3},
    {"name": "deadline_misses", "kind": "deadline_miss", "threshold": 3, "window": "1h", "clear_cycles": 6},
    {"name": "review_waiting", "kind": "review_waiting", "max_age": "2h", "clear_cycles": 1, "severity": "info"},
    {"name": "stratum_below_persistence", "kind": "stratum_below_reference", "lead_minutes": 30, "window": "long",
     "reference": "persistence", "min_inits": 12, "for_cycles": 3, "clear_cycles": 12, "severity": "info"},
]
