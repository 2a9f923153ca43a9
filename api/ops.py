"""Operations: /health (alive), /ready (stores and database reachable, latest forecast age against
the cycle), /metrics (Prometheus)."""

from __future__ import annotations

import time
from typing import Any

import anyio
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.openapi import problem_specs
from api.schemas import HealthDoc, ReadyDoc
from forecast.clock import clock_for
from forecast.timeutil import iso

STALE_CYCLES = 3  # a forecast older than this many init steps is stale


@get("/health", tags=["ops"], summary="Liveness", responses=problem_specs(500))
async def health(request: Request) -> HealthDoc:
    """The process is alive (nothing else is checked)."""
    return HealthDoc(status="ok", uptime_s=round(time.time() - request.app.state.services.started_at, 3))


def _checks(request: Request) -> tuple[bool, dict[str, Any]]:
    s = request.app.state.services
    checks: dict[str, Any] = {}
    ok = True
    cats = s.catalogs()
    checks["catalogs"] = {"ok": bool(cats), "datasets": sorted(cats)}
    ok &= bool(cats)
    try:
        head = s.observations.head(force=True)
        checks["observation_store"] = {"ok": head is not None, "snapshot": head,
                                       "location": s.settings.observation_store}
        if head is None:
            checks["observation_store"]["detail"] = "the observation store does not exist yet (ingest first)"
    except Exception as e:  # noqa: BLE001
        checks["observation_store"] = {"ok": False, "detail": str(e)}
    ok &= checks["observation_store"]["ok"]
    fc: dict[str, Any] = {"location": s.settings.forecast_store_location}
    try:
        head = s.forecasts.head(force=True)
        fc.update(ok=head is not None, snapshot=head)
        if head is None:
            fc["detail"] = "the forecast store does not exist yet (run `forecast predict` or `forecast cycle`)"
        ages = {}
        for d, r in s.forecasts.runs():
            if r != "production":
                continue
            v = s.forecasts.view(d, r)
            if v.latest is None:
                ages[v.collection_id] = {"latest_init": None, "stale": True}
                continue
            # against the dataset's clock: a replayed feed runs on its own time
            age = clock_for(s.settings.home, d).now().timestamp() - v.init_s(v.latest)
            ages[v.collection_id] = {"latest_init": iso(v.init_s(v.latest)),
                                     "age_s": round(age, 1), "cycle_s": v.step_s,
                                     "stale": age > STALE_CYCLES * v.step_s}
        fc["forecasts"] = ages
    except Exception as e:  # noqa: BLE001
        fc.update(ok=False, detail=str(e))
    checks["forecast_store"] = fc
    ok &= fc["ok"]
    try:
        s.users.ping()
        s.queue.list(limit=1)
        checks["database"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        checks["database"] = {"ok": False, "detail": str(e).split("\n")[0]}
    ok &= checks["database"]["ok"]
    checks["worker"] = _worker(s)
    stale = [k for k, v in fc.get("forecasts", {}).items() if v.get("stale")]
    degraded = (["stale forecasts " + ", ".join(stale)] if stale else []) + (
        [checks["worker"]["detail"]] if not checks["worker"].get("ok") else [])
    checks["status"] = "not ready" if not ok else ("degraded: " + "; ".join(degraded) if degraded else "ok")
    return bool(ok), checks


def _worker(s) -> dict[str, Any]:
    """The worker's state (informational: forecasts already made are served without it): the lease holder,
    each dataset's last cycle and its lateness, deadline misses and skipped inits over the last 24 hours."""
    from forecast.worker.status import worker_status

    try:
        doc = worker_status(s.settings, state=s.worker_state)
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "detail": f"the worker's state is unreadable: {str(e).splitlines()[0]}"}
    lease = doc["lease"]
    out: dict[str, Any] = {
        "ok": bool(lease and lease["active"]), "lease": lease, "last_cycle": doc["last_cycle"],
        "datasets": {d: {"last_cycle": v["last_cycle"],
                         "deadline_misses_24h": v["last_24h"]["deadline_misses"],
                         "skipped_24h": v["last_24h"]["skipped"]["count"],
                         "fallbacks_24h": v["last_24h"]["fallbacks"]} for d, v in doc["datasets"].items()},
        "deadline_misses": doc["deadline_misses"], "skipped": doc["skipped"],
    }
    if lease is None:
        out["detail"] = "no worker has run yet: start `forecast worker` (or run `forecast cycle` from cron)"
    elif not lease["active"]:
        out["detail"] = f"no active worker: the lease of {lease['holder']} expired at {lease['expires_at']}"
    return out


@get("/ready", tags=["ops"], summary="Readiness",
     responses={503: ResponseSpec(data_container=ReadyDoc, description="Not ready: the checks say what is missing."),
                **problem_specs(500)})
async def ready(request: Request) -> Response[ReadyDoc]:
    """Stores and database reachable (200) or not (503); each forecast collection's latest init age
    against its cycle (``stale`` beyond 3 cycles: reported as degraded, still ready); the worker: lease
    holder, last cycle and its lateness, deadline misses and skipped inits (no active worker: degraded)."""
    ok, checks = await anyio.to_thread.run_sync(lambda: _checks(request))
    return Response(ReadyDoc(ready=ok, checks=checks), status_code=200 if ok else 503,
                    headers={"Cache-Control": "no-store"})


@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4",
     responses=problem_specs(500))
async def metrics(request: Request) -> Response[str]:
    """Request latency histogram per route, request counts by status, latest forecast age, review queue
    size by state, QC flag counts by dataset."""
    body = await anyio.to_thread.run_sync(request.app.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4", headers={"Cache-Control": "no-store"})


ROUTES = [health, ready, metrics]
