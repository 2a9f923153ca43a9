"""The QC configuration a dataset catalog embeds as its ``qc:`` section, validated strictly.

Per variable, an ordered list of stages ``{test: <name>, <params>...}``; each test's parameters
are a model that checks itself (unknown keys, unknown tests, suspect >= fail, even windows... are
errors at load time, each reported with its path). Physical range and climatological records
come from the catalog's variable metadata (``VariableMeta``) unless a stage overrides them.

Example (the defaults in ``DEFAULTS``)::

    qc:
      mask_impossible: true          # values outside the physical range are treated as missing
                                     # by the later neighbourhood tests (their FAIL stays)
      variables:
        precipitation_rate:          # mm h-1, 5-minute radar composite, 1 km
          - test: physical_range     # [low, high] from the catalog: beyond -> FAIL
          - test: climatology        # monthly record from the catalog: beyond -> SUSPECT
          - test: spatial            # lone pixel vs its 3x3 neighbourhood (clutter, hot pixels)
            window: 3
            suspect_z: 10.0          # 10 x min_scale = 20 mm/h above a dry neighbourhood
            fail_z: 40.0             # 80 mm/h alone amid dry cells: not rain
            min_scale: 2.0
            min_valid: 5
            min_support: 2           # two neighbours standing out with it corroborate it
          - test: spike              # convective cells do pass a pixel within one frame:
            suspect: 100.0           # only very large one-frame excursions, and never FAIL
            max_gap: 1
          - test: flat_line          # stuck pixel: identical non-zero rate
            tolerance: 0.0
            suspect_count: 12        # 1 h of 5-minute frames
            fail_count: 36           # 3 h
            ignore_below: 0.1        # dry spells (exact zeros) are normal
        air_temperature:             # K, hourly, 4 km
          - test: physical_range
          - test: climatology
          - test: spike
            suspect: 5.0
            fail: 12.0
            max_gap: 1
          - test: rate_of_change
            suspect_per_step: 8.0    # K per hour; no FAIL: chinooks and fronts are real
            max_gap: 1
          - test: flat_line
            tolerance: 0.05
            suspect_count: 8
            fail_count: 24
          - test: spatial
            window: 3
            suspect_z: 6.0
            fail_z: 15.0
            min_scale: 1.0
        dew_point_temperature:       # K, hourly, 4 km
          - test: physical_range
          - test: climatology
          - test: spike
            suspect: 6.0
            fail: 15.0
          - test: rate_of_change
            suspect_per_step: 10.0
          - test: flat_line
            tolerance: 0.05
            suspect_count: 8
            fail_count: 24
          - test: spatial
            window: 3
            suspect_z: 6.0
            fail_z: 15.0
            min_scale: 1.5
      cross_variable:
        - name: dew_point_not_above_air_temperature
          a: air_temperature
          b: dew_point_temperature
          rule: a_ge_b               # expect a >= b
          tolerance: 0.5             # K of supersaturation / sensor noise tolerated
          fail_tolerance: 5.0
          flag: b                    # the hygrometer is the usual culprit
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from qc.errors import QCConfigError
from qc.flags import TEST_NAMES

__all__ = [
    "QCConfig",
    "Stage",
    "MissingStage",
    "PhysicalRangeStage",
    "ClimatologyStage",
    "SpikeStage",
    "RateOfChangeStage",
    "FlatLineStage",
    "SpatialStage",
    "CrossVariableRule",
    "VariableMeta",
    "load_qc_config",
    "format_errors",
    "DEFAULTS",
    "TEMPORAL_TESTS",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
StrictPosInt = Annotated[int, Field(strict=True, ge=1)]
MaxGap = Annotated[int, Field(strict=True, ge=0, le=48)]

TEMPORAL_TESTS = ("spike", "rate_of_change", "flat_line")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _greater_than(other: str) -> Any:
    """A field validator: the value must be greater than the field ``other`` (validated before
    it) when both are set; ``fail = field_validator("fail")(_greater_than("suspect"))``."""

    def check(cls, v: float | int | None, info: ValidationInfo) -> Any:
        lo = info.data.get(other)
        if v is not None and lo is not None and not v > lo:
            raise ValueError(f"must be greater than {other} ({lo})")
        return v

    return check


class MissingStage(_Strict):
    """NaN -> MISSING. Always run first, whether listed or not."""

    test: Literal["missing"]


class PhysicalRangeStage(_Strict):
    """Outside [low, high] -> FAIL. Bounds default to the variable's catalog physical range."""

    test: Literal["physical_range"]
    low: Finite | None = None
    high: Finite | None = None

    _order = field_validator("high")(_greater_than("low"))


