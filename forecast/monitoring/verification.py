"""Continuous verification: every production forecast whose valid times are observed is scored against
the observations, beside persistence and extrapolation on the same cases, by the hindcast's code path.

Per init (`verify_init`):

1. the production forecast and its provenance are read from the forecast store;
2. the references (persistence, extrapolation) are made by `Forecaster.produce` with ``method=`` from the
   very inputs the production forecast had: the same slots as known at the forecast's ``as_of``, read from
   the observation snapshot its provenance names. That is the reference "computed in the same cycle" -
   deterministic, so it is computed when the init is verified instead of being stored beside each forecast
   (no extra store commit per cycle, and a restarted worker loses nothing);
3. the observations at the valid times in their newest revision, QC applied exactly as the hindcast does
   (`qc.flags.usable_mask`: FAIL and rejected out, accepted extremes and, by default, unreviewed SUSPECT
   in), on one valid mask shared by every method (usable observations where every method has a value);
4. one `forecast.evaluation.Verifier` per init adds every method; its state becomes one row per method
   (`InitRecord` sums, per-lead scores, the observation revisions used) and per region the same sums
   restricted to the region (a Verifier on the region's cells).

An init is *due* when all its valid slots have arrived, or when the last of them is overdue (its time +
expected latency + wait for late); it is verified once (``preliminary``) and again (``final``, a new
version) whenever an observation slot it used is later revised or a slot missing then arrives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from forecast.errors import BadInputError
from forecast.monitoring.detector import per_init_skill
from forecast.monitoring.records import MODEL, _scores, records_from_state, verifier_config
from forecast.monitoring.strata import default_regimes, init_statistics, regimes_of
from forecast.timeutil import from_epoch, iso, parse_time, to_epoch, utc

log = logging.getLogger(__name__)

__all__ = ["Due", "Verification", "verifier_config"]

@dataclass(frozen=True)
class Due:
    """An init to verify: first time (``new``) or again because its observations changed (``revised``)."""

    init: datetime
    variable: str
    reason: str
    version: int = 0


class Verification:
    """Verification of one dataset's production forecasts (see the module docstring)."""

    def __init__(self, catalog, cfg, store, fstore, regions=()):
        from forecast.evaluation.references import default_thresholds

        self.catalog = catalog
        self.cfg = cfg
        self.store = store
        self.fstore = fstore
        self.regions = list(regions)
        self.step_s = int(catalog.time.step_seconds)
        self.thresholds = {v: tuple(cfg.thresholds) if cfg.thresholds else default_thresholds(catalog, v)
                           for v in catalog.variables}
        self.regimes = {v: tuple(cfg.regimes) if cfg.regimes else default_regimes(catalog, v)
                        for v in catalog.variables}
        self.fss_thresholds = {v: tuple(cfg.fss_thresholds) if cfg.fss_thresholds else t[:2]
                               for v, t in self.thresholds.items()}
        self._forecasters: dict[tuple[str, str], Any] = {}
        self._state = None  # (lo, hi, DatasetState) read once per pass by `prefetch`
        self._production = None  # the production run, opened once per pass (lazy: no data read)

    def prefetch(self, lo_s: int, hi_s: int) -> None:
        """Read the store's per-slot bookkeeping over [lo_s, hi_s] once; `slot_revisions` slices it until
        the next call (one metadata read per pass instead of one per question)."""
        self._state = None
        self._production = None
        lo, hi = self._slots(lo_s, hi_s)
        if hi < lo or not self.store.exists():
            return
        session = self.store.readonly()
        if self.store.has_dataset(session, self.catalog.id):
            self._state = (lo, hi, self.store.dataset_state(session, self.catalog, lo=lo, hi=hi + 1))

    def _slots(self, lo_s: int, hi_s: int) -> tuple[int, int]:
        ax = self.catalog.time
        step = int(ax.step_seconds)
        return max(0, -((ax.start_s - int(lo_s)) // step)), (int(hi_s) - ax.start_s) // step

    # -- what is due ----------------------------------------------------------------------------------

    def production(self):
        """The production run of the forecast store (lazy), opened once per pass; None when there is none."""
        from forecast.stores import PRODUCTION, UnknownForecastError

        if self._production is None:
            try:
                self._production = self.fstore.open(self.catalog.id, PRODUCTION)
            except UnknownForecastError:
                return None
        return self._production

    def forecast_variables(self) -> list[str]:
        ds = self.production()
        if ds is None:
            return []
        return [v for v in ds.data_vars if not v.endswith("_annotation") and v in self.catalog.variables]

    def forecast_inits(self, since: datetime, until: datetime) -> list[int]:
        """Init times (epoch s) in [since, until] with a production forecast."""
        ds = self.production()
        if ds is None:
            return []
        s = ds["init_time"].values.astype("datetime64[s]").astype("int64")
        return [int(x) for x in s[(s >= to_epoch(since)) & (s <= to_epoch(until))]]

    def slot_revisions(self, lo_s: int, hi_s: int, variable: str) -> tuple[int, np.ndarray, np.ndarray]:
        """(first slot, revision per slot, available_at per slot) of ``variable`` over the slots whose times
        lie in [lo_s, hi_s]."""
        lo, hi = self._slots(lo_s, hi_s)
        if hi < lo or not self.store.exists():
            return lo, np.zeros(0, "int16"), np.zeros(0, "int64")
        if self._state is not None and self._state[0] <= lo and hi <= self._state[1]:
            st = self._state[2]
        else:
            session = self.store.readonly()
            if not self.store.has_dataset(session, self.catalog.id):
                return lo, np.full(hi - lo + 1, -1, "int16"), np.zeros(hi - lo + 1, "int64")
            st = self.store.dataset_state(session, self.catalog, lo=lo, hi=hi + 1)
        vs = st.vars.get(variable)
        rev = np.full(hi - lo + 1, -1, "int16")
        av = np.zeros(hi - lo + 1, "int64")
        if vs is not None:
            a, b = max(lo, st.base), min(hi + 1, st.base + len(vs.revision))
            if b > a:
                rev[a - lo:b - lo] = vs.revision[a - st.base:b - st.base]
                av[a - lo:b - lo] = vs.available_at[a - st.base:b - st.base]
        return lo, rev, av

    def due(self, variable: str, now: datetime, verified: dict[datetime, dict]) -> list[Due]:
        """Inits to verify now: new ones whose valid times are observed (or overdue), and verified ones
        (within the revision horizon) whose observation slots changed since."""
        cfg, feed = self.cfg, self.catalog.feed
        now_s = to_epoch(now)
        horizon = now - timedelta(seconds=cfg.seconds("verify_horizon"))
        rev_horizon = now - timedelta(seconds=cfg.seconds("revision_horizon"))
        overdue = feed.seconds("expected_latency") + feed.seconds("wait_for_late")
        inits = self.forecast_inits(min(horizon, rev_horizon), now)
        if not inits:
            return []
        n_leads = self._n_leads()
        lo_s, hi_s = min(inits) + self.step_s, max(inits) + n_leads * self.step_s
        _, rev, av = self.slot_revisions(lo_s, hi_s, variable)
        known = {to_epoch(utc(t)): v for t, v in verified.items()}
        out = []
        for init_s in inits:
            a = (init_s + self.step_s - lo_s) // self.step_s
            seen = known.get(init_s)
            n = len(seen["lead_s"]) if seen else n_leads
            window = rev[a:a + n]
            if len(window) < n:
                window = np.concatenate([window, np.full(n - len(window), -1, "int16")])
            if seen is None:
                if init_s < to_epoch(horizon):
                    continue
                last_valid = init_s + n * self.step_s
                arrived = bool((window >= 0).all() and (av[a:a + n] <= now_s).all())
                if arrived or now_s >= last_valid + overdue:
                    out.append(Due(from_epoch(init_s), variable, "new"))
            elif init_s >= to_epoch(rev_horizon) and list(map(int, window)) != list(seen["obs_revisions"]):
                out.append(Due(from_epoch(init_s), variable, "revised", seen["version"] + 1))
        return out

    def _n_leads(self) -> int:
        return int(self.production().sizes["lead_time"])

    # -- one init --------------------------------------------------------------------------------------

    def _reference(self, variable: str, method: str, n_leads: int):
        from forecast.nowcast.forecaster import Forecaster

        key = (variable, method)
        fc = self._forecasters.get(key)
        if fc is None:
            fc = self._forecasters[key] = Forecaster(self.catalog, variable, method=method, probabilities=False)
        fc.n_leads = n_leads
        return fc

    def _inputs(self, variable: str, init: datetime, k: int, as_of: datetime, snapshot: str | None):
        from forecast.nowcast.predict import read_inputs

        if snapshot:
            try:
                return read_inputs(self.store, self.catalog, variable, init, k, as_of=as_of, snapshot=snapshot)
            except BadInputError:
                raise
            except Exception as e:
                log.warning("inputs of %s %s: snapshot %s unreadable (%s); reading as of %s from the head",
                            self.catalog.id, iso(init), snapshot, e, iso(as_of))
        return read_inputs(self.store, self.catalog, variable, init, k, as_of=as_of)

    def verify_init(self, variable: str, init: datetime, now: datetime, *, obs_snapshot: str | None = None) -> list[dict]:
        """The verification rows (one per method) of ``variable``'s production forecast at ``init``.

        Raises:
            BadInputError: no production forecast at that init, or no inputs to make the references from.
        """
        from forecast.evaluation import Verifier
        from forecast.stores import PRODUCTION, open_observations
        from qc.flags import usable_mask

        cat, cfg, step = self.catalog, self.cfg, self.step_s
        init = utc(init)
        ds = self.production()
        if ds is None or variable not in ds:
            raise BadInputError(f"the production forecasts of {cat.id} hold no {variable!r}")
        t64 = np.datetime64(init.replace(tzinfo=None), "ns")
        if t64 not in ds["init_time"].values:
            raise BadInputError(f"no production forecast of {cat.id} at {iso(init)}")
        fc = np.asarray(ds[variable].sel(init_time=t64).values, dtype=np.float32)
        lead_s = (ds["lead_time"].values.astype("timedelta64[s]").astype("int64")).tolist()
        n_leads = len(lead_s)
        prov = self.fstore.provenance(cat.id, init, PRODUCTION) or {}
        if prov.get("variable") not in (None, variable):
            prov = {}
        obs_ref = prov.get("observations") or {}
        as_of = parse_time(obs_ref["as_of"]) if obs_ref.get("as_of") else init
        in_snapshot = obs_ref.get("snapshot")

        # the references, from the inputs the production forecast had
        refs = {m: self._reference(variable, m, n_leads) for m in cfg.references}
        k = max(f.k for f in refs.values())
        inputs = self._inputs(variable, init, k, as_of, in_snapshot)
        fields = {MODEL: fc}
        ref_fallbacks = {}
        reused = None
        fb = prov.get("fallback") or {}
        if prov.get("method") in refs and fb.get("method") == prov.get("method") and "; " not in (fb.get("reason") or "") \
                and len((obs_ref.get("input_slots") or [])) == refs[prov["method"]].k:
            # the production forecast fell back to this very method on the same input slots: it is the
            # reference already (the fallback chain and Forecaster(method=) run the same code on them)
            reused = prov["method"]
            fields[reused] = fc
        for m, f in refs.items():
            if m == reused:
                continue
            p = f.produce(inputs, init, as_of=as_of)
            fields[m] = np.asarray(p.forecast[variable].values, dtype=np.float32)
            if p.fallback:
                ref_fallbacks[m] = p.fallback["reason"]

        # the observations at the valid times, newest revision, QC applied as the hindcast does
        obs = open_observations(cat.id, store=self.store, start=init + timedelta(seconds=step),
                                end=init + timedelta(seconds=n_leads * step), snapshot=obs_snapshot)
        keep = [n for n in (variable, f"{variable}_qc", f"{variable}_qc_tests") if n in obs]
        obs_ds = obs[keep].load()
        values = np.asarray(obs_ds[variable].values, dtype=np.float32)
        usable = np.isfinite(values)
        if f"{variable}_qc" in obs_ds:
            usable &= np.asarray(usable_mask(obs_ds[f"{variable}_qc"].values, obs_ds[f"{variable}_qc_tests"].values,
                                             include_unreviewed_suspect=cfg.include_unreviewed_suspect))
        revisions = [int(r) for r in obs[f"{variable}_revision"].values]
        valid = usable.copy()
        for f in fields.values():
            valid &= np.isfinite(f)

        thr = self.thresholds[variable]
        fthr = self.fss_thresholds[variable]
        ver = Verifier(np.asarray(lead_s, dtype="int64").astype("timedelta64[s]"), thr, cfg.fss_windows, fthr)
        init64 = np.datetime64(to_epoch(init), "s")
        for m, f in fields.items():
            ver.add(init64, m, f, values, valid)
        records = records_from_state(ver.to_state())
        strata = {m: region_sums(f, values, valid, self.regions, thr) for m, f in fields.items()}

        # regimes: from the field at the init time (what was known), never from the outcome
        last = inputs.sel(time=t64) if t64 in inputs["time"].values else None
        stats = {}
        if last is not None:
            lv = np.asarray(last[variable].values)
            lu = np.isfinite(lv)
            if f"{variable}_qc" in last:
                lu &= np.asarray(usable_mask(last[f"{variable}_qc"].values, last[f"{variable}_qc_tests"].values))
            stats = init_statistics(lv, lu)
        regimes = regimes_of(init, stats, self.regimes[variable])

        key_n = max(1, sum(1 for s in lead_s if s <= max(cfg.key_leads_minutes) * 60))
        rm, rp = records[MODEL], records["persistence"]
        skill = per_init_skill(rm.sse, rm.n, rp.sse, rp.n, key_n, cfg.detector.floor)
        model_info = prov.get("model") or {}
        fallback = (prov.get("fallback") or {}).get("reason") if prov.get("fallback") else None
        rows = []
        for m, rec in records.items():
            rows.append({
                "dataset": cat.id, "variable": variable, "init_time": init, "method": m,
                "forecast_method": prov.get("method") if m == MODEL else m,
                "model_version": model_info.get("version") if m == MODEL else None,
                "fallback": fallback if m == MODEL else ref_fallbacks.get(m),
                "lead_s": lead_s, "obs_revisions": revisions, "obs_snapshot": obs.attrs.get("snapshot"),
                "inputs": {"as_of": iso(as_of), "snapshot": in_snapshot, "init_stats": stats},
                "regimes": regimes, "skill": skill if m == MODEL else None,
                "scores": _scores(rec, thr, cfg.fss_windows, fthr), "record": rec.pack(), "strata": strata.get(m, {}),
                "computed_at": utc(now),
            })
        return rows


def region_sums(fcst: np.ndarray, obs: np.ndarray, valid: np.ndarray, regions, thresholds) -> dict[str, dict]:
    """Per region: valid cells ``n``, squared errors ``sse`` (float64, summed as the Verifier sums them) and
    hits / misses / false alarms per threshold (``value >= t``) per lead, on the region's cells: the per-init
    record the bootstrap of a stratum resamples (a test checks them against a Verifier on the region)."""
    out = {}
    with np.errstate(invalid="ignore"):
        v0 = valid & np.isfinite(fcst) & np.isfinite(obs)
    for r in regions:
        v = r.crop(v0) & r.cropped_mask
        f, o = r.crop(fcst), r.crop(obs)
        fz = np.where(v, f, 0).astype(np.float64)
        oz = np.where(v, o, 0).astype(np.float64)
        d = fz - oz
        n = np.count_nonzero(v, axis=(1, 2)).astype(np.int64)
        sse = np.einsum("lij,lij->l", d, d)
        hmf = []
        for t in thresholds:
            fe, oe = (f >= t) & v, (o >= t) & v
            h = np.count_nonzero(fe & oe, axis=(1, 2))
            hmf.append(np.stack([h, np.count_nonzero(oe, axis=(1, 2)) - h, np.count_nonzero(fe, axis=(1, 2)) - h], -1))
        out[r.name] = {"n": n.tolist(), "sse": sse.tolist(), "hmf": np.stack(hmf, axis=1).tolist()}
    return out
