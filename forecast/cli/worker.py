"""``forecast worker``, ``forecast cycle``, ``forecast replay``: the service running itself."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from forecast.cli.output import (
    JsonOpt,
    err,
    load_settings,
    out,
    run_command,
    time_option,
)
from forecast.errors import BadInputError


def _datasets(st, names: list[str]) -> list[str]:
    from forecast.catalog import load_catalogs

    cats = load_catalogs(st.catalogs)
    if not names:
        # every dataset with a sub-daily axis (the worker's cycle forecasts nowcasts)
        return [c.id for c in cats.values() if c.time.months is None]
    unknown = [n for n in names if n not in cats]
    if unknown:
        raise BadInputError(f"unknown dataset(s) {', '.join(unknown)}; catalogs in {st.catalogs} define: "
                            f"{', '.join(sorted(cats))}")
    return names


def worker(
    datasets: Optional[List[str]] = typer.Argument(
        None, help="Datasets to run (default: every dataset with a sub-daily axis). `forecast worker status` "
                   "reports instead of running."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the service until SIGTERM: ingest arriving files, QC, forecast due inits within their deadline,
    verify; one worker holds the store's lease, a second one waits as standby.

    `forecast worker status [--json]` reports the lease, the last cycle, deadline misses and skipped inits."""
    names = list(datasets or [])
    if names[:1] == ["status"]:
        return _status(names[1:], as_json)

    def body():
        from forecast.monitoring import monitor_hook
        from forecast.worker.service import Worker

        st = load_settings()
        ds = _datasets(st, names)
        if not ds:
            raise BadInputError(f"no dataset with a sub-daily time axis in {st.catalogs}")
        logging.getLogger("forecast.worker").setLevel(logging.INFO)

        def show(report: dict) -> None:
            for f in report["forecasts"]:
                fb = f["fallback"]
                line = (f"{report['dataset']} {f['variable']} init {f['init_time']} by {f['method']}"
                        + (f" (fallback: {fb['reason']})" if fb else "")
                        + f", {f['lateness_s']:.1f} s after due" + (" [deadline missed]" if f["deadline_missed"] else "")
                        + (f", missing {len(f['inputs']['missing'])}" if f["inputs"]["missing"] else "")
                        + (f", late {len(f['inputs']['late'])}" if f["inputs"]["late"] else ""))
                err.print(line, highlight=False, markup=False)
            for s in report["skipped"]:
                err.print(f"{report['dataset']} {s['variable']} init {s['init_time']} skipped: {s['reason']}",
                          highlight=False, markup=False)

        from forecast.memory import tune_malloc

        tune_malloc()  # before the threads start; the worker gives freed memory back after each cycle
        hook = monitor_hook(st)  # verification and monitoring after each cycle, in the background
        w = Worker(st, ds, on_cycle=None if as_json else show, hooks=[hook])
        try:
            code = w.run()
        finally:
            hook.close(10.0)
        if w.restart:
            _restart(w)
        return {"worker": w.id, "cycles": w.cycles, "datasets": ds}, code

    run_command(as_json, body)


def _restart(w) -> None:
    """Execute this same command again in this process (same pid, fresh memory): the worker stopped between
    cycles, with its lease given back and its model process stopped; every file descriptor closes on exec."""
    import signal

    from forecast.worker.service import RESTARTS_ENV, STOP_SIGNALS

    # blocked from here and through the exec (the new worker unblocks them once its handlers are set): a
    # SIGTERM during the restart stops the new worker cleanly instead of being lost
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if w.signalled:  # asked to stop while it was stopping to restart: it stays stopped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return
    os.environ[RESTARTS_ENV] = str(w.restarts + 1)
    logging.getLogger("forecast.worker").warning("worker %s restarts (memory restart %d)", w.id, w.restarts + 1)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _status(names: list[str], as_json: bool) -> None:
    def body():
        from forecast.worker.status import worker_status

        st = load_settings()
        doc = worker_status(st, names or None)
        if not as_json:
            lease = doc["lease"]
            out.print("lease: " + (f"{lease['holder']} ({'active' if lease['active'] else 'expired'}, heartbeat "
                                    f"{lease['heartbeat_at']})" if lease else "nobody has held it yet"), highlight=False)
            t = Table("dataset", "last init", "method", "lateness s", "deadline misses", "skipped", "fallbacks",
                      title="worker")
            for d, v in doc["datasets"].items():
                lc = v["last_cycle"] or {}
                t.add_row(d, lc.get("init_time") or "-", lc.get("method") or "-",
                          "-" if lc.get("lateness_s") is None else f"{lc['lateness_s']:.1f}",
                          str(v["all"]["deadline_misses"]), str(v["all"]["skipped"]["count"]),
                          ", ".join(f"{k} {n}" for k, n in v["all"]["fallbacks"].items()) or "-")
            out.print(t)
        return doc, 0

    run_command(as_json, body)


