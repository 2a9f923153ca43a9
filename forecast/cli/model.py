"""``forecast train`` and ``forecast predict``: the nowcast model and forecasts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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


def train_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (a catalog)."),
    variable: str = typer.Option(..., "--variable", help="The variable to forecast, e.g. precipitation_rate."),
    config: Optional[Path] = typer.Option(None, "--config", help="Model config YAML (default: built-in)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Override training.max_epochs."),
    start: Optional[str] = typer.Option(None, "--start", help="First slot of the training period (default: first)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last slot of the training period (default: last)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who trains (default: the login name)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train the nowcast model on the store's current snapshot and register it as a candidate."""

    def body():
        from forecast.registry.training import train_model

        st = load_settings()
        doc = train_model(st, dataset, variable, config_path=config, max_epochs=max_epochs,
                          start=time_option(start, "--start"), end=time_option(end, "--end"), progress=not as_json and err.is_terminal,
                          by=by)
        if not as_json:
            _print_train(doc)
        return doc, 0

    run_command(as_json, body)


def _print_train(doc: dict) -> None:
    tr = doc["training"]
    out.print(f"registered model [bold]{doc['version']}[/] ({doc['dataset']}/{doc['variable']}) as {doc['stage']}: "
              f"{tr['epochs']} epochs in {tr['seconds']:.0f} s ({tr['samples_per_second']} samples/s on {tr['device']}), "
              f"snapshot {doc['snapshot']}, checkpoint sha256 {doc['checkpoint_sha256'][:16]}...", highlight=False)
    table = Table("lead", "RMSE model", "RMSE persistence", "skill", title="validation (held-out period)")
    for r in doc["metrics"]["leads"]:
        skill = r["skill_vs_persistence"]
        table.add_row(f"+{r['lead_minutes']} min", f"{r['rmse']:.3f}", f"{r['rmse_persistence']:.3f}",
                      "-" if skill is None else f"{skill:+.1%}")
    out.print(table)


def predict_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (a catalog)."),
    init: str = typer.Option(..., "--init", help="Init time (ISO 8601, UTC), on the dataset's time axis."),
    model: Optional[str] = typer.Option(None, "--model", help="Model version (default: the production model)."),
    variable: Optional[str] = typer.Option(None, "--variable", help="Variable (default: the model's, or the only one)."),
    deadline: Optional[float] = typer.Option(None, "--deadline", help="Seconds the model may take before the fallback."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Read observations as known at this time, to reproduce a past forecast (default: now, as "
                                          "the operational cycle does; a replay's own time while one runs)."),
    as_json: bool = JsonOpt,
) -> None:
    """Forecast from the observations as known now (or --as-of), with fallback, provenance and plausibility marks."""

    def body():
        from forecast.nowcast.predict import predict

        if deadline is not None and deadline < 0:
            raise BadInputError(f"--deadline must be >= 0 seconds, got {deadline}")
        st = load_settings()
        doc = predict(st, dataset, time_option(init, "--init"), model=model, variable=variable, deadline=deadline,
                      as_of=time_option(as_of, "--as-of"))
        if not as_json:
            fb = doc["fallback"]
            q = doc["provenance"]["qc"]["input_quality"]
            out.print(f"{doc['dataset']}/{doc['variable']} init {doc['init_time']} by [bold]{doc['method']}[/]"
                      + (f" (fallback: {fb['reason']})" if fb else "")
                      + (f", stored as run {doc['run']}, snapshot {doc['snapshot']}" if doc["written"]
                         else f", already stored (run {doc['run']}, snapshot {doc['snapshot']})"), highlight=False)
            out.print("inputs: " + ", ".join(f"{k} {v:.1%}" for k, v in q.items() if v) + "; values: "
                      + ", ".join(f"{k} {v}" for k, v in doc["annotations"].items() if v), highlight=False)
        return doc, 0

    run_command(as_json, body)
