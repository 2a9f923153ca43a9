"""``forecast hindcast``: verify a model and the baselines over a past period (see `forecast.hindcast`)."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from forecast.cli.output import (
    JsonOpt,
    err,
    load_settings,
    out,
    progress,
    run_command,
    time_option,
)
from forecast.errors import BadInputError


def hindcast_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (a catalog)."),
    model: str = typer.Option(..., "--model", help="Model version under test, e.g. v3."),
    start: str = typer.Option(..., "--start", help="First init time (ISO 8601, UTC), on the dataset's time axis."),
    end: str = typer.Option(..., "--end", help="Last init time (ISO 8601, UTC)."),
    every: str = typer.Option("30min", "--every", help="Time between init times, e.g. 30min, 1h."),
    baselines: str = typer.Option("persistence,extrapolation,sprog,climatology", "--baselines",
                                  help="Comma-separated baselines to verify beside the model."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dask.distributed scheduler address "
                                            "(tcp://host:port); default: threads on this machine."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: "
                                           "HOME/hindcasts/<dataset>-<version>-<start>-<end>)."),
    variable: Optional[str] = typer.Option(None, "--variable", help="Variable (default: the model's)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates of the paired intervals."),
    probabilistic: bool = typer.Option(True, "--probabilistic/--no-probabilistic",
                                       help="Also verify exceedance probabilities (STEPS, local Lagrangian "
                                            "probability, neighbourhood persistence and probabilistic models) at "
                                            "the catalog's thresholds of the variable."),
    as_json: bool = JsonOpt,
) -> None:
    """Hindcast: as-of inputs, the model and baselines through `forecast predict`'s code path, QC-aware
    verification, report.json + report.html; an interrupted run resumes with the same command."""

    def body():
        from forecast.evaluation.hindcast import run_hindcast

        names = tuple(b.strip() for b in baselines.split(",") if b.strip())
        t0, t1 = time_option(start, "--start"), time_option(end, "--end")
        if t0 is None or t1 is None:  # pragma: no cover - typer makes both required
            raise BadInputError("--start and --end are required")
        command = "forecast " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
        with progress("hindcast", not as_json) as tick, contextlib.redirect_stdout(sys.stderr):
            # pysteps prints banners on stdout; --json keeps stdout for the one document
            doc = run_hindcast(load_settings(), dataset, model=model, start=t0, end=t1, every=every, baselines=names,
                               scheduler=scheduler, out=out_dir, variable=variable, n_boot=n_boot, progress=tick,
                               probabilistic=probabilistic,
                               command=command if command and "hindcast" in command else None)
        if not as_json:
            out.print(doc["terminal"], highlight=False, markup=False)
            out.print(f"\n{doc['verdict']}", highlight=False, markup=False)
            inits = doc["inits"]
            err.print(f"{inits['verified']} of {inits['requested']} init times verified ({inits['skipped']} skipped, "
                      f"{inits['resumed']} from an earlier run) in {doc['seconds']:.1f} s", highlight=False)
            out.print(f"report: {doc['report']['html']}", highlight=False, markup=False)
        return {"out": doc["out"], "report": doc["report"]["json"], "html": doc["report"]["html"],
                "summary": doc["summary"], "verdict": doc["verdict"], "inits": doc["inits"],
                "provenance": doc["provenance"], "seconds": doc["seconds"]}, 0

    run_command(as_json, body)
