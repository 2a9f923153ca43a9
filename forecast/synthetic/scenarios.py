"""Scenarios for the monitor: synthetic feeds in which something goes wrong at a known time, so that
detection delays and false alarms can be measured (`tests/forecast/monitoring`, `bench/monitor.py`).

Every scenario renders the sample generator's natural fields (`forecast.synthetic.fields`) and changes
them from a known time on; nothing here changes what `generate_sample` writes.

- ``steady``: the natural weather, nothing wrong (the false-alarm count is taken on it);
- ``calibration_fault``: from ``onset_h`` to ``end_h`` one radar's area (a region of the catalog) reads
  ``factor`` times the truth (0.7: 30 % low);
- ``regime_change``: over ``ramp_h`` hours from ``onset_h`` the weather turns more convective (the cores
  of a second world, seed + 1, above 2 mm/h join in with a weight rising to ``intensify - 1``, and cores
  intensify: ``v -> v * (1 + (intensify - 1) * tanh(v / 20))``) and moves faster (the world's clock runs
  ``speedup`` times faster by the end: faster motion and faster life cycles);
- ``degraded_model``: the weather of ``steady``; the model promoted at ``onset_h`` is degraded (its
  weights perturbed: `forecast.model.perturb`), which the scenario records but does not render;
- ``revised_observation``: the weather of ``steady``; the slot at ``onset_h`` is delivered again later
  with one radar's area corrected by ``factor`` (a revision that moves a verification result).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.synthetic.context import Context
from forecast.synthetic.fields import PRECIP_THRESHOLD, natural_fields
from forecast.timeutil import iso, to_epoch, utc

__all__ = ["SCENARIOS", "Scenario", "scenario", "scenario_fields", "truth_of", "write_scenario"]


@dataclass(frozen=True)
class Scenario:
    """What goes wrong, when, and by how much (times in hours after the scenario's start)."""

    name: str
    hours: float
    onset_h: float | None = None
    end_h: float | None = None
    region: str | None = None  # calibration_fault / revised_observation: the catalog region affected
    factor: float = 1.0
    ramp_h: float = 0.0
    speedup: float = 1.0
    intensify: float = 1.0
    delay_h: float = 2.0  # revised_observation: how long after the slot the correction arrives
    description: str = ""
    expect: dict = field(default_factory=dict)  # what the monitor should do (rule -> fire / quiet)

    def to_json(self) -> dict:
        return asdict(self)


SCENARIOS: dict[str, Scenario] = {
    "steady": Scenario("steady", hours=168.0, description="a week of natural weather (three days of reference, four "
                       "monitored); nothing goes wrong",
                       expect={"alerts": "none"}),
    "calibration_fault": Scenario(
        "calibration_fault", hours=150.0, onset_h=110.0, end_h=122.0, region="radar_se", factor=0.7,
        description="after three days (the reference) and more, from hour 110 to 122 one radar's area (radar_se) "
                    "reads 30 % low (seed 0 rains on its edge then)",
        expect={"input_drift_short": "fires after the onset, names a feature of radar_se, resolves after the end"}),
    "regime_change": Scenario(
        "regime_change", hours=216.0, onset_h=144.0, ramp_h=48.0, speedup=1.6, intensify=1.6,
        description="after six days (the reference), over two days the weather turns more convective and moves "
                    "60 % faster",
        expect={"input_drift_long": "fires during the ramp", "input_drift_short": "stays quiet"}),
    "degraded_model": Scenario(
        "degraded_model", hours=24.0, onset_h=14.0, factor=0.5,
        description="at hour 14 a model whose weights are perturbed (noise of 0.5 x each tensor's sd) is "
                    "promoted by override",
        expect={"skill_drop": "fires within a few cycles of the first verified degraded forecast"}),
    "revised_observation": Scenario(
        "revised_observation", hours=6.0, onset_h=3.0, region="radar_se", factor=1.5, delay_h=1.5,
        description="the slot at hour 3 is delivered again 90 min later, radar_se corrected by x1.5",
        expect={"verification": "preliminary and final versions of the inits that used the slot"}),
}


def scenario(name: str, **changes) -> Scenario:
    """A preset scenario, optionally changed (``scenario("steady", hours=6)``).

    Raises:
        BadInputError: an unknown name (the message lists them) or an unknown field.
    """
    if name not in SCENARIOS:
        raise BadInputError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}", param="scenario")
    try:
        return replace(SCENARIOS[name], **changes)
    except TypeError as e:
        raise BadInputError(f"scenario {name}: {e}") from None