def cycle(
    dataset: str = typer.Argument(..., help="Dataset id."),
    init: Optional[str] = typer.Option(None, "--init", help="Forecast this init (default: every init that is due "
                                       "now, newest first)."),
    as_json: bool = JsonOpt,
) -> None:
    """Exactly one cycle of the worker (ingest the inbox, QC, forecast what is due, verify), for cron-style
    operation and tests; reports init_time, method, fallback, stages and inputs."""

    def body():
        from forecast.monitoring import monitor_hook
        from forecast.worker.cycle import open_service, run_cycle
        from forecast.worker.runner import ModelProcess

        st = load_settings()
        runner = ModelProcess(threads=st.worker_model_threads)
        hook = monitor_hook(st, background=False)  # one cycle: its verification done before it exits
        svc = open_service(st, dataset, runner=runner, hooks=[hook])
        try:
            report = run_cycle(svc, init=time_option(init, "--init"))
        finally:
            runner.close()
            hook.close()
            svc.db.close()
        if not as_json:
            ing = report["ingest"]
            out.print(f"{dataset} ({report['clock']}, now {report['now']}): {ing.get('files', 0)} file(s) ingested, "
                      f"{report['qc'].get('slots_checked', 0)} slot(s) checked", highlight=False)
            for f in report["forecasts"]:
                fb = f["fallback"]
                out.print(f"  {f['variable']} init {f['init_time']} by {f['method']}"
                          + (f" (fallback: {fb['reason']})" if fb else "")
                          + (f"; missing inputs {', '.join(f['inputs']['missing'])}" if f["inputs"]["missing"] else "")
                          + (f"; late inputs {', '.join(f['inputs']['late'])}" if f["inputs"]["late"] else ""),
                          highlight=False)
            for s in report["skipped"]:
                out.print(f"  {s['variable']} init {s['init_time']} skipped: {s['reason']}", highlight=False)
            if not report["forecasts"] and not report["skipped"]:
                out.print("  no init is due", highlight=False)
            out.print("  stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["stages"].items()),
                      highlight=False)
        return report, (2 if report["errors"] and not report["forecasts"] else 0)

    run_command(as_json, body)


def replay_cmd(
    dataset: str = typer.Argument(..., help="Dataset id."),
    src_dir: Path = typer.Argument(..., help="A sample folder written by `forecast sample` (with manifest.json)."),
    speed: float = typer.Option(60.0, "--speed", help="Times faster than real time."),
    seed: int = typer.Option(0, "--seed", help="Seed of the arrival jitter."),
    outage: Optional[str] = typer.Option(None, "--outage", help="T0/T1: a feed outage; the files due to land "
                                         "between these feed times land at T1 instead (exercises the "
                                         "data_missing alert)."),
    as_json: bool = JsonOpt,
) -> None:
    """Drop a sample's files into the dataset's inbox in feed order at N times real time (late, duplicate,
    revised and corrupt files as the manifest describes), and run the dataset's clock at that speed."""

    def body():
        from forecast.worker.replay import replay

        st = load_settings()
        window = None
        if outage is not None:
            a, sep, b = outage.partition("/")
            if not sep:
                raise BadInputError(f"--outage must be two times T0/T1, got {outage!r}")
            window = (time_option(a, "--outage start"), time_option(b, "--outage end"))

        def tick(done, total, d):
            if not as_json:
                err.print(f"  {d.at:%Y-%m-%d %H:%M:%S}Z {d.kind:<9} {d.name} ({done}/{total})", highlight=False)

        doc = replay(st, dataset, src_dir, speed=speed, seed=seed, progress=tick, outage=window)
        if not as_json:
            out.print(f"replayed {doc['files']} files into {doc['inbox']} at {speed:g}x in {doc['wall_seconds']:.0f} s: "
                      + ", ".join(f"{k} {n}" for k, n in sorted(doc["kinds"].items())), highlight=False)
        return doc, 0

    run_command(as_json, body)
