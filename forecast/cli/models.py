"""``forecast models ...``: list, show, promote and retire registered model versions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from forecast.cli.output import (
    JsonOpt,
    fail,
    load_settings,
    out,
    run_command,
)
from forecast.errors import BadInputError
from forecast.registry.store import STAGES, ModelRecord, ModelRegistry
from forecast.settings import Settings

models_app = typer.Typer(help="The model registry: versions, their provenance and stages (candidate, "
                              "production, retired).", no_args_is_help=True)


def _registry(st: Settings) -> ModelRegistry:
    st.home.mkdir(parents=True, exist_ok=True)
    return ModelRegistry(st.db_url, st.models_dir)


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}Z"


def _print_record(rec: ModelRecord) -> None:
    out.print(f"[bold]{rec.version}[/] {rec.stage}: {rec.dataset}.{rec.variable}, registered by {rec.created_by} "
              f"at {_when(rec.created_at)}", highlight=False)
    rows = [("checkpoint", f"{rec.checkpoint} (sha256 {rec.checkpoint_sha256})"),
            ("config", str(rec.config) if rec.config else ""),
            ("snapshot", rec.snapshot or ""), ("catalog hash", rec.catalog_hash or ""),
            ("qc config hash", rec.qc_config_hash or ""), ("git commit", rec.git_commit or ""),
            ("hyperparameters", _pairs(rec.hyperparameters)),
            ("metrics", _pairs({k: v for k, v in rec.metrics.items() if k != "leads"})),
            ("software", _pairs(rec.versions))]
    for name, value in rows:
        out.print(f"  {name:<16} {value}", highlight=False, soft_wrap=True)
    leads = rec.metrics.get("leads") if isinstance(rec.metrics, dict) else None
    if leads:  # the validation table `forecast train` recorded, one row per lead
        lt = Table(title="validation (held-out period)", box=box.SIMPLE_HEAD)
        for c in ("lead", "RMSE", "RMSE persistence", "skill", "CSI@1", "CSI@1 persistence"):
            lt.add_column(c, justify="right")
        for r in leads:
            def f(key, fmt="{:.3f}"):
                v = r.get(key)
                return "-" if v is None else fmt.format(v)
            lt.add_row(f"+{r.get('lead_minutes')} min", f("rmse"), f("rmse_persistence"),
                       f("skill_vs_persistence", "{:+.1%}"), f("csi_1"), f("csi_1_persistence"))
        out.print(lt)
    t = Table(title=f"stage history of {rec.version}", box=box.SIMPLE_HEAD)
    for c in ("at", "by", "change", "reason"):
        t.add_column(c, no_wrap=c == "at", overflow="fold")
    for h in rec.history:
        change = f"{h.from_stage} -> {h.to_stage}" if h.from_stage else h.to_stage
        t.add_row(_when(h.at), h.by, change + (" (gate overridden)" if h.override else ""), h.reason)
    out.print(t)


def _pairs(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


@models_app.command("list")
def models_list(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only models of this dataset."),
    variable: Optional[str] = typer.Option(None, "--variable", help="Only models of this variable."),
    stage: Optional[str] = typer.Option(None, "--stage", help=f"Only models in this stage: {', '.join(STAGES)}."),
    as_json: bool = JsonOpt,
) -> None:
    """Registered model versions, oldest first."""

    def body():
        with _registry(load_settings()) as reg:
            records = reg.list(dataset=dataset, variable=variable, stage=stage)
        if not as_json:
            t = Table(title="registered models", box=box.SIMPLE_HEAD)
            for c in ("version", "stage", "dataset.variable", "registered", "by", "sha256"):
                t.add_column(c, no_wrap=c not in ("dataset.variable", "by"), overflow="fold")
            for r in records:
                t.add_row(r.version, r.stage, f"{r.dataset}.{r.variable}", _when(r.created_at), r.created_by,
                          r.checkpoint_sha256[:8])
            out.print(t)
        return {"models": [r.to_json() for r in records]}, 0

    run_command(as_json, body)


@models_app.command("show")
def models_show(version: str = typer.Argument(..., help="Model version, e.g. v3."), as_json: bool = JsonOpt) -> None:
    """One model version: provenance, checkpoint and full stage history."""

    def body():
        with _registry(load_settings()) as reg:
            rec = reg.get(version)
        if not as_json:
            _print_record(rec)
        return rec.to_json(), 0

    run_command(as_json, body)


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="Model version, e.g. v3."),
    by: str = typer.Option(..., "--by", help="Who approves the promotion."),
    reason: str = typer.Option(..., "--reason", help="Why (required)."),
    override: bool = typer.Option(False, "--override", help="Promote even though the promotion gate refuses (or "
                                                            "no hindcast report exists); recorded as an override."),
    report: Optional[Path] = typer.Option(None, "--report", help="The hindcast report.json (or its folder) behind "
                                          "the promotion (default: the newest report of VERSION under "
                                          "HOME/hindcasts)."),
    as_json: bool = JsonOpt,
) -> None:
    """Make a model the production model of its dataset and variable; the previous one is retired.

    The promotion gate: a hindcast report of VERSION (`forecast hindcast`) must cover enough init times and
    show VERSION better than the production model, persistence and S-PROG at the key leads (RMSE, bootstrap
    interval excluding zero). The report behind the decision is recorded in the registry."""

    def body():
        from forecast.registry.promotion import PromotionRefused, promote

        st = load_settings()
        with _registry(st) as reg:
            try:
                done = promote(st, reg, version, by=by, reason=reason, override=override, report=report)
            except PromotionRefused as e:
                fail(as_json, 2, str(e), gate=e.decision.to_json(), report=str(e.report))
            except BadInputError as e:
                if "no hindcast report" in str(e):
                    raise BadInputError(f"{e} (pass --report PATH, or --override with a reason)") from None
                raise
            rec = done.record
            if not as_json:
                out.print(f"{rec.version} is now the production model of {rec.dataset}.{rec.variable}"
                          + (f"; {', '.join(done.retired)} retired" if done.retired else "")
                          + (" (gate overridden)" if override else ""), highlight=False)
        return rec.to_json(), 0

    run_command(as_json, body)


@models_app.command("retire")
def models_retire(
    version: str = typer.Argument(..., help="Model version, e.g. v3."),
    by: str = typer.Option(..., "--by", help="Who retires the model."),
    reason: str = typer.Option(..., "--reason", help="Why (required)."),
    as_json: bool = JsonOpt,
) -> None:
    """Retire a model (a retired production model leaves its dataset and variable on the fallback)."""

    def body():
        with _registry(load_settings()) as reg:
            rec = reg.set_stage(version, "retired", by=by, reason=reason)
        if not as_json:
            out.print(f"{rec.version} ({rec.dataset}.{rec.variable}) is retired", highlight=False)
        return rec.to_json(), 0

    run_command(as_json, body)
