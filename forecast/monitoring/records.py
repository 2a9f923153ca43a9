"""The exact sums behind one verification, and windows of them turned back into a `Verifier`.

Each init is verified by `forecast.evaluation.Verifier` (the hindcast's accumulator and conventions): one
Verifier per init, every method on the same valid mask. What it accumulated for one method at one init is
kept as an `InitRecord` (valid and offered cells, the seven float sums per lead, the contingency table,
the FSS counts), packed into a small binary blob. A window (the last 6 hours, the last 30 days) is the
sum of its inits' records: `window_verifier` adds them **exactly** (floats as integers in the Verifier's
fixed-point units, integers as integers) into a Verifier state (``Verifier.to_state`` format) and rebuilds
the Verifier from it, so every score, skill score and paired block-bootstrap interval of a window comes
from ``Verifier.summary`` itself: equal to what `forecast hindcast` computes over the same inits.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np

from forecast.errors import BadInputError
from forecast.evaluation.accumulate import FIXED_BITS  # the Verifier's fixed-point scale (state sums in hex)
from forecast.evaluation.metrics import STATE_VERSION
from forecast.timeutil import iso

__all__ = ["FIXED_BITS", "MODEL", "SUM_NAMES", "InitRecord", "fixed_sum", "records_from_state", "verifier_config",
           "window_state", "window_verifier"]

#: the per-lead float sums of a Verifier state, in its order
SUM_NAMES = ("f", "o", "ff", "oo", "fo", "ae", "se")
_MAGIC = b"FMR1"


@dataclass
class InitRecord:
    """One method's sums at one init. Shapes: ``n`` and ``cells`` (lead,), ``sums`` (7, lead) float64 in
    `SUM_NAMES` order, ``ctab`` (lead, threshold, 4) hits / misses / false alarms / correct negatives,
    ``fss_num`` and ``fss_den`` (lead, fss threshold, window)."""

    n: np.ndarray
    cells: np.ndarray
    sums: np.ndarray
    ctab: np.ndarray
    fss_num: np.ndarray
    fss_den: np.ndarray

    @property
    def sse(self) -> np.ndarray:
        return self.sums[SUM_NAMES.index("se")]

    @property
    def hmf(self) -> np.ndarray:
        """Hits, misses, false alarms (lead, threshold, 3): what the bootstrap resamples."""
        return self.ctab[..., :3]

    def pack(self) -> bytes:
        arrays = [np.ascontiguousarray(a, dtype="<i8") for a in (self.n, self.cells)]
        arrays.append(np.ascontiguousarray(self.sums, dtype="<f8"))
        arrays += [np.ascontiguousarray(a, dtype="<i8") for a in (self.ctab, self.fss_num, self.fss_den)]
        head = json.dumps([list(a.shape) for a in arrays]).encode()
        body = b"".join(a.tobytes() for a in arrays)
        return _MAGIC + zlib.compress(struct.pack("<I", len(head)) + head + body, 6)

    @classmethod
    def unpack(cls, blob: bytes) -> InitRecord:
        if not blob.startswith(_MAGIC):
            raise BadInputError("a verification record is not in this version's format")
        raw = zlib.decompress(blob[len(_MAGIC):])
        (hl,) = struct.unpack("<I", raw[:4])
        shapes = json.loads(raw[4:4 + hl])
        pos = 4 + hl
        out = []
        for k, shape in enumerate(shapes):
            dtype = "<f8" if k == 2 else "<i8"
            size = int(np.prod(shape)) * 8
            out.append(np.frombuffer(raw[pos:pos + size], dtype=dtype).reshape(shape).astype(
                np.float64 if k == 2 else np.int64))
            pos += size
        return cls(*out)


def records_from_state(state: dict) -> dict[str, InitRecord]:
    """The `InitRecord` of every method of a one-init Verifier state (``Verifier.to_state()``)."""
    out = {}
    for name, m in state["methods"].items():
        if len(m["per_init"]["init_time"]) != 1:
            raise BadInputError(f"method {name!r} of the state holds {len(m['per_init']['init_time'])} inits; "
                                "a record is one init")
        # one init: each fixed-point integer is one float exactly, so the division is exact
        sums = np.array([[int(h, 16) / (1 << FIXED_BITS) for h in m["sums"][s]] for s in SUM_NAMES], dtype=np.float64)
        out[name] = InitRecord(
            n=np.asarray(m["n"], dtype=np.int64), cells=np.asarray(m["cells"], dtype=np.int64), sums=sums,
            ctab=np.asarray(m["contingency"], dtype=np.int64), fss_num=np.asarray(m["fss_num"], dtype=np.int64),
            fss_den=np.asarray(m["fss_den"], dtype=np.int64))
    return out


def fixed_sum(values: np.ndarray) -> int:
    """The exact sum of float64 ``values`` as an integer in units of 2**-FIXED_BITS (what the Verifier adds
    them up to). Grouped by binary exponent: each float is ``mantissa * 2**exponent`` with an integer
    mantissa of 53 bits, so each group sums exactly in Python integers."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise BadInputError("a verification sum is not finite")
    v = v[v != 0]
    if v.size == 0:
        return 0
    m, e = np.frexp(v)
    mant = (m * float(1 << 53)).astype(np.int64)  # exact: m has at most 53 significant bits
    shift = e.astype(np.int64) - 53 + FIXED_BITS
    total = 0
    for s in np.unique(shift):
        part = int(mant[shift == s].astype(object).sum())
        total += part << int(s) if s >= 0 else part >> int(-s)  # >>: only subnormals, whose low bits are 0
    return total


