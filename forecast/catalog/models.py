"""Dataset catalogs: the typed, strictly validated description of each dataset (``catalogs/*.yaml``).

A catalog names the grid, the regular time axis, each variable (CF name, canonical and accepted units,
physical range, climatological record) and how the store encodes it. Unknown keys are errors; all
problems of a file are reported together, each with the file and the path of the bad field.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import re
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from forecast.catalog.monitoring import AlertRule, MonitoringConfig
from qc.config import QCConfig

_STEP_RE = re.compile(r"^\s*(\d+)\s*(s|min|h|d|month)\s*$")
_STEP_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def units_registry():
    """The pint registry that understands CF unit strings ("mm h-1", "degC", "K")."""
    import logging
    import warnings

    # cf_xarray redefines a few pint units on import; pint logs each as a warning.
    pint_log = logging.getLogger("pint.util")
    level = pint_log.level
    pint_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cf_xarray.units import units
    finally:
        pint_log.setLevel(level)
    return units


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Axis(Strict):
    """One horizontal axis of a regular grid; values are cell centres ``start + i * step``."""

    start: float
    step: float = Field(description="Spacing in the CRS's units; negative for north-to-south rows.")
    size: int = Field(gt=0)
    source_names: list[str] = Field(
        default_factory=list, description="Names this axis may have in input files, tried in order."
    )
    units: str = "m"

    @field_validator("step")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError("step must be a finite non-zero number")
        return v

    def values(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.size, dtype="float64")


class Elevation(Strict):
    """A static elevation field on the grid (synthetic terrain, deterministic from its seed)."""

    kind: Literal["synthetic"] = "synthetic"
    seed: int = 7
    relief_m: float = Field(1800.0, gt=0)
    base_m: float = Field(200.0, ge=-500)


class Grid(Strict):
    crs: str = Field(description="Any CRS pyproj understands, e.g. EPSG:3035.")
    x: Axis
    y: Axis
    tolerance: float = Field(
        0.01, gt=0, le=0.5, description="Allowed offset of input coordinates, as a fraction of the step."
    )
    elevation: Elevation | None = None

    @field_validator("crs")
    @classmethod
    def _crs_known(cls, v: str) -> str:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(v)
        except CRSError as e:
            raise ValueError(f"unknown CRS {v!r} ({e})") from None
        return v

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.size, self.x.size)

    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """2-D latitude and longitude of the cell centres, shape (y, x)."""
        from pyproj import CRS, Transformer

        xx, yy = np.meshgrid(self.x.values(), self.y.values())
        crs = CRS.from_user_input(self.crs)
        if crs.is_geographic:
            return yy, xx
        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(xx, yy)
        return np.asarray(lat), np.asarray(lon)

    def elevation_field(self) -> np.ndarray | None:
        """Synthetic terrain in metres (smooth ridges and valleys), or None when the catalog has none."""
        if self.elevation is None:
            return None
        e = self.elevation
        rng = np.random.default_rng(e.seed)
        # Terrain is defined in the CRS coordinates so that grids over the same area agree.
        xx, yy = np.meshgrid(self.x.values(), self.y.values())
        x0, y0 = 4_300_000.0, 2_700_000.0  # fixed reference: same terrain for every grid of the area
        u = (xx - x0) / 1000.0
        v = (yy - y0) / 1000.0
        z = np.zeros_like(u)
        for k in range(6):
            wl = 40.0 * (1.6**k)  # km
            ang = rng.uniform(0, 2 * np.pi)
            ph = rng.uniform(0, 2 * np.pi)
            amp = 1.0 / (1.4**k)
            z += amp * np.sin((np.cos(ang) * u + np.sin(ang) * v) * 2 * np.pi / wl + ph)
        z = (z - z.min()) / (z.max() - z.min() + 1e-12)
        return (e.base_m + e.relief_m * z**1.5).astype("float32")


class TimeAxis(Strict):
    """The regular time axis: slot ``i`` is labelled ``start + i * step``; slot indices are computed."""

    start: datetime
    step: str = Field(description="e.g. '5min', '1h', '1d' or '1month'.")
    placement: Literal["instant", "period"] = Field(
        "instant",
        description="instant: an input time must lie within `tolerance` of a slot label; "
        "period: an input time belongs to the slot whose period [label, label + step) contains it "
        "(e.g. monthly means stamped mid-month).",
    )
    tolerance: str = Field("0s", description="For placement 'instant', e.g. '30s'.")
    block: int = Field(288, gt=0, description="The time axis grows by this many slots at a time.")

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)

    @field_validator("step", "tolerance")
    @classmethod
    def _duration(cls, v: str, info) -> str:
        m = _STEP_RE.match(v)
        if not m or (info.field_name == "step" and int(m.group(1)) == 0):
            raise ValueError(f"{v!r} is not a duration like '5min', '1h', '1d' or '1month'")
        if info.field_name == "tolerance" and m.group(2) == "month":
            raise ValueError("tolerance must be given in s, min, h or d")
        return v

    @property
    def months(self) -> int | None:
        n, unit = _STEP_RE.match(self.step).groups()
        return int(n) if unit == "month" else None

    @property
    def step_seconds(self) -> int | None:
        n, unit = _STEP_RE.match(self.step).groups()
        return None if unit == "month" else int(n) * _STEP_SECONDS[unit]

    @property
    def tolerance_seconds(self) -> float:
        n, unit = _STEP_RE.match(self.tolerance).groups()
        return int(n) * _STEP_SECONDS[unit]

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    def label(self, index: int | np.ndarray) -> np.ndarray:
        """Slot labels as int64 seconds since 1970-01-01 UTC."""
        idx = np.asarray(index, dtype="int64")
        if self.months is None:
            return self.start_s + idx * self.step_seconds
        out = np.empty(idx.shape, dtype="int64")
        for pos, i in np.ndenumerate(idx):
            m0 = self.start.year * 12 + (self.start.month - 1) + int(i) * self.months
            d = self.start.replace(year=m0 // 12, month=m0 % 12 + 1)
            out[pos] = int(d.timestamp())
        return out

    def label_datetime(self, index: int) -> datetime:
        return datetime.fromtimestamp(int(self.label(index)), tz=timezone.utc)

    def slot_of(self, t_s: int | float) -> int | None:
        """The slot index of a time (seconds since epoch), or None when it is not on the axis."""
        if self.months is None:
            off = t_s - self.start_s
            if self.placement == "period":
                i = math.floor(off / self.step_seconds)
                return i if i >= 0 else None
            i = round(off / self.step_seconds)
            if i < 0 or abs(off - i * self.step_seconds) > self.tolerance_seconds:
                return None
            return i
        t = datetime.fromtimestamp(t_s, tz=timezone.utc)
        mdiff = (t.year - self.start.year) * 12 + (t.month - self.start.month)
        if self.placement == "period":
            i = mdiff // self.months
            return i if i >= 0 and t >= self.start else None
        if mdiff % self.months:
            return None
        i = mdiff // self.months
        if i < 0 or abs(t_s - int(self.label(i))) > self.tolerance_seconds:
            return None
        return i


class ClimatologicalRecord(Strict):
    """Record lowest / highest values per calendar month (12 values each, January first)."""

    min: list[float] | None = None
    max: list[float] | None = None

    @field_validator("min", "max")
    @classmethod
    def _twelve(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(v) != 12:
            raise ValueError(f"needs 12 monthly values (January first), got {len(v)}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> ClimatologicalRecord:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of min / max")
        if self.min is not None and self.max is not None:
            bad = [calendar.month_abbr[i + 1] for i, (a, b) in enumerate(zip(self.min, self.max)) if a >= b]
            if bad:
                raise ValueError(f"record min must be below record max (months {', '.join(bad)})")
        return self


class Variable(Strict):
    standard_name: str = Field(description="CF standard name.")
    long_name: str | None = None
    units: str = Field(description="Canonical units in the store (CF / UDUNITS spelling).")
    source_names: list[str] = Field(default_factory=list, description="Names in input files (default: the id).")
    accepted_units: list[str] = Field(default_factory=list, description="Input units converted on ingest.")
    assume_units: dict[str, str] = Field(
        default_factory=dict, description="Units to assume for a source variable (by its name in the files) "
        "whose files carry no units attribute; without an entry such files are rejected.")
    physical_range: tuple[float, float] = Field(description="Beyond it a value is impossible (QC FAIL).")
    climatological_record: ClimatologicalRecord | None = Field(
        None, description="Beyond it a value is SUSPECT; omit it for a variable nobody keeps records of (no "
        "climatology check, no 'extreme' annotation).")
    thresholds: list[float] = Field(
        default_factory=list, description="Warning thresholds in the store's units, increasing: the probability of "
        "exceeding each is forecast, verified, monitored and served as `<variable>_exceedance_<threshold>` "
        "(e.g. precipitation_rate_exceedance_10; a decimal point is written 'p': _exceedance_0p1).")

    @field_validator("units")
    @classmethod
    def _units_known(cls, v: str) -> str:
        _parse_units(v)
        return v

    @field_validator("accepted_units")
    @classmethod
    def _accepted_known(cls, v: list[str]) -> list[str]:
        for u in v:
            _parse_units(u)
        return v

    @field_validator("assume_units")
    @classmethod
    def _assumed_known(cls, v: dict[str, str]) -> dict[str, str]:
        for u in v.values():
            _parse_units(u)
        return v

    @property
    def record_min(self) -> list[float] | None:
        """The record lowest value per month, or None when the catalog names none."""
        return self.climatological_record.min if self.climatological_record is not None else None

    @property
    def record_max(self) -> list[float] | None:
        """The record highest value per month, or None when the catalog names none."""
        return self.climatological_record.max if self.climatological_record is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        ureg = units_registry()
        canon = ureg.Unit(_parse_units(self.units))
        for u in [*self.accepted_units, *self.assume_units.values()]:
            if ureg.Unit(_parse_units(u)).dimensionality != canon.dimensionality:
                raise ValueError(f"accepted unit {u!r} cannot be converted to {self.units!r}")
        lo, hi = self.physical_range
        if not lo < hi:
            raise ValueError(f"physical_range must be [low, high] with low < high, got [{lo}, {hi}]")
        for name, vals in (("min", self.record_min), ("max", self.record_max)):
            for i, r in enumerate(vals or []):
                if not lo <= r <= hi:
                    raise ValueError(
                        f"climatological_record.{name} for {calendar.month_abbr[i + 1]} ({r}) "
                        f"lies outside the physical range [{lo}, {hi}]"
                    )
        ts = self.thresholds
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise ValueError(f"thresholds must increase strictly, got {ts}")
        outside = [t for t in ts if not lo <= t < hi]
        if outside:
            raise ValueError(f"thresholds {outside} lie outside the physical range [{lo}, {hi})")
        return self


class StorageSpec(Strict):
    """How the store encodes values. Blosc zstd level 1 with byte shuffle: measured ~2.5x faster to
    write than zarr's default zstd, and smaller (see ARCHITECTURE.md)."""

    codec: Literal["blosc"] = "blosc"
    cname: Literal["zstd", "lz4", "lz4hc", "zlib"] = "zstd"
    clevel: int = Field(1, ge=0, le=9)
    shuffle: Literal["byte", "bit", "none"] = "byte"
    blocksize: int = Field(
        0, ge=0, description="Blosc block size in bytes (0: Blosc's choice, 32 KiB at level 1). Whole-chunk "
        "blocks (e.g. 4194304 for a 1000 x 1000 float32 chunk) compress radar fields ~3% smaller, no slower.")
    chunk_y: int | None = Field(None, gt=0, description="Spatial chunk rows (default: whole grid).")
    chunk_x: int | None = Field(None, gt=0, description="Spatial chunk columns (default: whole grid).")