def _ramp(sc: Scenario, h: float) -> float:
    """0 before the onset, 1 after the ramp, linear between (the share of the regime change reached)."""
    if sc.onset_h is None or h < sc.onset_h:
        return 0.0
    if sc.ramp_h <= 0:
        return 1.0
    return min(1.0, (h - sc.onset_h) / sc.ramp_h)


def _world_time(sc: Scenario, start_s: float, t_s: float) -> float:
    """The time the natural world is rendered at: runs faster during and after a regime change (the
    integral of a speed rising linearly from 1 to ``speedup`` over the ramp)."""
    if sc.name != "regime_change" or sc.onset_h is None or sc.speedup == 1.0:
        return t_s
    h = (t_s - start_s) / 3600.0
    h0, r = sc.onset_h, max(sc.ramp_h, 1e-9)
    if h <= h0:
        return t_s
    a = sc.speedup - 1.0
    in_ramp = min(h, h0 + r) - h0
    extra = a * in_ramp * in_ramp / (2 * r) + (a * (h - h0 - r) if h > h0 + r else 0.0)
    return t_s + extra * 3600.0


def _region_mask(catalog: Catalog, name: str) -> np.ndarray:
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.strata import region_masks

    specs = [r for r in monitoring_config(catalog).regions if r.name == name]
    if not specs:
        known = ", ".join(r.name for r in monitoring_config(catalog).regions) or "none"
        raise BadInputError(f"scenario region {name!r} is not a region of catalog {catalog.id} (regions: {known})",
                            param="region")
    regions = region_masks(catalog, specs)
    if not regions:
        raise BadInputError(f"scenario region {name!r} covers no cell of the grid of {catalog.id}", param="region")
    return regions[0].mask


_SECOND_WORLDS: dict[tuple[str, int], Context] = {}


def _second_world(ctx: Context) -> Context:
    """The same catalog's world under the next seed (its convective cores join a regime change)."""
    key = (ctx.catalog.id, ctx.seed)
    if key not in _SECOND_WORLDS:
        _SECOND_WORLDS.clear()
        _SECOND_WORLDS[key] = Context(ctx.catalog, ctx.seed + 1)
    return _SECOND_WORLDS[key]


