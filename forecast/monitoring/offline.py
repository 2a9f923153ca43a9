"""The monitor's statistics run over a scenario without stores: the fields rendered by the sample generator
(`forecast.synthetic.scenarios`) go straight into the same functions the monitoring pass uses (input
features, drift windows, the per-init skill by `Verifier`, the change detector, the alert rules with their
hysteresis on a service database). Fast enough for scenario tests and for full-length benchmarks of
detection delay and false alarms (`bench/monitor.py`); the pass itself, through the stores, is tested and
timed beside it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from collections.abc import Callable

import numpy as np

__all__ = ["drift_events", "scenario_features", "skill_series"]


def scenario_features(cat, sc, start_s: float, *, seed: int = 0, variable: str = "precipitation_rate",
                      progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """The input features of every slot of scenario ``sc`` starting at ``start_s`` (`slot_features`)."""
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.drift import slot_features
    from forecast.monitoring.strata import is_precipitation, region_masks
    from forecast.synthetic.context import Context
    from forecast.synthetic.scenarios import scenario_fields

    regions = region_masks(cat, monitoring_config(cat).regions)
    mask = next((r.mask for r in regions if r.name == sc.region), None)
    ctx = Context(cat, seed)
    step = int(cat.time.step_seconds)
    km = abs(cat.grid.x.step) / 1000.0
    precip = is_precipitation(cat, variable)
    n = int(round(sc.hours * 3600 / step))
    rows, prev = [], None
    for i in range(n):
        f = scenario_fields(ctx, sc, start_s, start_s + i * step, mask)[variable]
        ok = np.isfinite(f)
        rows.append(slot_features(f, ok, np.zeros_like(ok), precipitation=precip, regions=regions, prev=prev,
                                  km_per_px=km, step_h=step / 3600.0))
        prev = f
        if progress is not None and i % 100 == 0:
            progress(i, n)
    return rows


def drift_events(db, cat, rows: list[dict], ref_slots: int, rules, *, start: datetime, every: int = 1,
                 variable: str = "precipitation_rate") -> list[tuple[int, str, Any]]:
    """Judge the short and long drift windows after the first ``ref_slots`` slots (the reference) every
    ``every`` slots, as the monitoring pass does, through the alert ``rules`` on ``db`` (a `MonitorDB`);
    returns (slot index, "fired" / "resolved", alert) of every change."""
    from forecast.monitoring.alerts import Evidence, apply_observations, evaluate_rules
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.drift import reference_statistics, window_drift

    cfg = monitoring_config(cat)
    step = int(cat.time.step_seconds)
    ref = reference_statistics(rows[:ref_slots], [str(i) for i in range(ref_slots)], period=["0", str(ref_slots)],
                               source="scenario reference")
    nominal = {"short": int(cfg.seconds("short_window") // step), "long": int(cfg.seconds("long_window") // step)}
    cache: dict = {"short": {}, "long": {}}
    events: list[tuple[int, str, Any]] = []
    for i in range(ref_slots + 1, len(rows) + 1, every):
        ev = Evidence(dataset=cat.id, variable=variable, now=start + timedelta(seconds=i * step))
        for w, n in nominal.items():
            ev.drift[w] = window_drift(rows[max(ref_slots, i - n):i], ref, n, cfg.drift, cache[w])
        obs = evaluate_rules(rules, ev, db.firing(cat.id, variable))
        apply_observations(db, ev, obs, rules, lambda a, e, r, i=i: events.append((i, e, a)))
    return events


def skill_series(cat, n_inits: int, *, start_s: float, degrade_from: int | None = None, shift: int = 9,
                 scale: float = 1.8, seed: int = 0, variable: str = "precipitation_rate",
                 progress: Callable[[int, int], None] | None = None) -> list[float | None]:
    """Per-init skill against persistence (`per_init_skill` over the first 12 leads, from a `Verifier` per
    init, as the verification does) of the extrapolation forecast standing in for a good model; from init
    ``degrade_from`` on the model is degraded (its forecast shifted by ``shift`` cells and scaled by
    ``scale``: what perturbed weights do to a nowcast)."""
    import xarray as xr

    from forecast.evaluation import Verifier
    from forecast.monitoring.detector import per_init_skill
    from forecast.monitoring.records import records_from_state
    from forecast.nowcast import get_method
    from forecast.synthetic.context import Context
    from forecast.synthetic.fields import natural_fields

    ctx = Context(cat, seed)
    step = int(cat.time.step_seconds)
    k, leads = 3, 12
    frames: dict[int, np.ndarray] = {}

    def field(i: int) -> np.ndarray:
        if i not in frames:
            frames[i] = natural_fields(ctx, start_s + step * i)[variable]
            frames.pop(i - k - leads - 2, None)
        return frames[i]

    out: list[float | None] = []
    for j in range(n_inits):
        inp = np.stack([field(j + q) for q in range(k)])
        times = np.array([np.datetime64(int(start_s + step * (j + q)), "s") for q in range(k)]).astype("datetime64[ns]")
        da = xr.DataArray(inp, dims=("time", "y", "x"), coords={"time": times})
        ext = np.asarray(get_method("extrapolation").predict(da, n_leads=leads, step=np.timedelta64(step, "s")).values)
        ext = np.where(np.isfinite(ext), ext, inp[-1])
        pers = np.repeat(inp[-1:], leads, axis=0)
        model = ext if degrade_from is None or j < degrade_from else np.roll(ext, shift, axis=-1) * scale
        obs = np.stack([field(j + k + q) for q in range(leads)])
        valid = np.isfinite(obs)
        v = Verifier(np.arange(1, leads + 1) * step, [1.0, 10.0], [1])
        init = np.datetime64(int(start_s + step * (j + k - 1)), "s")
        v.add(init, "model", model, obs, valid)
        v.add(init, "persistence", pers, obs, valid)
        r = records_from_state(v.to_state())
        out.append(per_init_skill(r["model"].sse, r["model"].n, r["persistence"].sse, r["persistence"].n, leads, 0.01))
        if progress is not None and j % 50 == 0:
            progress(j, n_inits)
    return out
