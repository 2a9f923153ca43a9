"""The monitor over HTTP: status, rolling skill, input drift, strata and alerts (role ``reader``), and the
acknowledgement of an alert (role ``operator``, recorded under the token's user). One service call per
handler (`forecast.monitoring.report`); nothing here reads the stores, only the service database."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from api.auth import BEARER, current_user, require, require_operator
from api.openapi import problem_specs, query_param
from api.problems import Problem
from forecast.errors import BadInputError, UnknownDatasetError

MAX_ID = 2**53
AlertId = Annotated[int, Parameter(ge=1, le=MAX_ID, description="Alert id")]
_LOCK = threading.Lock()


class AckIn(msgspec.Struct, forbid_unknown_fields=True):
    """An acknowledgement: what is being done about the alert. Who acknowledges is the token's user."""

    comment: Annotated[str, msgspec.Meta(max_length=4000, extra_json_schema={"extra": {"min_length": 1,
                                                                                      "pattern": r"\S"}})]


def _db(request: Request):
    """The monitor's tables on the service database, opened once per application."""
    state = request.app.state
    db = state.get("monitor_db")
    if db is None:
        with _LOCK:
            db = state.get("monitor_db")
            if db is None:
                from forecast.monitoring.store import MonitorDB

                db = MonitorDB(state.settings.db_url)
                state["monitor_db"] = db
    return db


async def _call(request: Request, fn, *args, **kw) -> dict[str, Any]:
    settings = request.app.state.settings
    try:
        return await anyio.to_thread.run_sync(lambda: fn(settings, *args, db=_db(request), **kw))
    except UnknownDatasetError as e:
        raise Problem(404, str(e)) from None
    except BadInputError as e:
        if e.param == "variable":  # a variable the dataset does not have: nothing there
            raise Problem(404, str(e)) from None
        raise


Dataset = Annotated[str, query_param("dataset", "Dataset id.", required=True, minLength=1)]
Variable = Annotated[str | None, query_param("variable", "Variable (default: the dataset's only one, or the "
                                             "first monitored).")]
Window = Annotated[str | None, query_param("window", "short or long (default: both).", enum=["short", "long"])]


@get("/monitor/status", guards=[require("reader")], security=BEARER, tags=["monitor"], summary="Monitor status",
     responses=problem_specs(400, 401, 403, 500))
async def monitor_status(request: Request, dataset: Annotated[str | None, query_param(
        "dataset", "Only this dataset.")] = None) -> dict[str, Any]:
    """Per dataset and variable: the latest monitoring pass, skill at the key leads on both windows, the
    change detector, drifted features, the worst stratum, the feed; the firing alerts."""
    from forecast.monitoring.report import status_doc

    return await _call(request, status_doc, dataset)


@get("/monitor/skill", guards=[require("reader")], security=BEARER, tags=["monitor"], summary="Rolling skill",
     responses=problem_specs(400, 401, 403, 404, 500))
async def monitor_skill(request: Request, dataset: Dataset, variable: Variable = None, window: Window = None,
                        stage: Annotated[str, query_param("stage", "current (final where an observation was "
                                                          "revised) or preliminary.",
                                                          enum=["current", "preliminary"])] = "current"
                        ) -> dict[str, Any]:
    """``windows`` -> ``short`` / ``long``: per lead the model's, persistence's and extrapolation's scores
    (RMSE, MAE, bias, CSI, POD, FAR, frequency bias, FSS) and the skill against each reference with its
    paired block-bootstrap interval; ``staged``: inits verified again after a revision and how much the
    verdict moved; ``series``: the per-init skill; ``detector``: the change detector's state."""
    from forecast.monitoring.report import skill_doc

    if window is not None and window not in ("short", "long"):
        raise Problem(400, f"window: must be short or long, got {window!r}")
    if stage not in ("current", "preliminary"):
        raise Problem(400, f"stage: must be current or preliminary, got {stage!r}")
    windows = (window,) if window else ("short", "long")
    return await _call(request, skill_doc, dataset, variable, windows=windows, stage=stage, n_boot=200)


@get("/monitor/drift", guards=[require("reader")], security=BEARER, tags=["monitor"], summary="Input drift",
     responses=problem_specs(400, 401, 403, 404, 500))