def _twelve(v: list[float | None] | None) -> list[float | None] | None:
    if v is not None and len(v) != 12:
        raise ValueError(f"needs 12 monthly values (January first), got {len(v)}")
    return v


class ClimatologyStage(_Strict):
    """Beyond the monthly record -> SUSPECT. Records default to the catalog's; ``null`` entries
    mean no record for that month. ``use_reference``: also use a gridded per-cell reference when
    the variable's metadata has one."""

    test: Literal["climatology"]
    record_min: list[Finite | None] | None = None
    record_max: list[Finite | None] | None = None
    use_reference: bool = True

    @field_validator("record_min", "record_max")
    @classmethod
    def _v12(cls, v):
        return _twelve(v)

    @model_validator(mode="after")
    def _ordered(self):
        if self.record_min is not None and self.record_max is not None:
            bad = [
                calendar.month_abbr[i + 1]
                for i, (a, b) in enumerate(zip(self.record_min, self.record_max))
                if a is not None and b is not None and not a < b
            ]
            if bad:
                raise ValueError(f"record_min must be below record_max (months {', '.join(bad)})")
        return self


class SpikeStage(_Strict):
    """A value standing out from both temporal neighbours (see ``qc.checks.spike``)."""

    test: Literal["spike"]
    suspect: PosFloat
    fail: PosFloat | None = None
    max_gap: MaxGap = 1

    _order = field_validator("fail")(_greater_than("suspect"))


class RateOfChangeStage(_Strict):
    """A jump from the previous value faster than allowed, per time step (``rate_of_change``)."""

    test: Literal["rate_of_change"]
    suspect_per_step: PosFloat
    fail_per_step: PosFloat | None = None
    max_gap: MaxGap = 1

    _order = field_validator("fail_per_step")(_greater_than("suspect_per_step"))


class FlatLineStage(_Strict):
    """A value stuck within ``tolerance`` for ``count`` steps (``flat_line``)."""

    test: Literal["flat_line"]
    tolerance: NonNegFloat
    suspect_count: StrictPosInt
    fail_count: StrictPosInt | None = None
    ignore_below: Finite | None = None

    _order = field_validator("fail_count")(_greater_than("suspect_count"))


class SpatialStage(_Strict):
    """A lone cell that disagrees with its neighbourhood (``spatial``)."""

    test: Literal["spatial"]
    window: Annotated[int, Field(strict=True, ge=3, le=15)] = 3
    suspect_z: PosFloat
    fail_z: PosFloat | None = None
    min_scale: PosFloat
    min_valid: StrictPosInt = 5
    min_support: Annotated[int, Field(strict=True, ge=0)] = 2

    @field_validator("window")
    @classmethod
    def _odd(cls, v):
        if v % 2 == 0:
            raise ValueError("must be an odd integer (3, 5, 7...)")
        return v

    _order = field_validator("fail_z")(_greater_than("suspect_z"))

    @field_validator("min_valid", "min_support")
    @classmethod
    def _fits(cls, v, info):
        w = info.data.get("window")
        if w is not None and v > w * w - 1:
            raise ValueError(f"must be at most {w * w - 1} (the neighbours in a {w}x{w} window)")
        return v


Stage = Annotated[
    Union[
        MissingStage,
        PhysicalRangeStage,
        ClimatologyStage,
        SpikeStage,
        RateOfChangeStage,
        FlatLineStage,
        SpatialStage,
    ],
    Field(discriminator="test"),
]


class CrossVariableRule(_Strict):
    """Two variables that must keep an order (e.g. dew point <= air temperature)."""

    name: str | None = None
    a: str
    b: str
    rule: Literal["a_ge_b", "a_le_b"] = "a_ge_b"
    tolerance: NonNegFloat
    fail_tolerance: PosFloat | None = None
    flag: Literal["a", "b", "both"] = Field(
        "both", description="Which variable(s) carry the flag when the rule is broken."
    )

    @field_validator("b")
    @classmethod
    def _distinct(cls, v, info):
        if v == info.data.get("a"):
            raise ValueError(f"must name a different variable than a ({v!r})")
        return v

    _order = field_validator("fail_tolerance")(_greater_than("tolerance"))

    def flagged(self) -> tuple[str, ...]:
        return {"a": (self.a,), "b": (self.b,), "both": (self.a, self.b)}[self.flag]