def window_state(config: dict, grid_shape: Sequence[int] | None,
                 records: dict[str, Iterable[tuple[int, InitRecord]]]) -> dict:
    """A ``Verifier.to_state`` document holding the exact sums of ``records`` (per method, ``(init epoch s,
    record)`` pairs; each init at most once per method). ``config`` has the Verifier's ``lead_time_s``,
    ``thresholds``, ``fss_thresholds`` and ``fss_windows``."""
    methods = {}
    for name, pairs in records.items():
        pairs = sorted(pairs, key=lambda p: p[0])
        inits = [p[0] for p in pairs]
        if len(set(inits)) != len(inits):
            raise BadInputError(f"method {name!r}: an init appears twice in a window")
        if not pairs:
            continue
        recs = [p[1] for p in pairs]
        sums = np.stack([r.sums for r in recs])  # (init, 7, lead)
        methods[name] = {
            "cells": np.sum([r.cells for r in recs], axis=0).tolist(),
            "n": np.sum([r.n for r in recs], axis=0).tolist(),
            "sums": {s: [format(fixed_sum(sums[:, i, l]), "x") for l in range(sums.shape[2])]
                     for i, s in enumerate(SUM_NAMES)},
            "contingency": np.sum([r.ctab for r in recs], axis=0).tolist(),
            "fss_num": np.sum([r.fss_num for r in recs], axis=0).tolist(),
            "fss_den": np.sum([r.fss_den for r in recs], axis=0).tolist(),
            "per_init": {
                "init_time": [iso(i) for i in inits],
                "n": [r.n.tolist() for r in recs],
                "sse": [r.sse.tolist() for r in recs],
                "hits_misses_false_alarms": [r.hmf.tolist() for r in recs],
            },
        }
    return {"state_version": STATE_VERSION, **config, "grid_shape": list(grid_shape) if grid_shape else None,
            "methods": methods}


def window_verifier(config: dict, grid_shape: Sequence[int] | None,
                    records: dict[str, Iterable[tuple[int, InitRecord]]]):
    """The `Verifier` of a window (see `window_state`): its ``summary`` is the window's scores."""
    from forecast.evaluation import Verifier

    return Verifier.from_state(window_state(config, grid_shape, records))


#: the production forecast's method name in verification rows (the hindcast calls the model under test so)
MODEL = "model"


def verifier_config(lead_s, thresholds, fss_windows, fss_thresholds=None) -> dict:
    fthr = thresholds if fss_thresholds is None else fss_thresholds
    return {"lead_time_s": [int(s) for s in lead_s], "thresholds": [float(t) for t in thresholds],
            "fss_thresholds": [float(t) for t in fthr], "fss_windows": [int(w) for w in fss_windows]}


def _scores(rec: InitRecord, thresholds, fss_windows, fss_thresholds=None) -> dict[str, Any]:
    """Per-lead scores of one init for display (the exact sums are in the record), and the Verifier's
    configuration the record was made with (a window sums only records of one configuration)."""
    from forecast.evaluation.scores import categorical_scores

    n = rec.n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        se, ae = rec.sums[6], rec.sums[5]
        bias = rec.sums[0] - rec.sums[1]
        rmse = np.where(n > 0, np.sqrt(se / np.maximum(n, 1)), np.nan)
        mae = np.where(n > 0, ae / np.maximum(n, 1), np.nan)
        b = np.where(n > 0, bias / np.maximum(n, 1), np.nan)
    csi = {}
    for k, t in enumerate(thresholds):
        csi[np.format_float_positional(float(t), trim="-")] = [categorical_scores(*rec.ctab[i, k])["csi"]
                                                              for i in range(len(n))]

    def clean(a):
        return [None if not np.isfinite(x) else round(float(x), 6) for x in a]

    return {"n": rec.n.tolist(), "rmse": clean(rmse), "mae": clean(mae), "bias": clean(b),
            "csi": {k: clean(v) for k, v in csi.items()},
            "config": {"thresholds": [float(t) for t in thresholds], "fss_windows": [int(w) for w in fss_windows],
                       "fss_thresholds": [float(t) for t in (thresholds if fss_thresholds is None
                                                              else fss_thresholds)]}}
