"""``forecast monitor ...``: what the monitor knows (status, rolling skill, input drift, strata, alerts),
acknowledging an alert, and one monitoring pass by hand."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from forecast.cli.output import JsonOpt, err, load_settings, out, run_command, time_option

monitor_app = typer.Typer(help="Monitoring: continuous verification, skill and drift, strata, alerts.",
                          no_args_is_help=True)

VariableOpt = typer.Option(None, "--variable", help="Variable (default: the dataset's only, or first monitored).")


def _num(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


@monitor_app.command("status")
def status(dataset: Optional[str] = typer.Argument(None, help="Dataset id (default: every monitored dataset)."),
           as_json: bool = JsonOpt) -> None:
    """The latest monitoring pass per dataset and variable, the skill at the key leads, the detector, drifted
    features, the worst stratum, and the firing alerts."""

    def body():
        from forecast.monitoring.report import status_doc

        st = load_settings()
        st.home.mkdir(parents=True, exist_ok=True)
        doc = status_doc(st, dataset)
        if not as_json:
            if not doc["datasets"]:
                out.print("no monitoring pass yet: the worker runs one after each cycle (or `forecast monitor run "
                          "DATASET`)", highlight=False)
            for ds, vars_ in doc["datasets"].items():
                for var, s in vars_.items():
                    out.print(f"[bold]{ds}/{var}[/]: last pass {s['last_pass']}, newest verified init "
                              f"{s['last_verified_init'] or '-'}", highlight=False)
                    for w, sk in (s["skill"] or {}).items():
                        if sk:
                            leads = ", ".join(f"+{k} min {_num(v)}" for k, v in sk["leads"].items())
                            out.print(f"  skill vs persistence ({w}, {sk['n_inits']} inits): {leads}", highlight=False)
                    d = s["detector"]
                    out.print(f"  detector ({d['method']}): {_num(d['statistic'])} of {_num(d['threshold'])}"
                              + (" [bold red]ALARM[/]" if d["alarm"] else ""), highlight=False)
                    for w, names in (s["drifted"] or {}).items():
                        if names:
                            out.print(f"  drift ({w}): {', '.join(names)}", highlight=False)
            firing = doc["alerts"]["firing"]
            out.print(f"firing alerts: {len(firing)}", highlight=False)
            for a in firing:
                out.print(f"  #{a['id']} [{a['severity']}] {a['rule']} {a['dataset']}/{a['variable']} "
                          f"({a['subject']}) since {a['since']}" + (" (acknowledged)" if a["acknowledged"] else ""),
                          highlight=False)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("skill")
def skill(dataset: str = typer.Argument(..., help="Dataset id."), variable: Optional[str] = VariableOpt,
          window: Optional[str] = typer.Option(None, "--window", help="short or long (default: both)."),
          stage: str = typer.Option("current", "--stage", help="current (final where revised) or preliminary."),
          now: Optional[str] = typer.Option(None, "--now", help="Windows end here (default: the latest pass)."),
          as_json: bool = JsonOpt) -> None:
    """Rolling skill by lead on the short and long windows: model, persistence and extrapolation scores, the
    skill against each reference with its block-bootstrap interval; inits whose verification moved."""

    def body():
        from forecast.monitoring.report import skill_doc

        st = load_settings()
        windows = (window,) if window else ("short", "long")
        doc = skill_doc(st, dataset, variable, windows=windows, stage=stage, now=time_option(now, "--now"))
        if not as_json:
            for w, d in doc["windows"].items():
                t = Table("lead", "model RMSE", "persistence", "extrapolation", "skill vs pers.", "interval",
                          title=f"{dataset}/{doc['variable']} {w} window ({d['window']}, {d['n_inits']} inits"
                                f"{'' if d['enough'] else ', too few to judge'})")
                for x in d["leads"]:
                    sk = x["skill"]["persistence"]
                    t.add_row(f"+{x['lead_minutes']} min" + (" *" if x["key"] else ""), _num(x["model"]["rmse"]),
                              _num(x["persistence"]["rmse"]),
                              _num(x["extrapolation"]["rmse"]) if "extrapolation" in x else "-", _num(sk["rmse_skill"]),
                              f"[{_num(sk['skill_lower'])}, {_num(sk['skill_upper'])}]")
                out.print(t)
            stg = doc["staged"]
            if stg["n_inits"]:
                w = stg.get("window") or {}
                out.print(f"{stg['n_inits']} init(s) verified again after a revision; skill at +{stg['key_lead_minutes']} "
                          f"min: preliminary {_num(w.get('preliminary_skill'))}, final {_num(w.get('final_skill'))}",
                          highlight=False)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("drift")
def drift(dataset: str = typer.Argument(..., help="Dataset id."), variable: Optional[str] = VariableOpt,
          as_json: bool = JsonOpt) -> None:
    """Input drift per feature on the short and long windows against the reference (the model's training
    period), as the latest pass judged it."""

    def body():
        from forecast.monitoring.report import drift_doc

        st = load_settings()
        doc = drift_doc(st, dataset, variable)
        if not as_json:
            ref = doc["reference"] or {}
            out.print(f"reference: {ref.get('source') or 'none yet'} {ref.get('period') or ''}", highlight=False)
            for w, d in doc["windows"].items():
                if not d:
                    continue
                t = Table("feature", "statistic", "value", "threshold", "ratio", "drifted",
                          title=f"{w} window ({d['n_slots']} slots){' - ' + d['note'] if d.get('note') else ''}")
                for f in d["features"]:
                    t.add_row(f["feature"], f.get("statistic") or "-", _num(f.get("value")), _num(f.get("threshold")),
                              _num(f.get("ratio")), "yes" if f["drifted"] else "")
                out.print(t)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("strata")
def strata(dataset: str = typer.Argument(..., help="Dataset id."), variable: Optional[str] = VariableOpt,
           window: str = typer.Option("long", "--window", help="short or long."),
           lead: Optional[int] = typer.Option(None, "--lead", help="Lead in minutes (default: the first key lead)."),
           as_json: bool = JsonOpt) -> None:
    """Skill against persistence per region and regime, the worst stratum and its gap to the mean, and the
    strata where the model is worse than persistence while the mean is not."""

    def body():
        from forecast.monitoring.report import strata_doc

        st = load_settings()
        doc = strata_doc(st, dataset, variable, window=window, lead_minutes=lead)
        if not as_json:
            mean = doc.get("mean") or {}
            t = Table("stratum", "kind", "inits", "skill", "gap to mean", "below persistence",
                      title=f"{dataset}/{doc['variable']} at +{doc['lead_minutes']} min, {window} window "
                            f"(mean skill {_num(mean.get('skill'))})")
            for s in sorted(doc["strata"], key=lambda s: (s.get("skill") is None, s.get("skill") or 0)):
                t.add_row(s["stratum"], s["kind"], str(s["n_inits"]), _num(s.get("skill")), _num(s.get("gap")),
                          "yes" if s.get("below_reference") else "")
            out.print(t)
            if doc.get("worst"):
                w = doc["worst"]
                out.print(f"worst: {w['kind']} {w['stratum']} (skill {_num(w['skill'])}, gap {_num(w['gap'])})",
                          highlight=False)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("alerts")
def alerts(state: Optional[str] = typer.Option(None, "--state", help="firing or resolved (default: both)."),
           dataset: Optional[str] = typer.Option(None, "--dataset", help="Only this dataset."),
           limit: int = typer.Option(200, "--limit", min=1, max=10_000),
           as_json: bool = JsonOpt) -> None:
    """Alerts, firing first: id, rule, dataset, state, since, acknowledgement and history."""

    def body():
        from forecast.monitoring.report import alerts_doc

        st = load_settings()
        st.home.mkdir(parents=True, exist_ok=True)
        doc = alerts_doc(st, state=state, dataset=dataset, limit=limit)
        if not as_json:
            t = Table("id", "state", "severity", "rule", "dataset/variable", "subject", "since", "ack", title="alerts")
            for a in doc["alerts"]:
                t.add_row(str(a["id"]), a["state"], a["severity"], a["rule"], f"{a['dataset']}/{a['variable']}",
                          a["subject"], a["since"], a["acknowledged_by"] or "")
            out.print(t)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("ack")
def ack(alert_id: int = typer.Argument(..., help="Alert id."),
        by: str = typer.Option(..., "--by", help="Who acknowledges."),
        comment: str = typer.Option(..., "--comment", help="What is being done about it."),
        as_json: bool = JsonOpt) -> None:
    """Acknowledge an alert: who and why are kept in its history (the alert keeps firing until resolved)."""

    def body():
        from forecast.monitoring.report import acknowledge

        st = load_settings()
        doc = acknowledge(st, alert_id, by=by, comment=comment)
        if not as_json:
            out.print(f"alert {alert_id} ({doc['rule']}, {doc['state']}) acknowledged by {doc['acknowledged_by']}",
                      highlight=False)
        return doc, 0

    run_command(as_json, body)


@monitor_app.command("run")
def run(dataset: str = typer.Argument(..., help="Dataset id."),
        now: Optional[str] = typer.Option(None, "--now", help="Clock time of the pass (default: the dataset's "
                                          "clock)."),
        max_inits: int = typer.Option(500, "--max-inits", min=1, help="Verify at most this many inits."),
        as_json: bool = JsonOpt) -> None:
    """One monitoring pass by hand (the worker runs one after each cycle): verify what matured, recompute
    what was revised, judge skill, drift and strata, run the alert rules."""

    def body():
        from forecast.catalog import get_catalog
        from forecast.clock import clock_for
        from forecast.monitoring.monitor import Monitor

        st = load_settings()
        cat = get_catalog(st.catalogs, dataset)
        mon = Monitor(st, cat, clock=clock_for(st.home, dataset))
        try:
            doc = mon.run(time_option(now, "--now"), max_inits=max_inits, long=True)
            mon.notifier.drain(60)
        finally:
            mon.db.close()
        if not as_json:
            for var, d in doc.get("variables", {}).items():
                v = d["verified"]
                out.print(f"{dataset}/{var}: {v['new']} init(s) verified, {v['revised']} again after a revision; "
                          f"{d['features']} slot(s) featured; alerts fired {d['alerts']['fired']}, resolved "
                          f"{d['alerts']['resolved']}", highlight=False)
                for s in v["skipped"][:5]:
                    err.print(f"  {s['init_time']} not verified: {s['reason']}", highlight=False)
            if doc.get("note"):
                out.print(doc["note"], highlight=False)
        return doc, 0

    run_command(as_json, body)
