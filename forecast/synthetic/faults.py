"""The planted faults of a synthetic sample: which slots go missing, late, duplicated, revised or corrupt, and
where the spikes, impossible values, stuck block and record extreme go (``plan_faults``, all decided before any
file is written); then a slot's fields with its faults in (``render``) and the corrected file's (``revise``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.synthetic.context import TAG_PLAN, Context, VarSpec, fval, month_of, stream
from forecast.synthetic.fields import PRECIP_THRESHOLD, diurnal_phase, natural_fields

FAULTS = ("spike", "impossible", "stuck", "record_extreme", "missing", "late", "duplicate", "revised", "corrupt")

_STUCK_SLOTS = 12
RECORD_RAMP = (0.35, 0.7, 1.0, 1.0, 1.0, 0.7, 0.35)  # intensity of the planted extreme over its slots
_N_SPIKES = 3
_N_IMPOSSIBLE = 3
CORRUPT_FRACTION = 0.4  # a corrupt file keeps this share of a valid file's bytes


@dataclass
class Plan:
    """What to write for every slot, and which faults go where (all decided before any file is written)."""

    labels: list[int]  # slot times, seconds since 1970
    status: dict[int, str] = field(default_factory=dict)  # slot -> ok | missing | late | duplicate | revised | corrupt
    record: dict[str, Any] | None = None  # the planted extreme: variable, slots, track / centre, factors
    stuck: dict[str, Any] | None = None
    points: list[dict[str, Any]] = field(default_factory=list)  # spikes and impossible values
    revised: dict[str, Any] | None = None


def base_fields(ctx: Context, plan: Plan, slot: int) -> dict[str, np.ndarray]:
    """Natural fields of a slot (with the planted record extreme, which is meant to look natural), file units."""
    t_s = float(plan.labels[slot])
    out: dict[str, np.ndarray] = {}
    rec = plan.record if plan.record is not None and slot in plan.record["slots"] else None
    native = natural_fields(ctx, t_s)
    for spec in ctx.specs:
        v = native[spec.vid]
        if rec is not None and rec["variable"] == spec.vid:
            v = _apply_record(ctx, spec, rec, slot, t_s, v)
        out[spec.vid] = (v * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32) if (
            spec.scale != 1.0 or spec.offset != 0.0) else v
    return out


def _apply_record(ctx: Context, spec: VarSpec, rec: dict, slot: int, t_s: float, v: np.ndarray) -> np.ndarray:
    """The planted extreme in native units: smooth, coherent, and beyond the record only in its core slots."""
    j = rec["slots"].index(slot)
    g = RECORD_RAMP[j]
    cy, cx = rec["centres"][j]
    record = spec.rec_max[month_of(t_s)]
    yy = (np.arange(ctx.ny, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(ctx.nx, dtype=np.float32) - np.float32(cx))[None, :]
    r2 = (yy * yy + xx * xx) / np.float32(rec["radius"] ** 2)
    if spec.kind == "precipitation":
        # A storm core elongated along the wind and moving with it; the ramp slots stay below the record.
        u_w, v_w = ctx.wind(t_s)
        # Unit vector of the wind in (row, column) index space.
        dr, dc = v_w / ctx.step_y_m, u_w / ctx.step_x_m
        norm = math.hypot(dr, dc) or 1.0
        dr, dc = np.float32(dr / norm), np.float32(dc / norm)
        along = (yy * dr + xx * dc) / np.float32(1.25)
        across = (xx * dr - yy * dc) / np.float32(0.8)
        q = (along * along + across * across) / np.float32(rec["radius"] ** 2)
        peak = record * (rec["factor"] if g == 1.0 else 0.3 + 0.45 * g)
        # Gaussian top (a coherent area beyond the record) with a steeper flank, so the rain area stays compact.
        storm = np.float32(peak) * np.exp(-0.5 * q - 0.08 * q * q)
        storm[storm < PRECIP_THRESHOLD] = 0
        return np.maximum(v, storm)
    # Temperature (or generic): blend towards a hot plateau with a flat-topped (super-Gaussian) weight; the
    # plateau keeps a little of the diurnal cycle and of the field below, so no cell repeats a value.
    w = np.float32(0.97 * g) * np.exp(-(r2 * r2))
    d = diurnal_phase(ctx.local_hour(t_s, ctx.lon)) if spec.kind != "generic" else np.float32(1.0)
    ex = np.float32(rec["excess"])
    hot = np.float32(record) + ex * (np.float32(0.8) + np.float32(0.2) * d) + np.float32(0.4) * ex * (np.exp(-r2) - 1)
    # Keep a quarter of the terrain's imprint (relative to the centre) so the hot area is not a flat disc.
    iy, ix = int(round(min(max(cy, 0), ctx.ny - 1))), int(round(min(max(cx, 0), ctx.nx - 1)))
    hot = hot + np.float32(0.25) * (v - v[iy, ix])
    return (v + w * (hot - v)).astype(np.float32)


def plan_faults(ctx: Context, catalog: Catalog, labels: list[int], faults: set[str], seed: int) -> Plan:
    """Decide every fault of a sample (slots, cells, values) before any file is written; ``faults`` are names
    from ``FAULTS``."""
    plan = Plan(labels=labels)
    r = stream(seed, TAG_PLAN)
    n = len(labels)
    ny, nx = ctx.ny, ctx.nx
    specs = ctx.specs
    primary = specs[0]

    # --- time: file faults take their own slots; value faults live in clean, on-time files -------------
    n_missing = (2 + int(r.integers(0, 2))) if "missing" in faults else 0
    n_late = (2 + int(r.integers(0, 2))) if "late" in faults else 0
    singles = [k for k in ("duplicate", "revised", "corrupt") if k in faults]
    window = max(_STUCK_SLOTS if "stuck" in faults else 0, len(RECORD_RAMP) if "record_extreme" in faults else 0)
    points = (_N_SPIKES if "spike" in faults else 0) + (_N_IMPOSSIBLE if "impossible" in faults else 0)
    need_value = max(window, 1 if points else 0)
    n_file = len(singles) + n_missing + n_late
    if n_file + need_value > n:
        # Shrink the optional third missing / late slot before giving up.
        while n_file + need_value > n and (n_missing > 2 or n_late > 2):
            if n_late > 2:
                n_late -= 1
            else:
                n_missing -= 1
            n_file = len(singles) + n_missing + n_late
    if n_file + need_value > n:
        step = catalog.time.step
        sec = catalog.time.step_seconds
        hint = f"ask for at least {(n_file + need_value) * sec / 3600:g} hours" if sec else "ask for more hours"
        raise BadInputError(
            f"the faults asked for ({', '.join(sorted(faults))}) need at least {n_file + need_value} time slots "
            f"of {step} but the sample has {n}; {hint} or fewer faults"
        )
    block = range(0, 0)
    rec_off = 0
    if window:
        b0 = int(r.integers(0, n - window + 1))
        if "record_extreme" in faults:
            # Records are broken in the afternoon (heat, convection): put the extreme's core nearest 15:30
            # local solar time that the sample allows, with a random tie-break.
            best = None
            for cb in range(n - window + 1):
                for co in range(window - len(RECORD_RAMP) + 1):
                    hour = float(ctx.local_hour(labels[cb + co + len(RECORD_RAMP) // 2], ctx.lon_c))
                    score = abs((hour - 15.5 + 12.0) % 24.0 - 12.0) + float(r.uniform(0, 0.5))
                    if best is None or score < best[0]:
                        best = (score, cb, co)
            _, b0, rec_off = best
        block = range(b0, b0 + window)
    free = [i for i in range(n) if i not in block]
    # Keep the first and last slots on time where the sample allows: a late file then lands behind the
    # newest slot already ingested (what the store calls late), and the sample's extent stays anchored.
    inner = [i for i in free if 0 < i < n - 1]
    if len(inner) >= n_file:
        free = inner
    file_slots = [int(i) for i in r.permutation(free)[:n_file]]
    kinds = ["missing"] * n_missing + ["late"] * n_late + singles
    for i in range(n):
        plan.status[i] = "ok"
    for i, k in zip(file_slots, kinds):
        plan.status[i] = k
    clean = [i for i in range(n) if plan.status[i] == "ok"]

    margin = max(3, min(10, min(ny, nx) // 12))
    reserved = np.zeros((ny, nx), bool)  # cells kept free of point faults (regions plus margin)

    def reserve(y0: int, y1: int, x0: int, x1: int) -> None:
        reserved[max(0, y0 - margin): y1 + margin + 1, max(0, x0 - margin): x1 + margin + 1] = True

    def too_small(what: str) -> BadInputError:
        return BadInputError(
            f"the {ny} x {nx} grid of {catalog.id!r} is too small to plant the {what} fault apart from the "
            f"others; use a larger grid or fewer faults"
        )

    # --- record extreme --------------------------------------------------------------------------------
    if "record_extreme" in faults:
        spec = next((s for s in specs if s.kind == "precipitation" and s.rec_max), None) or next(
            (s for s in specs if s.kind == "air_temperature" and s.rec_max), None) or next(
            (s for s in specs if s.rec_max), None)
        if spec is None:
            raise BadInputError(
                f"fault 'record_extreme' needs a variable with a climatological record max; catalog "
                f"{catalog.id!r} has none"
            )
        slots = list(range(block.start + rec_off, block.start + rec_off + len(RECORD_RAMP)))
        if spec.kind == "precipitation":
            radius = 6.0 if min(ny, nx) >= 96 else max(2.5, min(ny, nx) / 16)
            track = [ctx.shift_px(float(labels[i])) for i in slots]
            off = np.array(track) - np.array(track[0])
            pad = 2.5 * radius
            lo_y, hi_y = pad - off[:, 0].min(), ny - 1 - pad - off[:, 0].max()
            lo_x, hi_x = pad - off[:, 1].min(), nx - 1 - pad - off[:, 1].max()
            if lo_y > hi_y or lo_x > hi_x:
                raise too_small("record_extreme")
            c0 = (r.uniform(lo_y, hi_y), r.uniform(lo_x, hi_x))
            centres = [(float(c0[0] + o[0]), float(c0[1] + o[1])) for o in off]
            rec = max(spec.rec_max[month_of(labels[i])] for i in slots)
            factor = float(min(r.uniform(1.2, 1.3), (rec + 0.8 * (spec.phys[1] - rec)) / rec))
            extent = 3.6 * radius
            excess = 0.0
        else:
            radius = float(max(3.0, min(ny, nx) / 7))
            pad = 1.7 * radius
            if 2 * pad >= min(ny, nx) - 1:
                raise too_small("record_extreme")
            c = (float(r.uniform(pad, ny - 1 - pad)), float(r.uniform(pad, nx - 1 - pad)))
            centres = [c] * len(slots)
            factor = 1.0
            room = spec.phys[1] - max(spec.rec_max)
            excess = float(min(2.5, 0.45 * room))
            extent = 1.8 * radius
        plan.record = {"variable": spec.vid, "slots": slots, "centres": centres, "radius": float(radius),
                       "factor": factor, "excess": excess}
        cys = [c[0] for c in centres]
        cxs = [c[1] for c in centres]
        reserve(int(min(cys) - extent), int(max(cys) + extent) + 1, int(min(cxs) - extent), int(max(cxs) + extent) + 1)

    # --- stuck -----------------------------------------------------------------------------------------
    if "stuck" in faults:
        size = max(2, min(6, ny // 8, nx // 8))
        if min(ny, nx) < size + 2 * margin:
            raise too_small("stuck")
        for _ in range(500):
            y0, x0 = int(r.integers(margin, ny - size - margin + 1)), int(r.integers(margin, nx - size - margin + 1))
            if not reserved[y0: y0 + size, x0: x0 + size].any():
                break
        else:
            raise too_small("stuck")
        slots = list(range(block.start, block.start + _STUCK_SLOTS))
        if primary.kind == "precipitation":
            # mm/h: steady light rain, clearly not 0 (a stuck 0 would be indistinguishable from a dry spell).
            value = fval(primary.to_file(float(r.choice([2.5, 3.0, 3.75, 4.25, 5.5]))))
        else:
            first = base_fields(ctx, plan, slots[0])[primary.vid]
            value = round(float(first[y0: y0 + size, x0: x0 + size].mean()) * 8) / 8
        plan.stuck = {"variable": primary.vid, "slots": slots, "bbox": [y0, y0 + size - 1, x0, x0 + size - 1],
                      "value": value}
        reserve(y0, y0 + size - 1, x0, x0 + size - 1)

    # --- spikes and impossible values: isolated cells in clean slots, far from everything else ------------
    kinds_pts = ["spike"] * (_N_SPIKES if "spike" in faults else 0) + (
        ["impossible"] * _N_IMPOSSIBLE if "impossible" in faults else [])
    pt_slots = [int(i) for i in r.permutation(clean)]
    pt_slots = (pt_slots * (len(kinds_pts) // max(1, len(pt_slots)) + 1))[: len(kinds_pts)]
    edge = np.zeros((ny, nx), bool)
    edge[:3, :] = edge[-3:, :] = edge[:, :3] = edge[:, -3:] = True
    from scipy import ndimage

    for j, (kind, slot) in enumerate(zip(kinds_pts, pt_slots)):
        spec = specs[j % len(specs)]
        fields = base_fields(ctx, plan, slot)
        v = fields[spec.vid]
        allowed = ~(reserved | edge)
        if not allowed.any():
            raise too_small(kind)
        if spec.kind == "precipitation":
            # Spikes need a dry-ish neighbourhood (< 2 mm/h) to be unambiguous; so do impossible values.
            calm = ndimage.maximum_filter(v, size=7, mode="nearest") < spec.to_file(2.0)
            cand = np.flatnonzero(allowed & calm)
            if cand.size == 0:
                cand = np.flatnonzero(allowed)
        else:
            cand = np.flatnonzero(allowed)
        iy, ix = (int(a) for a in np.unravel_index(int(cand[r.integers(0, cand.size)]), (ny, nx)))
        background = float(v[iy, ix])
        lo, hi = spec.phys
        if kind == "spike":
            if spec.kind == "precipitation":
                native = round(float(r.uniform(80.0, 150.0)) * 4) / 4
                value = fval(spec.to_file(native))
            else:
                delta = round(float(r.uniform(12.0, 18.0)) * 4) / 4 * (1 if spec.kind != "generic" else
                                                                      (hi - lo) / 20 / 15)
                value = fval(min(background + delta * spec.scale, spec.to_file(hi) - 0.5 * abs(spec.scale)))
        else:
            k = sum(1 for p in plan.points if p["kind"] == "impossible")
            if spec.kind == "precipitation":
                bad = (hi + 400.0) if k % 2 == 0 else (lo - 20.0)
            elif spec.kind in ("air_temperature", "dew_point"):
                bad = max(400.0, hi + 20.0) if k % 2 == 0 else lo - 30.0
            else:
                bad = hi + 0.5 * (hi - lo) if k % 2 == 0 else lo - 0.5 * (hi - lo)
            value = fval(spec.to_file(bad))
        plan.points.append({"kind": kind, "variable": spec.vid, "slot": slot, "cell": [iy, ix], "value": value,
                            "background": fval(background)})
        reserve(iy, iy, ix, ix)

    # --- revised: the corrected file changes one block ------------------------------------------------
    rev_slots = [i for i, s in plan.status.items() if s == "revised"]
    if rev_slots:
        slot = rev_slots[0]
        spec = primary
        size = max(4, min(24, ny // 4, nx // 4))
        v = base_fields(ctx, plan, slot)[spec.vid]
        if spec.kind == "precipitation":
            wet = ndimage.uniform_filter((v > 0).astype(np.float32), size=size, mode="constant")
            cy, cx = np.unravel_index(int(np.argmax(wet)), v.shape)
            y0 = int(np.clip(cy - size // 2, 0, ny - size))
            x0 = int(np.clip(cx - size // 2, 0, nx - size))
            blk = v[y0: y0 + size, x0: x0 + size]
            if (blk > 0).any():
                op = {"operation": "multiply", "factor": 1.5,
                      "description": "the corrected file has the rain rates of the block multiplied by 1.5"}
            else:
                op = {"operation": "add", "amount": fval(spec.to_file(0.5) - spec.to_file(0.0)),
                      "description": "the corrected file adds 0.5 mm/h of rain over the (dry) block"}
        else:
            y0, x0 = int(r.integers(0, ny - size + 1)), int(r.integers(0, nx - size + 1))
            amount = 2.0 * spec.scale if spec.kind != "generic" else 0.05 * (spec.phys[1] - spec.phys[0]) * spec.scale
            op = {"operation": "add", "amount": float(amount),
                  "description": f"the corrected file adds {amount:g} {spec.units} over the block"}
        plan.revised = {"variable": spec.vid, "slot": slot, "bbox": [y0, y0 + size - 1, x0, x0 + size - 1], **op}
    return plan


def render(ctx: Context, plan: Plan, slot: int) -> dict[str, np.ndarray]:
    """A slot's fields as the preliminary / on-time file carries them (faults planted), file units."""
    f = base_fields(ctx, plan, slot)
    st = plan.stuck
    if st is not None and slot in st["slots"]:
        y0, y1, x0, x1 = st["bbox"]
        f[st["variable"]][y0: y1 + 1, x0: x1 + 1] = np.float32(st["value"])
    for p in plan.points:
        if p["slot"] == slot:
            f[p["variable"]][p["cell"][0], p["cell"][1]] = np.float32(p["value"])
    return f


def revise(plan: Plan, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rv = plan.revised
    out = {k: v.copy() for k, v in fields.items()}
    y0, y1, x0, x1 = rv["bbox"]
    blk = out[rv["variable"]][y0: y1 + 1, x0: x1 + 1]
    if rv["operation"] == "multiply":
        blk *= np.float32(rv["factor"])
    else:
        blk += np.float32(rv["amount"])
    return out