def _seconds(text: str, what: str) -> float:
    from forecast.timeutil import parse_duration

    try:
        secs = parse_duration(text).total_seconds()
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    if secs < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    return secs


class Feed(Strict):
    """How a dataset's files arrive and how the worker runs its cycle (`forecast worker`).

    Times are durations like ``2min`` or ``90s``: ``expected_latency`` (a slot's file normally lands this
    long after the slot's time; a later file is *late*), ``wait_for_late`` (how much longer the cycle of
    an init waits for its own slot before forecasting without it), ``deadline`` (the forecast of an init
    must be served this long after its inputs are due; the model gets what is left of it, the fallback
    answers otherwise), ``expire_after`` (an init not forecast this long after its deadline is skipped
    and recorded, so a worker that fell behind never works through a backlog), ``settle`` (a file not
    renamed into place is taken once its size has not changed for this long).
    """

    inbox: str | None = Field(None, description="Folder (or glob of files) where files land; relative paths are "
                              "under FORECAST_HOME. Default: HOME/inbox/<dataset>.")
    pattern: str = Field("*.nc", description="File names to pick up in the inbox folder.")
    archive: str | None = Field(None, description="Where ingested files are moved. Default: HOME/archive/<dataset>.")
    expected_latency: str = "2min"
    wait_for_late: str = "3min"
    deadline: str = "60s"
    expire_after: str = "5min"
    settle: str = "1s"
    variables: list[str] = Field(default_factory=list, description="Variables to forecast each cycle (default: "
                                 "the only variable, or those with a production model).")

    @field_validator("expected_latency", "wait_for_late", "deadline", "expire_after", "settle")
    @classmethod
    def _duration(cls, v: str, info) -> str:
        _seconds(v, info.field_name)
        return v

    def seconds(self, name: str) -> float:
        """One of the durations in seconds."""
        return _seconds(getattr(self, name), name)


