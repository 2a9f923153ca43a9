"""What the worker's state says to operators: `forecast worker status`, the API's /ready and /metrics.
Reads the cycle log and the lease only (no torch, no stores), so the API can import it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from forecast.timeutil import iso
from forecast.worker.state import WorkerState

__all__ = ["lease_name", "worker_status"]


def lease_name(settings) -> str:
    """The lease of the observation store the worker writes (one active worker per store)."""
    return f"store:{settings.observation_store}"


def worker_status(settings, datasets: list[str] | None = None, *, state: WorkerState | None = None) -> dict[str, Any]:
    """What `forecast worker status` and the API's /ready report: the lease (holder, heartbeat), the last
    cycle of each dataset (init, method, fallback, lateness, when), deadline misses, skipped inits (with
    reasons) and fallbacks by reason, over the last 24 hours and in all."""
    from datetime import timedelta

    settings.home.mkdir(parents=True, exist_ok=True)
    own = state is None
    st = WorkerState(settings.db_url) if own else state
    try:
        lease = next((x for x in st.leases() if x["name"] == lease_name(settings)), None)
        recent = st.recent(limit=200)
        names = datasets or sorted({r["dataset"] for r in recent})
        day = datetime.now(timezone.utc) - timedelta(hours=24)
        per: dict[str, Any] = {}
        for d in names:
            last = next((r for r in st.recent(d, limit=1, status="done")), None)
            per[d] = {"last_cycle": _cycle_doc(last), "last_24h": st.summary(d, since=day), "all": st.summary(d)}
    finally:
        if own:
            st.close()
    processes = []
    for path in sorted((Path(settings.home) / "worker").glob("status-*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        alive = _alive(doc.get("pid"))
        if not alive and doc.get("state") == "stopped":
            path.unlink(missing_ok=True)  # a clean exit's last word, once read
        processes.append({**doc, "alive": alive})
    last = max((v["last_cycle"] for v in per.values() if v["last_cycle"]), key=lambda c: c["finished_at"],
               default=None)
    return {
        "lease": None if lease is None else {
            "name": lease["name"], "holder": lease["holder"], "active": lease["active"],
            "acquired_at": iso(lease["acquired_at"]), "heartbeat_at": iso(lease["heartbeat_at"]),
            "expires_at": iso(lease["expires_at"])},
        "last_cycle": last,
        "deadline_misses": sum(v["all"]["deadline_misses"] for v in per.values()),
        "skipped": sum(v["all"]["skipped"]["count"] for v in per.values()),
        "datasets": per,
        "processes": processes,
    }


def _alive(pid: Any) -> bool:
    """Whether a process of this id runs on this machine (the status files are this machine's)."""
    import os

    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def _cycle_doc(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"dataset": r["dataset"], "variable": r["variable"], "init_time": iso(r["init_time"]),
            "method": r["method"], "fallback": r["fallback"], "model": r["model_version"],
            "lateness_s": r["lateness_s"], "deadline_missed": r["deadline_missed"],
            "finished_at": iso(r["finished_at"]), "stages": r["stages"], "worker": r["worker"]}