class QCConfig(_Strict):
    """The ``qc:`` section of a dataset catalog."""

    variables: dict[str, list[Stage]] = Field(default_factory=dict)
    cross_variable: list[CrossVariableRule] = Field(default_factory=list)
    mask_impossible: bool = Field(
        True,
        description="Values outside the physical range are treated as missing by the later "
        "neighbourhood tests, so one impossible value does not make its neighbours look bad.",
    )

    @field_validator("variables")
    @classmethod
    def _unique_tests(cls, v):
        for var, stages in v.items():
            seen: set[str] = set()
            for st in stages:
                if st.test in seen:
                    raise ValueError(f"variable {var!r} lists test {st.test!r} twice (each test has one flag bit)")
                seen.add(st.test)
        return v

    @model_validator(mode="after")
    def _cross_known(self):
        for i, r in enumerate(self.cross_variable):
            for side in ("a", "b"):
                name = getattr(r, side)
                if name not in self.variables:
                    raise ValueError(
                        f"cross_variable[{i}].{side}: {name!r} is not one of the variables of this QC "
                        f"config ({sorted(self.variables)}); list it under variables (stages may be empty)"
                    )
        return self

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (defaults included, key order and YAML comments ignored)."""
        doc = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def stages(self, var: str) -> list[Any]:
        """The stages of ``var`` with the implicit ``missing`` test first."""
        st = list(self.variables.get(var, []))
        if not any(s.test == "missing" for s in st):
            st.insert(0, MissingStage(test="missing"))
        return st


def load_qc_config(doc: Any, *, source: str = "qc") -> QCConfig:
    """Validate a ``qc:`` section (a mapping, e.g. from YAML) into a ``QCConfig``.

    Raises:
        QCConfigError: listing every problem as ``<path>: <expected> (got <value>)``, paths
            starting at ``source`` (e.g. ``qc.variables.precipitation_rate[2].fail``).
    """
    if isinstance(doc, QCConfig):
        return doc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise QCConfigError(f"{source}: expected a mapping with variables / cross_variable, got {type(doc).__name__}")
    try:
        return QCConfig.model_validate(dict(doc))
    except ValidationError as e:
        raise QCConfigError(format_errors(e, root=source, key_in_path=False)) from None


#: Location parts pydantic adds for validator wrappers; they name no field.
_WRAPPERS = ("function-after", "function-before", "function-plain")


def _error_path(loc: tuple[Any, ...], root: str = "") -> str:
    """A pydantic error location as a path: ``root.field.sub[2].leaf`` (``(top level)`` when empty).

    List indices are ``[i]``; validator wrappers and the tag pydantic inserts after a list index
    for the QC stages' tagged union (``...[2].spike.fail``) are left out.
    """
    out = root
    prev_int = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            prev_int = True
            continue
        if prev_int and part in TEST_NAMES:
            prev_int = False
            continue  # the discriminator tag pydantic inserts after a list index
        if part in _WRAPPERS:
            continue
        out += f".{part}" if out else str(part)
        prev_int = False
    return out or "(top level)"


def format_errors(
    e: ValidationError, source: str | None = None, *, root: str = "", key_in_path: bool = True
) -> list[str]:
    """Every problem of a pydantic ``ValidationError``, one line each, for config files of any kind.

    Line: ``<source>: <path>: <message> (got <value>)``, e.g.
    ``catalogs/radar.yaml: variables.precipitation_rate.physical_range: Input should be ... (got 'x')``:

    - ``source`` names the document (a file); None leaves ``<source>: `` out;
    - ``<path>`` is ``_error_path(loc, root)``: dotted field names, list indices as ``[i]``, ``root``
      first when the document is a section of a larger one (``root="qc"``: ``qc.variables.v[1].fail``),
      ``(top level)`` when empty;
    - ``<message>`` is pydantic's, without its ``Value error, `` prefix;
    - `` (got <repr>)`` follows unless the field is missing or the value a mapping or list (the
      message then names the problem);
    - an unknown key reads ``<path>.<key>: unknown key``, or with ``key_in_path=False``
      ``<path>: unknown key '<key>'``;
    - a QC stage with an unknown or no ``test`` reads ``<path>: unknown test; valid tests are
      missing, ... (got '<test>')`` / ``<path>: each stage needs a 'test' key naming one of ...``.

    ``load_qc_config`` uses ``root="qc", key_in_path=False``: ``qc.variables.v[1]: unknown key 'x'``.
    """
    stage_tests = ", ".join(TEST_NAMES[:-1])
    problems = []
    for err in e.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        val = err.get("input")
        shown = "" if isinstance(val, (dict, list)) or err["type"] == "missing" else f" (got {val!r})"
        if err["type"] == "extra_forbidden":
            if key_in_path:
                msg, shown = "unknown key", ""
            else:
                loc, msg, shown = loc[:-1], f"unknown key {loc[-1]!r}", ""
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown test; valid tests are {stage_tests}"
            shown = f" (got {err.get('ctx', {}).get('tag')!r})"
        elif err["type"] == "union_tag_not_found":
            msg = f"each stage needs a 'test' key naming one of {stage_tests}"
            shown = ""
        line = f"{_error_path(loc, root)}: {msg}{shown}"
        problems.append(line if source is None else f"{source}: {line}")
    return problems


# --------------------------------------------------------------------------------------------
# variable metadata (from the catalog, without importing it)


@dataclass(frozen=True)
class VariableMeta:
    """What QC needs to know about a variable beyond its values.

    ``reference``: optional gridded per-cell records, a mapping / xarray Dataset with ``"min"``
    and/or ``"max"`` shaped ``(12, y, x)`` (January first).
    """

    physical_range: tuple[float, float] | None = None
    record_min: tuple[float | None, ...] | None = None
    record_max: tuple[float | None, ...] | None = None
    reference: Any = None
    standard_name: str | None = None
    long_name: str | None = None

    @classmethod
    def coerce(cls, obj: Any) -> VariableMeta:
        """From a VariableMeta, a mapping, or a catalog variable object (duck-typed: attributes
        ``physical_range``, ``climatological_record.min/max``, ``standard_name``, ``long_name``)."""
        if isinstance(obj, VariableMeta):
            return obj
        get = obj.get if isinstance(obj, Mapping) else (lambda k, d=None: getattr(obj, k, d))
        rec = get("climatological_record", None)
        if rec is not None:
            rget = rec.get if isinstance(rec, Mapping) else (lambda k, d=None: getattr(rec, k, d))
            rmin, rmax = rget("min", None), rget("max", None)
        else:
            rmin, rmax = get("record_min", None), get("record_max", None)
        pr = get("physical_range", None)
        return cls(
            physical_range=tuple(pr) if pr is not None else None,
            record_min=tuple(rmin) if rmin is not None else None,
            record_max=tuple(rmax) if rmax is not None else None,
            reference=get("reference", None),
            standard_name=get("standard_name", None),
            long_name=get("long_name", None),
        )


# --------------------------------------------------------------------------------------------
# defaults the catalogs start from (units: mm h-1 at 5 min; K at 1 h)

DEFAULTS: dict[str, Any] = {
    "mask_impossible": True,
    "variables": {
        "precipitation_rate": [
            {"test": "physical_range"},
            {"test": "climatology"},
            {
                "test": "spatial",
                "window": 3,
                "suspect_z": 10.0,
                "fail_z": 40.0,
                "min_scale": 2.0,
                "min_valid": 5,
                "min_support": 2,
            },
            {"test": "spike", "suspect": 100.0, "max_gap": 1},
            {"test": "flat_line", "tolerance": 0.0, "suspect_count": 12, "fail_count": 36, "ignore_below": 0.1},
        ],
        "air_temperature": [
            {"test": "physical_range"},
            {"test": "climatology"},
            {"test": "spike", "suspect": 5.0, "fail": 12.0, "max_gap": 1},
            {"test": "rate_of_change", "suspect_per_step": 8.0, "max_gap": 1},
            {"test": "flat_line", "tolerance": 0.05, "suspect_count": 8, "fail_count": 24},
            {"test": "spatial", "window": 3, "suspect_z": 6.0, "fail_z": 15.0, "min_scale": 1.0},
        ],
        "dew_point_temperature": [
            {"test": "physical_range"},
            {"test": "climatology"},
            {"test": "spike", "suspect": 6.0, "fail": 15.0},
            {"test": "rate_of_change", "suspect_per_step": 10.0},
            {"test": "flat_line", "tolerance": 0.05, "suspect_count": 8, "fail_count": 24},
            {"test": "spatial", "window": 3, "suspect_z": 6.0, "fail_z": 15.0, "min_scale": 1.5},
        ],
    },
    "cross_variable": [
        {
            "name": "dew_point_not_above_air_temperature",
            "a": "air_temperature",
            "b": "dew_point_temperature",
            "rule": "a_ge_b",
            "tolerance": 0.5,
            "fail_tolerance": 5.0,
            "flag": "b",
        }
    ],
}


def default_config(variables: list[str] | None = None) -> QCConfig:
    """``DEFAULTS`` as a QCConfig, optionally restricted to some variables (cross rules whose
    variables are both kept stay)."""
    doc = json.loads(json.dumps(DEFAULTS))
    if variables is not None:
        doc["variables"] = {k: v for k, v in doc["variables"].items() if k in variables}
        doc["cross_variable"] = [
            r for r in doc["cross_variable"] if r["a"] in doc["variables"] and r["b"] in doc["variables"]
        ]
    return load_qc_config(doc)


def __getattr__(name: str):
    # ``run_checks`` lives in qc.pipeline (which imports this module); offered here too, lazily
    if name == "run_checks":
        from qc.pipeline import run_checks

        return run_checks
    raise AttributeError(f"module 'qc.config' has no attribute {name!r}")
