"""``manifest.json``: what a synthetic sample holds and exactly where its faults are (dataset, time axis,
variables, files by batch, per-slot status, and per fault its kind, variable, times, cells or bbox and values),
the contract the QC and ingest tests read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forecast.catalog import Catalog
from forecast.synthetic.context import Context, fval, month_of
from forecast.synthetic.faults import CORRUPT_FRACTION, RECORD_RAMP, Plan, base_fields
from forecast.synthetic.writer import GENERATOR, TIME_UNITS, file_name
from forecast.timeutil import iso as _iso


def build_manifest(ctx: Context, catalog: Catalog, plan: Plan, *, start: int, end_s: float, seed: int,
                   out: Path) -> dict:
    """The manifest of a written sample (``out`` is read for the corrupt file's size)."""
    labels = plan.labels
    spec_of = {s.vid: s for s in ctx.specs}
    fname = {i: file_name(catalog, t) for i, t in enumerate(labels)}
    batches: dict[str, list[str]] = {"main": [], "late": [], "duplicates": [], "revised": []}
    slots = []
    for i, t in enumerate(labels):
        st = plan.status[i]
        files = []
        if st == "late":
            files.append(f"late/{fname[i]}")
        elif st != "missing":
            files.append(fname[i])
            if st == "revised":
                files.append(f"revised/{fname[i]}")
            if st == "duplicate":
                files.append(f"duplicates/{fname[i]}")
        for f in files:
            batches[f.split("/")[0] if "/" in f else "main"].append(f)
        slots.append({"time": _iso(t), "status": st, "files": files})
    faults: list[dict[str, Any]] = []

    def var_info(vid: str) -> dict:
        s = spec_of[vid]
        # The catalog's variable id (as in the store) and its name in the files (source_names[0]).
        return {"variable": vid, "file_variable": s.name, "units": s.units}

    for p in plan.points:
        s = spec_of[p["variable"]]
        e = {"kind": p["kind"], **var_info(p["variable"]), "times": [_iso(labels[p["slot"]])],
             "cells": [p["cell"]], "values": [p["value"]], "background": [p["background"]],
             "file": fname[p["slot"]]}
        if p["kind"] == "impossible":
            e["physical_range"] = [round(s.to_file(v), 6) for v in s.phys]
        faults.append(e)
    if plan.stuck:
        st = plan.stuck
        faults.append({"kind": "stuck", **var_info(st["variable"]), "times": [_iso(labels[i]) for i in st["slots"]],
                       "bbox": st["bbox"], "values": [fval(st["value"])],
                       "files": [fname[i] for i in st["slots"]],
                       "description": f"every cell of the bbox holds exactly {st['value']:g} in {len(st['slots'])} "
                                      f"consecutive slots"})
    if plan.record:
        rc = plan.record
        s = spec_of[rc["variable"]]
        core = [i for i, g in zip(rc["slots"], RECORD_RAMP) if g == 1.0]
        by_time: dict[str, list[list[int]]] = {}
        peaks, records = [], []
        union: set[tuple[int, int]] = set()
        for i in core:
            v = base_fields(ctx, plan, i)[rc["variable"]]
            rec = round(s.to_file(s.rec_max[month_of(labels[i])]), 6)
            above = np.argwhere(v > rec)
            by_time[_iso(labels[i])] = above.tolist()
            union.update(map(tuple, above.tolist()))
            peaks.append(fval(v.max()))
            records.append(rec)
        cells = sorted([list(c) for c in union])
        arr = np.array(cells) if cells else np.zeros((0, 2), int)
        bbox = ([int(arr[:, 0].min()), int(arr[:, 0].max()), int(arr[:, 1].min()), int(arr[:, 1].max())]
                if cells else None)
        faults.append({
            "kind": "record_extreme", **var_info(rc["variable"]), "times": [_iso(labels[i]) for i in core],
            "bbox": bbox, "cells": cells, "cells_by_time": by_time, "values": peaks, "record": records,
            "physical_range": [round(s.to_file(v), 6) for v in s.phys],
            "context_times": [_iso(labels[i]) for i in rc["slots"] if i not in core],
            "track": [[round(c[0], 2), round(c[1], 2)] for c in rc["centres"]],
            "files": [fname[i] for i in core],
            "description": "a smooth, coherent extreme beyond the month's climatological record max but inside the "
                           "physical range; it builds up and decays in the context_times (within the record)",
        })
    for kind in ("missing", "late", "duplicate", "revised", "corrupt"):
        idx = [i for i in range(len(labels)) if plan.status[i] == kind]
        if not idx:
            continue
        e: dict[str, Any] = {"kind": kind, "variable": None, "times": [_iso(labels[i]) for i in idx]}
        if kind == "missing":
            e["files"] = [fname[i] for i in idx]
            e["description"] = "no file was delivered for these slots"
        elif kind == "late":
            e["files"] = [f"late/{fname[i]}" for i in idx]
            e["description"] = "written into late/ instead of the main batch, to be ingested later"
        elif kind == "duplicate":
            e["file"] = fname[idx[0]]
            e["files"] = [f"duplicates/{fname[idx[0]]}"]
            e["description"] = "a byte-identical copy of a main-batch file"
        elif kind == "revised":
            rv = plan.revised
            e.update(var_info(rv["variable"]))
            e["file"] = fname[idx[0]]
            e["files"] = [fname[idx[0]], f"revised/{fname[idx[0]]}"]
            e["bbox"] = rv["bbox"]
            e["values"] = {k: rv[k] for k in ("operation", "factor", "amount") if k in rv}
            e["description"] = rv["description"] + "; everything else is identical"
        else:
            p = out / fname[idx[0]]
            e["file"] = fname[idx[0]]
            e["files"] = [fname[idx[0]]]
            e["values"] = {"kept_bytes": p.stat().st_size if p.exists() else None, "fraction": CORRUPT_FRACTION}
            e["description"] = f"truncated copy: the first {CORRUPT_FRACTION:.0%} of a valid file's bytes"
        faults.append(e)

    for k in batches:
        batches[k].sort()
    return {
        "dataset": catalog.id,
        "catalog_hash": catalog.hash,
        "generator": GENERATOR,
        "seed": seed,
        "motion": ctx.motion,
        "start": _iso(start),
        "end": _iso(end_s),
        "step": catalog.time.step,
        "variables": {s.name: {"id": s.vid, "standard_name": s.standard_name, "units": s.units} for s in ctx.specs},
        "time_encoding": {"units": TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "int64"},
        "files": sorted(f for b in batches.values() for f in b),
        "batches": batches,
        "missing": [_iso(labels[i]) for i in range(len(labels)) if plan.status[i] == "missing"],
        "slots": slots,
        "faults": faults,
    }
