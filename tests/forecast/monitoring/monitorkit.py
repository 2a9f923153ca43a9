"""Helpers of the monitoring tests: the service database on SQLite or PostgreSQL (a schema per test), a
small radar world with regions and a monitored worker, local receivers for alert delivery (an HTTP server
on loopback, aiosmtpd), and a forecaster that turns bad on request."""

from __future__ import annotations

import json
import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get("REVIEW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class DB:
    url: str
    schema: str | None

    def monitor(self):
        from forecast.monitoring.store import MonitorDB

        return MonitorDB(self.url, schema=self.schema)


@contextmanager
def database(kind: str, tmp_path: Path):
    """A fresh service database: a SQLite file, or a schema of its own on the local PostgreSQL."""
    if kind == "sqlite":
        yield DB(f"sqlite:///{tmp_path}/home/review.db", None)
        return
    schema = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.connect() as c:
            c.execute(text("SELECT 1"))
    except OperationalError as e:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable ({e.orig}); the monitoring tests need it")
    try:
        yield DB(PG_URL, schema)
    finally:
        with admin.begin() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


# -- receivers ---------------------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on loopback that records the JSON documents POSTed to it (status to answer settable)."""

    def __init__(self, status: int = 200):
        self.docs: list[dict] = []
        self.status = status
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.status < 300:
                    outer.docs.append(json.loads(body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port nobody listens on (a receiver that is down)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Mailbox:
    """A real SMTP server in-process (aiosmtpd) that keeps every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes
                from email.policy import default

                outer.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default)))
                return "250 Message accepted for delivery"

        port = closed_port()  # aiosmtpd checks it is up by connecting to the port it was given: not 0
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{port}"

    def close(self):
        self.controller.stop()


# -- a monitored world ------------------------------------------------------------------------------------------

MONITORING = {"short_window": "1h", "long_window": "3h", "long_every": "0s", "min_inits": 3, "n_boot": 50,
              "key_leads_minutes": [30, 60], "detector": {"warmup": 6, "h": 6.0}}


def monitored_world(tmp: Path, *, hours: float = 3.0, monitoring: dict | None = None, faults=(),
                    database_url: str | None = None, rules: list | None = None, seed: int = 5, ny=32, nx=48):
    """A small radar world (workerkit's) whose catalog has regions and short windows."""
    import yaml

    from forecast.catalog import parse_catalog
    from forecast.settings import Settings
    from forecast.synthetic import generate_sample
    from testkit import small_doc, write_catalog
    from workerkit import START

    doc = small_doc("radar_precip", ny=ny, nx=nx)
    doc["feed"] = {"expected_latency": "2min", "wait_for_late": "3min", "deadline": "60s", "expire_after": "5min",
                   "settle": "0s"}
    doc["monitoring"] = {**MONITORING, "regions": [
        {"name": "west", "cells": {"iy": [0, ny], "ix": [0, nx // 2]}},
        {"name": "east", "cells": {"iy": [0, ny], "ix": [nx // 2, nx]}}], **(monitoring or {})}
    path = write_catalog(tmp / "catalogs", doc)
    if rules is not None:
        (tmp / "catalogs" / "alerts.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs", database_url=database_url, workers=1)
    sample = tmp / "sample"
    manifest = generate_sample(cat, start=START, hours=hours, out=sample, faults=list(faults), seed=seed)
    return st, cat, sample, manifest


def feed_cycles(svc, world, clock, start, until, *, every=None, on_cycle=None):
    """Drop the on-time files of each slot (1 min after its time) and run a cycle after each."""
    from forecast.timeutil import iso
    from forecast.worker.cycle import run_cycle
    from forecast.worker.inbox import feed_folders
    from workerkit import STEP, drop, slot_file

    st, cat, sample, manifest = world
    inbox, _, _ = feed_folders(st, cat)
    status = {s["time"]: s["status"] for s in manifest["slots"]}
    reports = []
    t = start
    while t <= until:
        clock.set(t + timedelta(minutes=1))
        if status.get(iso(t)) not in ("missing", "late", None):
            drop(slot_file(sample, manifest, t), inbox)
        if on_cycle is not None:
            on_cycle(t)
        reports.append(run_cycle(svc))
        t += every or STEP
    return reports


class BadForecaster:
    """Stands in for a degraded model promoted by override: the production forecast moved far off (the
    fields shifted by ``shift`` cells and scaled by ``scale``), everything else as the real Forecaster."""

    def __init__(self, inner, shift: int = 9, scale: float = 1.8):
        self.inner, self.shift, self.scale = inner, shift, scale
        self._key = inner._key
        self.k = inner.k
        self.runner = None
        self.registry = inner.registry
        self.deadline = inner.deadline

    def produce(self, obs, init, *, as_of=None):
        p = self.inner.produce(obs, init, as_of=as_of)
        v = p.forecast[self.inner.variable]
        p.forecast[self.inner.variable] = v.copy(data=np.roll(np.asarray(v.values), self.shift, axis=-1) * self.scale)
        p.method = "model"
        p.provenance["method"] = "model"
        p.provenance["fallback"] = None
        p.fallback = None
        return p

    def __getattr__(self, name):
        return getattr(self.inner, name)


# -- scenarios on rendered fields (the monitor's drift and detector code, without stores) -----------------------


def scenario_catalog(n: int = 128):
    """The radar catalog on an n x n grid with its four radar areas as quadrant regions."""
    from forecast.catalog import parse_catalog
    from testkit import small_doc

    doc = small_doc("radar_precip", ny=n, nx=n)
    h = n // 2
    doc["monitoring"] = {"short_window": "6h", "long_window": "24h", "regions": [
        {"name": "radar_nw", "cells": {"iy": [0, h], "ix": [0, h]}},
        {"name": "radar_ne", "cells": {"iy": [0, h], "ix": [h, n]}},
        {"name": "radar_sw", "cells": {"iy": [h, n], "ix": [0, h]}},
        {"name": "radar_se", "cells": {"iy": [h, n], "ix": [h, n]}}]}
    return parse_catalog(doc, "scenario")


def scenario_features(cat, sc, start_s: float, *, seed: int = 0) -> list[dict]:
    from forecast.monitoring.offline import scenario_features as features

    return features(cat, sc, start_s, seed=seed)


def drift_alerts(db, cat, rows: list[dict], ref_slots: int, rules, *, start, every: int = 1) -> list[tuple]:
    from forecast.monitoring.offline import drift_events

    return drift_events(db, cat, rows, ref_slots, rules, start=start, every=every)


# -- a monitor database without stores (for the command line, the API and the console) ----------------------------


def fill_monitor_db(db, cat, *, n_inits: int = 30, start=None, variable: str = "precipitation_rate", seed: int = 0,
                    revise: int | None = 3):
    """Verification rows of ``n_inits`` inits (model, persistence, extrapolation) made by the monitor's code
    from random fields, one init verified twice (``revise``), a snapshot, a firing and a resolved alert."""
    from datetime import datetime

    from forecast.evaluation import Verifier
    from forecast.monitoring.detector import per_init_skill
    from forecast.monitoring.records import records_from_state
    from forecast.monitoring.records import _scores

    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 7, 15, 12, tzinfo=UTC)
    ny, nx = cat.grid.shape
    leads = 12
    lead_s = [300 * (i + 1) for i in range(leads)]
    thr = (1.0, 10.0, 30.0, 50.0)

    def rows_for(init, revs, noise):
        obs = rng.gamma(0.5, 4.0, (leads, ny, nx)).astype(np.float32)
        obs[obs < 0.5] = 0
        valid = rng.random(obs.shape) > 0.05
        v = Verifier(np.array(lead_s) * np.timedelta64(1, "s"), thr, [1, 3, 9])
        t64 = np.datetime64(int(init.timestamp()), "s")
        fields = {"model": obs + rng.normal(0, noise, obs.shape), "persistence": obs + rng.normal(0, 3.0, obs.shape),
                  "extrapolation": obs + rng.normal(0, 2.5, obs.shape)}
        for m, f in fields.items():
            v.add(t64, m, f.astype(np.float32), obs, valid)
        recs = records_from_state(v.to_state())
        h = nx // 2
        strata = {}
        for m, f in fields.items():
            for name, sl in (("west", np.s_[..., :h]), ("east", np.s_[..., h:])):
                rv = Verifier(np.array(lead_s) * np.timedelta64(1, "s"), thr, [1], [thr[0]])
                rv.add(t64, m, f[sl].astype(np.float32), obs[sl], valid[sl])
                r = records_from_state(rv.to_state())[m]
                strata.setdefault(m, {})[name] = {"n": r.n.tolist(), "sse": r.sse.tolist(), "hmf": r.hmf.tolist()}
        skill = per_init_skill(recs["model"].sse, recs["model"].n, recs["persistence"].sse, recs["persistence"].n, 12,
                               0.01)
        return [{"dataset": cat.id, "variable": variable, "init_time": init, "method": m,
                 "forecast_method": "model" if m == "model" else m, "model_version": "v1" if m == "model" else None,
                 "fallback": None, "lead_s": lead_s, "obs_revisions": revs, "obs_snapshot": "s", "inputs": {},
                 "regimes": ["light", f"h{(init.hour // 6) * 6:02d}_{(init.hour // 6) * 6 + 6:02d}"],
                 "skill": skill if m == "model" else None, "scores": _scores(recs[m], thr, [1, 3, 9]), "record": recs[m].pack(),
                 "strata": strata[m], "computed_at": init + timedelta(hours=1)} for m in fields]

    for i in range(n_inits):
        init = start + timedelta(minutes=5 * i)
        db.add_verifications(rows_for(init, [0] * leads, 1.5))
        if i == revise:
            db.add_verifications(rows_for(init, [0] * 5 + [1] + [0] * 6, 1.6))
    last = start + timedelta(minutes=5 * (n_inits - 1))
    a = db.fire(rule="skill_drop", kind="skill_change", dataset=cat.id, variable=variable,
                subject="per-init skill vs persistence", severity="critical", since=last, value=12.0,
                message="the change detector found a drop of the per-init skill", details={"s": 12.0})
    b = db.fire(rule="input_drift_short", kind="input_drift", dataset=cat.id, variable=variable,
                subject="short window inputs", severity="warning", since=start, value=2.0,
                message="input drift on the short window: edge_contrast@east", details={"features": ["edge_contrast@east"]})
    db.resolve(b.id, at=last, value=0.5, message="no input drift")
    snap = {"now": (last + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "dataset": cat.id,
            "variable": variable, "last_verified": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "skill": {"short": {"n_inits": n_inits, "enough": True, "start": "", "end": "",
                                "leads": [{"lead_minutes": 30, "model_rmse": 1.5, "persistence_rmse": 3.0,
                                           "extrapolation_rmse": 2.5, "skill_persistence": 0.5,
                                           "skill_extrapolation": 0.4, "lower": -1.6, "upper": -1.4}]}},
            "drift": {"short": {"drifted": ["edge_contrast@east"], "n_slots": 72, "note": None,
                                "features": {"edge_contrast@east": {"value": 2.0, "threshold": 1.0, "ratio": 2.0,
                                                                    "statistic": "wasserstein"},
                                             "wet_fraction": {"value": 0.3, "threshold": 1.0, "ratio": 0.3,
                                                              "statistic": "wasserstein"}}}, "long": None},
            "strata": {"long": {"worst": {"stratum": "east", "kind": "region", "skill": 0.1, "gap": -0.3,
                                          "n_inits": n_inits}, "below": [],
                                "strata": {"east": {"kind": "region", "skill": 0.1, "gap": -0.3, "n_inits": n_inits}},
                                "mean_skill": 0.4}},
            "detector": {"n": n_inits, "mean": 0.5, "var": 0.01, "s": 12.0, "h": 10.0, "alarm": True,
                         "alarm_since": None, "last_init": None, "last_x": -0.5, "last_z": -4.0, "alarms": 1,
                         "method": "cusum"},
            "feed": {"missing_run": 0, "late_share": 0.0, "fail_share": 0.001}, "deadline_misses": 0,
            "rules": "test", "seconds": {"verify": 0.1}}
    db.put_state(cat.id, variable, "snapshot", snap, last)
    db.put_state(cat.id, variable, "detector", snap["detector"], last)
    return a, b