def scenario_fields(ctx: Context, sc: Scenario, start_s: float, t_s: float,
                    mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every variable's field at ``t_s`` (native units) in the scenario that started at ``start_s``."""
    wt = _world_time(sc, start_s, t_s)
    fields = natural_fields(ctx, wt)
    h = (t_s - start_s) / 3600.0
    out = {}
    for spec in ctx.specs:
        v = fields[spec.vid]
        if spec.kind == "precipitation":
            if sc.name == "regime_change":
                g = _ramp(sc, h) * (sc.intensify - 1.0)
                if g:
                    extra = natural_fields(_second_world(ctx), wt)[spec.vid]
                    extra = np.where(extra >= 2.0, extra * np.float32(min(g, 1.0)), 0).astype(np.float32)
                    v = np.maximum(v, extra)
                    v = (v * (1.0 + g * np.tanh(v / 20.0))).astype(np.float32)
                    v[v < PRECIP_THRESHOLD] = 0.0
            if sc.name == "calibration_fault" and sc.onset_h is not None and sc.onset_h <= h < (sc.end_h or math.inf):
                v = np.where(mask, v * np.float32(sc.factor), v).astype(np.float32)
                v[v < PRECIP_THRESHOLD] = 0.0  # the radar reports below its threshold as 0
        elif sc.name == "regime_change":
            v = (v + np.float32(2.0 * _ramp(sc, h))).astype(np.float32)  # a warmer, more convective regime
        out[spec.vid] = v
    return out


def truth_of(sc: Scenario, start: datetime) -> dict:
    """When the scenario's change starts and ends, as times (for the bench's detection delays)."""
    s = utc(start)
    return {"scenario": sc.name, "start": iso(s), "end": iso(s + timedelta(hours=sc.hours)),
            "onset": iso(s + timedelta(hours=sc.onset_h)) if sc.onset_h is not None else None,
            "fault_end": iso(s + timedelta(hours=sc.end_h)) if sc.end_h is not None else None}


def write_scenario(catalog: Catalog, sc: Scenario, *, start: datetime, out: Path, seed: int = 0,
                   complevel: int = 1) -> dict:
    """Write the scenario's feed: one CF NetCDF file per slot in ``out`` (and, for ``revised_observation``,
    the corrected file in ``out/revised/``), ``scenario.json`` (the scenario, its truth and the files) and a
    ``manifest.json`` in the sample generator's format, so that `forecast replay` feeds it to a live worker.
    Returns the scenario document."""
    from forecast.synthetic.writer import Writer, _encode, file_name

    start = utc(start)
    ax = catalog.time
    slot = ax.slot_of(to_epoch(start))
    if slot is None or int(ax.label(slot)) != to_epoch(start):
        raise BadInputError(f"start {iso(start)} is not on the time axis of {catalog.id}", param="start")
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {catalog.id!r} has a monthly time axis; scenarios need a sub-daily axis")
    out = Path(out)
    (out / "revised").mkdir(parents=True, exist_ok=True)
    ctx = Context(catalog, int(seed))
    mask = _region_mask(catalog, sc.region) if sc.region else None
    writer = Writer(ctx, int(complevel))
    step = int(ax.step_seconds)
    start_s = to_epoch(start)
    n = int(round(sc.hours * 3600 / step))
    files, revised = [], []
    rev_slot = int(round(sc.onset_h * 3600 / step)) if sc.name == "revised_observation" else None
    for i in range(n):
        t_s = start_s + i * step
        native = scenario_fields(ctx, sc, start_s, t_s, mask)
        chunks = {}
        for spec in ctx.specs:
            v = native[spec.vid]
            if spec.scale != 1.0 or spec.offset != 0.0:
                v = (v * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32)
            chunks[spec.vid] = _encode(np.asarray(v, np.float32), int(complevel))
        name = file_name(catalog, t_s)
        writer.write(out / name, t_s, chunks)
        files.append(name)
        if i == rev_slot:
            corrected = {}
            for spec in ctx.specs:
                v = native[spec.vid]
                if spec.kind == "precipitation":
                    v = np.where(mask, v * np.float32(sc.factor), v).astype(np.float32)
                if spec.scale != 1.0 or spec.offset != 0.0:
                    v = (v * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32)
                corrected[spec.vid] = _encode(np.asarray(v, np.float32), int(complevel))
            writer.write(out / "revised" / name, t_s, corrected)
            revised.append({"file": f"revised/{name}", "slot": iso(t_s),
                            "deliver_at": iso(t_s + int(sc.delay_h * 3600))})
    doc = {"scenario": sc.to_json(), "truth": truth_of(sc, start), "dataset": catalog.id, "seed": int(seed),
           "step_s": step, "files": files, "revised": revised}
    (out / "scenario.json").write_text(json.dumps(doc, indent=1) + "\n")
    # the feed order `forecast replay` reads (the sample generator's manifest format, its slots and files)
    rev_names = {r["slot"]: r["file"] for r in revised}
    slots = [{"time": iso(start_s + i * step), "status": "revised" if iso(start_s + i * step) in rev_names else "ok",
              "files": [name] + ([rev_names[iso(start_s + i * step)]] if iso(start_s + i * step) in rev_names else [])}
             for i, name in enumerate(files)]
    (out / "manifest.json").write_text(json.dumps({"dataset": catalog.id, "generator": "forecast.synthetic.scenarios",
                                                   "scenario": sc.name, "slots": slots, "faults": []}, indent=1) + "\n")
    return doc
