"""Inputs of the probability tests: a rain blob moving east on the small radar grid, as `read_inputs`
gives them (values, QC flags, revisions, arrival times), with no store behind them."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import xarray as xr

from qc.flags import QCFlag

P = "precipitation_rate"
NY, NX = 24, 32


def inputs(cat, *, fail_columns: slice | None = None, t0: str = "2026-07-15T12:00:00", scale: float = 1.0
           ) -> tuple[xr.Dataset, np.datetime64]:
    """Six slots of a rain blob (0 .. ~40 mm/h) moving east one cell per slot, as `read_inputs` gives them;
    ``fail_columns`` flagged FAIL in every slot."""
    k = 6
    start = np.datetime64(t0, "ns")
    times = start + np.arange(k) * np.timedelta64(5, "m")
    yy, xx = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    vals = np.stack([scale * 40.0 * np.exp(-(((yy - 12) / 4.0) ** 2 + ((xx - 8 - j) / 5.0) ** 2)) for j in range(k)])
    qc = np.full(vals.shape, QCFlag.GOOD, np.uint8)
    if fail_columns is not None:
        qc[:, :, fail_columns] = QCFlag.FAIL
    ds = xr.Dataset(
        {P: (("time", "y", "x"), vals.astype("float32"), {"units": "mm h-1"}),
         f"{P}_qc": (("time", "y", "x"), qc),
         f"{P}_qc_tests": (("time", "y", "x"), np.zeros(vals.shape, np.uint32))},
        coords={"time": times, "y": cat.grid.y.values(), "x": cat.grid.x.values(),
                f"{P}_revision": ("time", np.zeros(k, "int64")),
                f"{P}_available_at": ("time", times + np.timedelta64(1, "m"))})
    return ds, times[-1]


def init_of(t64) -> datetime:
    """A datetime64 as an aware UTC datetime."""
    return datetime.fromtimestamp(int(t64.astype("datetime64[s]").astype("int64")), timezone.utc)


# -- stand-ins for a model with a probabilistic head, loaded in the worker's model process ------------------------

class WithProbabilities:
    """A loaded model with a probabilistic head beside it: neighbourhood persistence in a 5-cell window
    (``mode`` "broken": the head raises; "slow": it takes two minutes)."""

    probabilistic = True

    def __init__(self, inner, mode: str = "ok"):
        self.inner, self.mode = inner, mode
        self.name = getattr(inner, "name", "model")

    def fit(self, obs):
        return self

    def predict(self, inputs, *, n_leads, step, mask=None):
        return self.inner.predict(inputs, n_leads=n_leads, step=step, mask=mask)

    def predict_probabilities(self, inputs, *, n_leads, step, thresholds, mask=None):
        import time

        from forecast.nowcast import NeighbourhoodPersistence

        if self.mode == "broken":
            raise RuntimeError("probability head diverged")
        if self.mode == "slow":
            time.sleep(120)
        return NeighbourhoodPersistence(size=5).predict_probabilities(inputs, n_leads=n_leads, step=step,
                                                                      thresholds=thresholds, mask=mask)


def _learned(path, version, sha256):
    from forecast.model.learned import LearnedNowcaster

    return LearnedNowcaster.from_checkpoint(path, version=version, sha256=sha256)


def load_with_probabilities(path, *, version, sha256):
    return WithProbabilities(_learned(path, version, sha256))


def load_with_broken_probabilities(path, *, version, sha256):
    return WithProbabilities(_learned(path, version, sha256), "broken")


def load_with_slow_probabilities(path, *, version, sha256):
    return WithProbabilities(_learned(path, version, sha256), "slow")


class ReportingThreads(WithProbabilities):
    """The model, its forecast carrying the torch thread count of the process it ran in (attrs)."""

    def predict(self, inputs, *, n_leads, step, mask=None):
        import torch

        out = super().predict(inputs, n_leads=n_leads, step=step, mask=mask)
        out.attrs["torch_threads"] = torch.get_num_threads()
        return out


def load_reporting_threads(path, *, version, sha256):
    return ReportingThreads(_learned(path, version, sha256))