async def monitor_drift(request: Request, dataset: Dataset, variable: Variable = None) -> dict[str, Any]:
    """Per window and feature: the drift statistic (PSI or normalised Wasserstein), its threshold from the
    reference period's own chunks, the ratio and whether it drifted; the reference's period and source."""
    from forecast.monitoring.report import drift_doc

    return await _call(request, drift_doc, dataset, variable)


@get("/monitor/strata", guards=[require("reader")], security=BEARER, tags=["monitor"],
     summary="Skill by region and regime", responses=problem_specs(400, 401, 403, 404, 500))
async def monitor_strata(request: Request, dataset: Dataset, variable: Variable = None,
                         window: Annotated[str, query_param("window", "short or long.", enum=["short", "long"])] = "long",
                         lead: Annotated[int | None, Parameter(ge=1, le=100_000, description="Lead in minutes "
                                                               "(default: the first key lead).")] = None
                         ) -> dict[str, Any]:
    """Skill against persistence per region and regime, the worst stratum and its gap to the whole grid's,
    and ``below_reference`` where the model is worse than persistence while the mean is not."""
    from forecast.monitoring.report import strata_doc

    if window not in ("short", "long"):
        raise Problem(400, f"window: must be short or long, got {window!r}")
    return await _call(request, strata_doc, dataset, variable, window=window, lead_minutes=lead)


@get("/monitor/alerts", guards=[require("reader")], security=BEARER, tags=["monitor"], summary="Alerts",
     responses=problem_specs(400, 401, 403, 500))
async def monitor_alerts(request: Request,
                         alert_state: Annotated[str | None, query_param("state", "firing or resolved (default: "
                                                                        "both).", enum=["firing", "resolved"])] = None,
                         dataset: Annotated[str | None, query_param("dataset", "Only this dataset.")] = None,
                         limit: Annotated[int, Parameter(ge=1, le=10_000)] = 200) -> dict[str, Any]:
    """``alerts``, firing first then newest first: each with ``id``, ``rule``, ``dataset``, ``state``,
    ``since``, its message and details, acknowledgement and history (``events``)."""
    from forecast.monitoring.report import alerts_doc

    if alert_state is not None and alert_state not in ("firing", "resolved"):
        raise Problem(400, f"state: must be firing or resolved, got {alert_state!r}")
    return await _call(request, alerts_doc, state=alert_state, dataset=dataset, limit=limit)


@get("/monitor/alerts/{alert_id:int}", guards=[require("reader")], security=BEARER, tags=["monitor"],
     summary="One alert with its history", responses=problem_specs(400, 401, 403, 404, 500))
async def monitor_alert(request: Request, alert_id: AlertId) -> dict[str, Any]:
    """One alert: state, message, details, acknowledgement, and its append-only history (fired, resolved,
    acknowledged, delivered, undelivered)."""
    db = _db(request)
    a = await anyio.to_thread.run_sync(lambda: db.alert(alert_id))  # UnknownAlertError -> 404
    return a.to_json()


@post("/monitor/alerts/{alert_id:int}/ack", guards=[require_operator], security=BEARER, tags=["monitor"],
      summary="Acknowledge an alert (operator)", status_code=200,
      responses=problem_specs(400, 401, 403, 404, 409, 413, 422, 500))
async def monitor_ack(request: Request, alert_id: AlertId, data: AckIn) -> dict[str, Any]:
    """Acknowledge under the token's user, with a comment (kept in the alert's history). The alert keeps
    its state: it resolves when its condition clears. 409 when it was acknowledged already (naming who)."""
    from forecast.monitoring.store import AlertConflict

    user = current_user(request)
    if not data.comment.strip():
        raise Problem(422, "comment: say what is being done about the alert")
    db = _db(request)
    try:
        a = await anyio.to_thread.run_sync(lambda: db.acknowledge(alert_id, by=user.name, comment=data.comment))
    except AlertConflict as e:
        from forecast.timeutil import iso

        raise Problem(409, str(e), kind="conflict", acknowledged_by=e.by, acknowledged_at=iso(e.at)) from None
    return a.to_json()


ROUTES = [monitor_status, monitor_skill, monitor_drift, monitor_strata, monitor_alerts, monitor_alert, monitor_ack]


def register_metrics(app_metrics, settings) -> None:
    """The monitor's gauges on the API's /metrics (read at scrape time from the service database)."""
    from forecast.monitoring.metrics import MonitorCollector

    app_metrics.registry.register(MonitorCollector(settings.db_url))