class ProbabilisticRequirement(Strict):
    """The candidate's Brier skill against one reference must exceed ``min_skill`` at each threshold and lead:
    ``1 - BS(candidate) / BS(reference)``, the reference a probabilistic method of the hindcast (e.g.
    ``steps``) or ``climatology`` (the sample base rate of the verified period, ``obar (1 - obar)``)."""

    reference: str = Field(description="A probabilistic method of the hindcast report, or 'climatology'.")
    thresholds: list[float] | None = Field(None, description="Thresholds (the variable's units) at which it "
                                           "must hold; default: every threshold the report verified.")
    leads_minutes: list[int] | None = Field(None, description="Leads (minutes); default: the gate's key leads.")
    min_skill: float = Field(0.0, description="The Brier skill must be greater than this.")


class GateConfig(Strict):
    """What the promotion gate (`forecast.registry.gate.check_promotion`) requires of a candidate of this
    dataset. Every field has a default; the defaults compare the candidate with every reference the
    hindcast report holds."""

    references: list[str] | None = Field(
        None, description="Deterministic references the candidate must beat (report method names, e.g. "
        "persistence, extrapolation, sprog, climatology). Default: every method the report compared the "
        "candidate with, persistence and sprog at least. The production model is always a reference.")
    scores: list[Literal["rmse", "csi"]] = Field(
        default_factory=lambda: ["rmse"], min_length=1, description="Deterministic scores whose paired "
        "bootstrap interval must exclude zero in the candidate's favour at every key lead.")
    csi_thresholds: list[float] | None = Field(
        None, description="Thresholds of the CSI requirement; default: the report's lowest threshold.")
    key_leads_minutes: list[int] | None = Field(
        None, description="Leads (minutes) of the deterministic requirements; default: the setting "
        "gate_key_leads_minutes.")
    probabilistic: list[ProbabilisticRequirement] | None = Field(
        None, description="Brier skill requirements. Default: when the report verified the candidate's "
        "probabilities, Brier skill > 0 against every probabilistic method of the report at every threshold "
        "and key lead; an empty list requires nothing probabilistic.")

    @field_validator("key_leads_minutes")
    @classmethod
    def _positive_leads(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(m <= 0 for m in v)):
            raise ValueError(f"key_leads_minutes must be positive minutes, got {v}")
        return v


