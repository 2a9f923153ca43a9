"""Running a QC config over an xarray Dataset: all stages of a variable fused into one pass per
block (one overlap of the blocks for all neighbourhood tests), yielding ``v_qc`` and ``v_qc_tests``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qc.checks import common
from qc.checks.common import GOOD, NOT_EVALUATED, as_float, outside
from qc.checks.cross_variable import cross_variable_core
from qc.checks.halo import is_dask, run_core
from qc.checks.range import climatology_core, missing_core, range_core
from qc.checks.spatial import spatial_core
from qc.checks.temporal import flat_line_core, rate_of_change_core, spike_core
from qc.config import TEMPORAL_TESTS, QCConfig, VariableMeta, load_qc_config
from qc.errors import QCConfigError, QCError
from qc.flags import PACK_DTYPE, aggregate_packed, cf_attrs, qc_name, split_packed, tests_name

__all__ = ["run_checks", "time_reach"]

_NEIGHBOURHOOD = (*TEMPORAL_TESTS, "spatial")
_TEMPORAL_CORES = {"spike": spike_core, "rate_of_change": rate_of_change_core, "flat_line": flat_line_core}


@dataclass(frozen=True)
class _Cross:
    role: str  # which side of the rule this variable is: "a" or "b"
    rule: str
    tolerance: float
    fail_tolerance: float | None
    partner_range: tuple[float | None, float | None] | None


@dataclass(frozen=True)
class _Plan:
    var: str
    stages: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    needs_months: bool = False
    ref_kinds: tuple[str, ...] = ()
    cross: tuple[_Cross, ...] = ()
    mask_impossible: bool = True
    halo: dict[int, tuple[int, int]] = field(default_factory=dict)
    slab_axis: int | None = None  # an axis the block may be cut along (not time)


def _fused(blocks, *, plan: _Plan, core):
    """Every stage of one variable over one block (with its halo); returns ``tests | qc << 8``.

    Works through the block in slabs of rows (plus the spatial halo the slab needs), assembled
    from the block and its neighbours' edges on demand, so that the intermediates of all stages
    stay in cache and no overlapped copy of the whole block is ever made.
    """
    xb, sides = blocks[0], blocks[1:]
    shape = xb.shape
    ax = plan.slab_axis
    size = int(np.prod(shape))
    if ax is None or size <= common.SLAB_CELLS:
        return _fused_block(xb.get(), *[s.get() for s in sides], plan=plan, core=core)
    bounds = [(c.start or 0, n if c.stop is None else c.stop) for c, n in zip(core, shape)]
    out = np.empty(tuple(hi - lo for lo, hi in bounds), dtype=PACK_DTYPE)
    r = plan.halo.get(ax, (0, 0))[0]
    y0, y1 = bounds[ax]
    rows = max(1, common.SLAB_CELLS // (size // shape[ax]))
    for a in range(y0, y1, rows):
        b = min(a + rows, y1)
        s0, s1 = max(a - r, 0), min(b + r, shape[ax])
        region = {ax: (s0, s1)}
        sub_core = list(core)
        sub_core[ax] = slice(a - s0, b - s0)
        o = [slice(None)] * len(shape)
        o[ax] = slice(a - y0, b - y0)
        out[tuple(o)] = _fused_block(
            xb.get(region), *[s.get(region) for s in sides], plan=plan, core=tuple(sub_core)
        )
    return out


def _fused_block(x, *side, plan: _Plan, core):
    x = as_float(x)
    it = iter(side)
    months = next(it) if plan.needs_months else None
    refs = [next(it) for _ in plan.ref_kinds]
    partners = [next(it) for _ in plan.cross]
    sp = (slice(None),) + tuple(core[1:])  # the block's own cells, all its time slots

    nan_full = np.isnan(x)
    has_nan = bool(nan_full.any())
    xc = x[core]
    nan_c = nan_full[core] if has_nan else False
    work, work_has_nan = x, has_nan  # the values neighbourhood stages see
    imp_c = None
    names: list[str] = []
    flags: list[np.ndarray] = []
    for test, params in plan.stages:
        p = dict(params)
        if test == "missing":
            f = missing_core(xc, nan=nan_c)
        elif test == "physical_range":
            f = range_core(xc, nan=nan_c, **p)
            if plan.mask_impossible:
                imp = outside(x, p["low"], p["high"])
                if imp.any():
                    work = np.where(imp, x.dtype.type(np.nan), x)
                    work_has_nan = True
                    imp_c = imp[core]
        elif test == "climatology":
            r = [ref[(slice(None),) + tuple(core[1:])] for ref in refs]
            f = climatology_core(xc, np.asarray(months)[core[0]], *r, nan=nan_c, **p)
        elif test in TEMPORAL_TESTS:
            sub = work[sp]
            f = _TEMPORAL_CORES[test](sub, nan=None if work_has_nan else False, **p)[core[0]]
        elif test == "spatial":
            f = spatial_core(work, core=core, nan=None if work_has_nan else False, **p)
        else:  # pragma: no cover - the config admits no other test
            raise QCError(f"unknown test {test!r}")
        if imp_c is not None and test in _NEIGHBOURHOOD:
            np.copyto(f, NOT_EVALUATED, where=imp_c)
        names.append(test)
        flags.append(f)

    if plan.cross:
        mine = work[core]
        combined = None
        for rule, partner in zip(plan.cross, partners):
            pc = as_float(partner[core])
            if plan.mask_impossible and rule.partner_range is not None:
                bad = outside(pc, *rule.partner_range)
                if bad.any():
                    pc = np.where(bad, pc.dtype.type(np.nan), pc)
            a, b = (mine, pc) if rule.role == "a" else (pc, mine)
            f = cross_variable_core(a, b, rule=rule.rule, tolerance=rule.tolerance, fail_tolerance=rule.fail_tolerance)
            if combined is None:
                combined = f
            else:
                good = (combined == 1) | (f == 1)
                np.maximum(combined, f, out=combined)
                np.copyto(combined, GOOD, where=(combined == 2) & good)
        names.append("cross_variable")
        flags.append(combined)

    return aggregate_packed(tuple(names), *flags)


def _stage_reach(st) -> tuple[int, int]:
    """Slots before and after a value that one stage's flag of that value looks at (gaps skipped within
    ``max_gap`` included)."""
    if st.test == "spike":
        r = st.max_gap + 1
        return r, r
    if st.test == "rate_of_change":  # the previous valid value and, for the return exemption, the one before it
        return 2 * (st.max_gap + 1), 0
    if st.test == "flat_line":
        return max(st.suspect_count, st.fail_count or 0), 0
    return 0, 0  # the other stages judge a value by its own slot


def time_reach(config: QCConfig) -> tuple[int, int]:
    """``(back, fwd)``: the flag of a slot depends on the values of at most ``back`` slots before it and
    ``fwd`` slots after it, over every variable of ``config``. So a changed slot changes flags ``fwd``
    slots before it and ``back`` after it, no further (what incremental QC re-checks)."""
    back = fwd = 0
    for var in config.variables:
        for st in config.stages(var):
            b, f = _stage_reach(st)
            back, fwd = max(back, b), max(fwd, f)
    return back, fwd


def _resolve_range(stage, meta: VariableMeta | None) -> tuple[float | None, float | None]:
    lo, hi = stage.low, stage.high
    if meta is not None and meta.physical_range is not None:
        lo = meta.physical_range[0] if lo is None else lo
        hi = meta.physical_range[1] if hi is None else hi
    return lo, hi


def _vec(v) -> np.ndarray | None:
    if v is None:
        return None
    return np.array([np.nan if e is None else float(e) for e in v], dtype=np.float64)


def _plan_variable(cfg: QCConfig, ds, var: str, meta: Mapping[str, VariableMeta], time_dim: str, problems: list[str]):
    where = f"qc.variables.{var}"
    if var not in ds.data_vars:
        problems.append(f"{where}: the dataset has no variable {var!r} (it has {sorted(map(str, ds.data_vars))})")
        return None
    da = ds[var]
    vm = meta.get(var)
    dims = (time_dim, *[d for d in da.dims if d != time_dim]) if time_dim in da.dims else tuple(da.dims)
    has_time = time_dim in da.dims
    stages = []
    needs_months = False
    ref_kinds: tuple[str, ...] = ()
    refs: list[Any] = []
    back = fwd = 0
    r_sp = 0
    mask_range = None
    offset = 0 if any(s.test == "missing" for s in cfg.variables.get(var, [])) else 1
    for i, st in enumerate(cfg.stages(var)):
        here = f"{where}[{i - offset}]"
        t = st.test
        if t == "missing":
            stages.append((t, ()))
        elif t == "physical_range":
            lo, hi = _resolve_range(st, vm)
            if lo is None and hi is None:
                problems.append(
                    f"{here}: physical_range needs low/high here or physical_range in the variable's "
                    f"catalog entry (got neither)"
                )
                continue
            if lo is not None and hi is not None and not lo < hi:
                problems.append(f"{here}: physical_range needs low < high (got low={lo}, high={hi})")
                continue
            mask_range = (lo, hi)
            stages.append((t, (("low", lo), ("high", hi))))
        elif t == "climatology":
            rmin = _vec(st.record_min) if st.record_min is not None else _vec(vm.record_min if vm else None)
            rmax = _vec(st.record_max) if st.record_max is not None else _vec(vm.record_max if vm else None)
            for name, vec in (("record_min", rmin), ("record_max", rmax)):
                if vec is not None and vec.size != 12:
                    problems.append(f"{here}: {name} needs 12 monthly values (got {vec.size})")
            ref = vm.reference if (vm is not None and st.use_reference) else None
            kinds = []
            if ref is not None:
                for side in ("min", "max"):
                    if side in ref:
                        arr = ref[side]
                        if hasattr(arr, "dims"):  # a DataArray: put its spatial dims in the variable's order
                            if set(arr.dims[1:]) == set(dims[1:]):
                                arr = arr.transpose(arr.dims[0], *dims[1:])
                            arr = arr.data
                        want = (12, *[da.sizes[d] for d in dims[1:]])
                        if tuple(arr.shape) != want:
                            problems.append(
                                f"{here}: the gridded reference {side!r} of {var!r} must have shape {want} "
                                f"(got {tuple(arr.shape)})"
                            )
                            continue
                        kinds.append(side)
                        refs.append(arr)
            if rmin is None and rmax is None and not kinds:
                problems.append(
                    f"{here}: climatology needs record_min/record_max here, a climatological record in the "
                    f"variable's catalog entry or a gridded reference (got none)"
                )
                continue
            if not has_time or not np.issubdtype(ds[time_dim].dtype, np.datetime64):
                problems.append(f"{here}: climatology needs a datetime {time_dim!r} coordinate on {var!r}")
                continue
            needs_months = True
            ref_kinds = tuple(kinds)
            stages.append((t, (("record_min", rmin), ("record_max", rmax), ("ref_kinds", ref_kinds))))
        elif t in TEMPORAL_TESTS:
            if not has_time:
                problems.append(f"{here}: {t} needs a {time_dim!r} dimension on {var!r} (dims {da.dims})")
                continue
            p = st.model_dump(exclude={"test"})
            b, f = _stage_reach(st)
            back, fwd = max(back, b), max(fwd, f)
            stages.append((t, tuple(p.items())))
        elif t == "spatial":
            if len(dims) - (1 if has_time else 0) < 2:
                problems.append(f"{here}: spatial needs two spatial dimensions on {var!r} (dims {da.dims})")
                continue
            p = st.model_dump(exclude={"test"})
            r_sp = max(r_sp, p["window"] // 2)
            stages.append((t, tuple(p.items())))
    halo: dict[int, tuple[int, int]] = {}
    if back or fwd:
        halo[0] = (back, fwd)
    if r_sp:
        halo[len(dims) - 2] = (r_sp, r_sp)
        halo[len(dims) - 1] = (r_sp, r_sp)
    nd = len(dims)
    if nd >= 3 or (nd == 2 and not has_time):
        slab_axis = nd - 2  # rows of the 2-D fields
    elif nd == 2:
        slab_axis = 1  # (time, station): stations are independent
    else:
        slab_axis = None
    return dict(
        slab_axis=slab_axis, dims=dims, stages=tuple(stages), needs_months=needs_months, ref_kinds=ref_kinds, refs=refs,
        halo=halo, mask_range=mask_range,
    )


def run_checks(ds, config: QCConfig | Mapping[str, Any], *, variables_meta: Mapping[str, Any], time_dim: str = "time"):
    """Run the configured QC stages over a dataset; return the flags beside (not in) it.

    Args:
        ds: an xarray Dataset; variables with a ``time_dim`` dimension (moved first internally)
            and, for the spatial test, two spatial dimensions last. Dask-backed variables give
            lazy results (one task per block; neighbourhood tests share one block overlap).
        config: a ``QCConfig`` or the ``qc:`` mapping (validated here).
        variables_meta: per variable, its physical range, monthly records, optional gridded
            reference and CF names: ``VariableMeta``, a dict, or the catalog's variable object.

    Returns:
        A Dataset with, per configured variable ``v``, ``v_qc`` (uint8) and ``v_qc_tests``
        (uint32), dims and coords as ``v``, CF attributes, and ``qc_config_hash`` in the attrs.
        ``v`` itself is never modified; put ``cf_attrs(v)["ancillary_variables"]`` on it when
        writing both.

    Raises:
        QCConfigError: when the config does not fit the dataset or metadata (unknown variable,
            no physical range or record to test against, missing dimensions), every problem
            with its path.
    """
    import xarray as xr

    cfg = load_qc_config(config)
    meta = {k: VariableMeta.coerce(v) for k, v in (variables_meta or {}).items()}
    problems: list[str] = []
    plans = {var: _plan_variable(cfg, ds, var, meta, time_dim, problems) for var in cfg.variables}

    crosses: dict[str, list[tuple[_Cross, str]]] = {v: [] for v in cfg.variables}
    for i, rule in enumerate(cfg.cross_variable):
        here = f"qc.cross_variable[{i}]"
        pa, pb = plans.get(rule.a), plans.get(rule.b)
        if pa is None or pb is None:
            continue  # already reported
        if set(pa["dims"]) != set(pb["dims"]) or any(ds[rule.a].sizes[d] != ds[rule.b].sizes[d] for d in pa["dims"]):
            problems.append(
                f"{here}: {rule.a!r} and {rule.b!r} must share dimensions and sizes "
                f"(got {dict(ds[rule.a].sizes)} and {dict(ds[rule.b].sizes)})"
            )
            continue
        for var in rule.flagged():
            role = "a" if var == rule.a else "b"
            partner = rule.b if role == "a" else rule.a
            crosses[var].append(
                (
                    _Cross(role, rule.rule, rule.tolerance, rule.fail_tolerance, plans[partner]["mask_range"]),
                    partner,
                )
            )
    if problems:
        raise QCConfigError(problems)

    h = cfg.config_hash()
    out: dict[str, Any] = {}
    for var, p in plans.items():
        v = ds[var].transpose(*p["dims"])
        plan = _Plan(
            var=var,
            stages=p["stages"],
            needs_months=p["needs_months"],
            ref_kinds=p["ref_kinds"],
            cross=tuple(c for c, _ in crosses[var]),
            mask_impossible=cfg.mask_impossible,
            halo=p["halo"],
            slab_axis=p["slab_axis"],
        )
        side: list[tuple[Any, str]] = []
        if plan.needs_months:
            side.append((ds[time_dim].dt.month.values.astype(np.int8), "time"))
        side += [(r, "month_spatial") for r in p["refs"]]
        for _, partner in crosses[var]:
            side.append((ds[partner].transpose(*p["dims"]).data, "full"))
        x = v.data
        if is_dask(x) and x.dtype.kind in "iu":
            x = x.astype(np.float64)
        packed = run_core(_fused, x, halo=plan.halo, side=side, dtype=PACK_DTYPE, plan=plan)
        qc_arr, tests_arr = split_packed(packed)
        vm = meta.get(var)
        sn = (vm.standard_name if vm else None) or ds[var].attrs.get("standard_name")
        ln = (vm.long_name if vm else None) or ds[var].attrs.get("long_name")
        attrs = cf_attrs(var, standard_name=sn, long_name=ln)
        qa = xr.DataArray(qc_arr, dims=v.dims, coords=v.coords, attrs={**attrs["qc"], "qc_config_hash": h})
        run = [t for t, _ in plan.stages] + (["cross_variable"] if plan.cross else [])
        ta = xr.DataArray(
            tests_arr,
            dims=v.dims,
            coords=v.coords,
            attrs={**attrs["tests"], "qc_tests_run": " ".join(run), "qc_config_hash": h},
        )
        out[qc_name(var)] = qa.transpose(*ds[var].dims)
        out[tests_name(var)] = ta.transpose(*ds[var].dims)
    return xr.Dataset(out, attrs={"qc_config_hash": h})
