"""The ``forecast`` command line (typer): the one user surface for operators and developers, wired here
from one module per command group.

Every reporting command takes ``--json`` and then prints exactly one JSON document on stdout. Exit
codes: 0 success, 2 bad input (partly or wholly rejected), 1 internal failure.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from forecast.cli import (
    catalog,
    db,
    demo,
    hindcast,
    ingest,
    model,
    models,
    monitor,
    qc,
    sample,
    store,
    users,
    worker,
)

app = typer.Typer(help="Operational forecasting service with plausibility guards.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
app.add_typer(catalog.catalog_app, name="catalog")
app.command("sample")(sample.sample)
app.command("ingest")(ingest.ingest_cmd)
app.add_typer(store.store_app, name="store")
app.add_typer(qc.qc_app, name="qc")
app.command("train")(model.train_cmd)
app.command("predict")(model.predict_cmd)
app.command("hindcast")(hindcast.hindcast_cmd)
app.add_typer(models.models_app, name="models")
app.add_typer(users.users_app, name="users")
app.add_typer(db.db_app, name="db")
app.command("worker")(worker.worker)
app.command("cycle")(worker.cycle)
app.command("replay")(worker.replay_cmd)
app.add_typer(monitor.monitor_app, name="monitor")
app.command("demo")(demo.demo)


def main() -> None:
    logging.basicConfig(level=os.environ.get("FORECAST_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()