DatasetId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Catalog(Strict):
    id: DatasetId
    title: str
    source: str
    licence: str
    description: str | None = None
    grid: Grid
    time: TimeAxis
    storage: StorageSpec = StorageSpec()
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], Variable] = Field(min_length=1)
    qc: QCConfig | None = Field(None, description="QC stages per variable and cross-variable rules.")
    feed: Feed = Field(default_factory=Feed, description="How files arrive and how the worker's cycle runs.")
    monitoring: MonitoringConfig | None = Field(
        None, description="Continuous verification, skill and drift monitoring: windows, detector, regions, "
        "regimes (default: the defaults of `forecast.catalog.monitoring.MonitoringConfig`).")
    alerts: list[AlertRule] | None = Field(
        None, description="Alert rules of this dataset alone (beside catalogs/alerts.yaml; a rule of the same "
        "name replaces the file's).")
    gate: GateConfig = Field(
        default_factory=GateConfig, description="What the promotion gate requires of a candidate model: references, "
        "deterministic scores and leads, Brier skill requirements (default: beat every reference the report holds).")
    path: Path | None = Field(None, exclude=True, description="File the catalog was read from (set on load).")

    @model_validator(mode="after")
    def _qc_variables_known(self) -> Catalog:
        if self.qc is not None:
            unknown = sorted(set(self.qc.variables) - set(self.variables))
            if unknown:
                raise ValueError(f"qc.variables names {unknown}, which are not variables of this catalog "
                                 f"({sorted(self.variables)})")
        return self

    @model_validator(mode="after")
    def _feed_variables_known(self) -> Catalog:
        unknown = sorted(set(self.feed.variables) - set(self.variables))
        if unknown:
            raise ValueError(f"feed.variables names {unknown}, which are not variables of this catalog "
                             f"({sorted(self.variables)})")
        return self

    @model_validator(mode="after")
    def _names_unique(self) -> Catalog:
        seen: dict[str, str] = {}
        for vid, var in self.variables.items():
            for name in self.source_names(vid):
                if name in seen and seen[name] != vid:
                    raise ValueError(f"source name {name!r} is claimed by both {seen[name]!r} and {vid!r}")
                seen[name] = vid
        return self

    def source_names(self, vid: str) -> list[str]:
        return self.variables[vid].source_names or [vid]

    @cached_property
    def hash(self) -> str:
        """sha256 of the catalog's canonical JSON: changes when any setting of the data changes, not with
        comments nor with the monitoring, alert and gate settings (they describe how the service is watched
        and models promoted, not the data; forecasts and models keep their catalog hash when an alert
        threshold or a gate requirement changes)."""
        doc = self.model_dump(mode="json", exclude={"path", "monitoring", "alerts", "gate"})
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _parse_units(u: str):
    ureg = units_registry()
    try:
        return ureg.Unit(u)
    except Exception:
        raise ValueError(f"unknown units {u!r}") from None


__all__ = [
    "Catalog",
    "GateConfig",
    "Grid",
    "ProbabilisticRequirement",
    "TimeAxis",
    "Variable",
]


def threshold_label(threshold: float) -> str:
    """A threshold as it appears in a parameter name: 10 -> '10', 0.1 -> '0p1', -2.5 -> 'm2p5'."""
    return f"{threshold:g}".replace("-", "m").replace(".", "p")


def exceedance_name(variable: str, threshold: float) -> str:
    """The contract name of the probability that ``variable`` exceeds ``threshold``: ``<variable>_exceedance_<t>``."""
    return f"{variable}_exceedance_{threshold_label(threshold)}"
