"""The model registry (forecast.registry) and ``forecast models ...`` on SQLite and PostgreSQL:
version allocation, files and sha256, stage changes and their history, concurrency, errors.

PostgreSQL comes from ``REVIEW_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), as for the review queue; each test gets its
own schema, dropped afterwards. An unreachable server fails these tests: CI provides one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import PG_URL, pg_schema
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from forecast.cli import app
from forecast.errors import BadInputError
from forecast.registry.store import (
    CheckpointMismatchError,
    CheckpointMissingError,
    InvalidStageChangeError,
    ModelRegistry,
    UnknownModelError,
)


RECORD = {
    "snapshot": "1CECHNKREP0F1RSTSPAP",
    "catalog_hash": "c" * 64,
    "qc_config_hash": "q" * 64,
    "hyperparameters": {"architecture": "unet", "lr": 1e-3, "epochs": 3},
    "metrics": {"val_mae": 0.42, "csi_1mm": float("nan")},
    "git_commit": "abc1234",
    "versions": {"forecast": "0.1.0", "torch": "2.13.0"},
    "train_period": ["2026-07-01T00:00Z", "2026-07-10T00:00Z"],  # an extra key: kept in `extra`
}

CONTRACT_KEYS = {"version", "dataset", "variable", "stage", "created_at", "created_by", "snapshot", "catalog_hash",
                 "qc_config_hash", "hyperparameters", "metrics", "git_commit", "versions", "checkpoint_sha256",
                 "checkpoint", "history"}


# --------------------------------------------------------------------------------------------
# fixtures


@dataclass(frozen=True)
class DB:
    url: str
    schema: str | None
    root: Path

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.url, self.root, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    root = tmp_path / "home" / "models"
    if request.param == "sqlite":
        yield DB(f"sqlite:///{tmp_path}/home/review.db", None, root)
        return
    with pg_schema("registry_test") as schema:
        yield DB(PG_URL, schema, root)


@pytest.fixture
def reg(db):
    r = db.registry()
    yield r
    r.close()


def checkpoint(folder: Path, content: bytes, name: str = "last.ckpt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(content)
    return p


def register(reg: ModelRegistry, tmp_path: Path, content: bytes = b"weights", *, variable="precipitation_rate",
             config: bool = True, by: str = "trainer"):
    ck = checkpoint(tmp_path / "train" / uuid.uuid4().hex, content)
    cfg = None
    if config:
        cfg = ck.parent / "config.yaml"
        cfg.write_text("model: unet\n")
    return reg.register(dataset="radar_precip", variable=variable, checkpoint=ck, config=cfg, record=RECORD, by=by)


# --------------------------------------------------------------------------------------------
# registering


def start_at_once(make, n: int = 6) -> list[BaseException]:
    """Open ``n`` registries at the same moment (each its own engine, like separate processes)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def start() -> None:
        try:
            barrier.wait()
            make().close()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_several_processes_create_the_tables_at_once(db):
    assert start_at_once(db.registry) == []
    with db.registry() as reg:
        assert reg.list() == []


def test_several_processes_open_a_fresh_sqlite_file_at_once(tmp_path):
    # switching a new file to WAL ignores the busy timeout: a race that shows in a few rounds of ten
    for i in range(12):
        url = f"sqlite:///{tmp_path}/round{i}/review.db"
        assert start_at_once(lambda: ModelRegistry(url, tmp_path / "models")) == [], f"round {i}"


def test_register_allocates_versions_copies_files_and_keeps_the_record(db, reg, tmp_path):
    r1 = register(reg, tmp_path, b"first weights")
    r2 = register(reg, tmp_path, b"second weights", config=False)
    assert (r1.version, r2.version) == ("v1", "v2")
    assert r1.checkpoint == (db.root / "v1" / "model.ckpt").absolute()
    assert r1.checkpoint.read_bytes() == b"first weights"
    assert r1.config.read_text() == "model: unet\n" and r2.config is None
    assert r1.checkpoint_sha256 == hashlib.sha256(b"first weights").hexdigest()
    assert sorted(p.name for p in db.root.iterdir()) == ["v1", "v2"]  # no staging folders left behind
    assert (r1.stage, r1.dataset, r1.variable, r1.created_by) == ("candidate", "radar_precip",
                                                                  "precipitation_rate", "trainer")
    assert r1.snapshot == RECORD["snapshot"] and r1.git_commit == "abc1234"
    assert r1.catalog_hash == "c" * 64 and r1.qc_config_hash == "q" * 64
    assert r1.hyperparameters == RECORD["hyperparameters"] and r1.versions == RECORD["versions"]
    assert r1.metrics == {"val_mae": 0.42, "csi_1mm": None}  # JSON has no NaN
    assert r1.extra == {"train_period": RECORD["train_period"]}

    doc = r1.to_json()
    assert set(doc) == CONTRACT_KEYS
    assert doc["created_at"].endswith("Z") and doc["checkpoint"] == str(r1.checkpoint)
    assert doc["history"] == [{"at": doc["history"][0]["at"], "by": "trainer", "from_stage": None,
                               "to_stage": "candidate", "reason": "registered", "override": False, "report": None}]
    assert doc["history"][0]["at"].endswith("Z")
    json.dumps(doc, allow_nan=False)

    with db.registry() as again:  # another process on the same database and folder
        assert [r.version for r in again.list()] == ["v1", "v2"]
        assert again.get("v1") == r1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stage": "production"}, "record['stage'] is set by the registry"),
        ({"dataset": "surface_obs"}, "record['dataset'] is 'surface_obs' but the model is registered for"),
        ({"metrics": [0.1]}, "record['metrics'] must be a dict, got list"),
        ({"git_commit": 1234}, "record['git_commit'] must be a string or None, got int"),
        ({"callback": object()}, "record['callback'] cannot be stored as JSON"),
    ],
)
def test_a_bad_training_record_is_refused_naming_the_key(tmp_path, change, message):
    with ModelRegistry(f"sqlite:///{tmp_path}/r.db", tmp_path / "models") as reg:
        ck = checkpoint(tmp_path, b"w")
        with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            reg.register(dataset="radar_precip", variable="precipitation_rate", checkpoint=ck, config=None,
                         record={**RECORD, **change}, by="trainer")
        assert reg.list() == []


def test_missing_source_files_are_refused(tmp_path):
    with ModelRegistry(f"sqlite:///{tmp_path}/r.db", tmp_path / "models") as reg:
        with pytest.raises(BadInputError, match=r"the checkpoint file .*nope.ckpt to register does not exist"):
            reg.register(dataset="radar_precip", variable="precipitation_rate", checkpoint=tmp_path / "nope.ckpt",
                         config=None, record={}, by="trainer")
        ck = checkpoint(tmp_path, b"w")
        with pytest.raises(BadInputError, match=r"the config file .*nope.yaml to register does not exist"):
            reg.register(dataset="radar_precip", variable="precipitation_rate", checkpoint=ck,
                         config=tmp_path / "nope.yaml", record={}, by="trainer")
        with pytest.raises(BadInputError, match="by must be a non-empty string"):
            reg.register(dataset="radar_precip", variable="precipitation_rate", checkpoint=ck, config=None,
                         record={}, by=" ")
        assert reg.list() == []


def test_concurrent_registrations_get_distinct_versions(db, reg, tmp_path):
    n = 8
    barrier = threading.Barrier(n)
    results: dict[bytes, str] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        content = f"weights of run {i}".encode()
        ck = checkpoint(tmp_path / f"run{i}", content)
        try:
            with db.registry() as mine:  # each its own engine and connections, like separate processes
                barrier.wait()
                results[content] = mine.register(dataset="radar_precip", variable="precipitation_rate",
                                                 checkpoint=ck, config=None, record=RECORD, by=f"t{i}").version
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(results.values(), key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, n + 1)]
    for content, version in results.items():  # every version holds its own checkpoint
        assert reg.checkpoint_path(version).read_bytes() == content


def test_a_leftover_folder_is_set_aside_not_overwritten(db, reg, tmp_path):
    stale = db.root / "v1"
    stale.mkdir(parents=True)
    (stale / "model.ckpt").write_bytes(b"from an interrupted registration")
    rec = register(reg, tmp_path, b"fresh")
    assert rec.version == "v1" and reg.checkpoint_path("v1").read_bytes() == b"fresh"
    (kept,) = (db.root / ".orphaned").iterdir()
    assert (kept / "model.ckpt").read_bytes() == b"from an interrupted registration"


# --------------------------------------------------------------------------------------------
# stages


def test_promotion_retires_the_previous_production_and_history_is_append_only(db, reg, tmp_path):
    v1, v2 = register(reg, tmp_path).version, register(reg, tmp_path).version
    other = register(reg, tmp_path, variable="reflectivity").version
    assert reg.production("radar_precip", "precipitation_rate") is None
    reg.set_stage(other, "production", by="ana", reason="first reflectivity model", override=True)

    p1 = reg.set_stage(v1, "production", by="ana", reason="beats persistence", report=PASSED)
    assert p1.stage == "production" and reg.production("radar_precip", "precipitation_rate").version == v1
    p2 = reg.set_stage(v2, "production", by="ben", reason="hindcast 2026-07 better than v1", override=True)
    assert p2.stage == "production"
    assert reg.production("radar_precip", "precipitation_rate").version == v2
    assert reg.get(v1).stage == "retired"
    assert reg.get(other).stage == "production"  # another variable is left alone

    h1 = reg.history(v1)
    assert [(h.from_stage, h.to_stage, h.by, h.reason) for h in h1] == [
        (None, "candidate", "trainer", "registered"),
        ("candidate", "production", "ana", "beats persistence"),
        ("production", "retired", "ben", "hindcast 2026-07 better than v1"),
    ]
    assert h1[1].report == PASSED and h1[2].override is True
    h2 = reg.history(v2)
    assert (h2[-1].from_stage, h2[-1].to_stage, h2[-1].override) == ("candidate", "production", True)
    assert h2[-1].at == h1[-1].at  # one transaction
    assert all(a.at <= b.at for a, b in zip(h1, h1[1:]))

    assert [r.version for r in reg.list(stage="retired")] == [v1]
    assert [r.version for r in reg.list(dataset="radar_precip", variable="reflectivity")] == [other]

    # the stage history cannot be rewritten, even with SQL
    table = f'"{db.schema}".model_stage_changes' if db.schema else "model_stage_changes"
    for sql in (f"UPDATE {table} SET reason = 'x'", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), reg.engine.begin() as c:
            c.execute(text(sql))
    assert len(reg.history(v1)) == 3


#: the record `forecast.registry.promote` makes of a hindcast report that passed the gate
PASSED = {"path": "/reports/v1/report.json", "sha256": "ab" * 32, "gate": {"passed": True, "reasons": []}}


@pytest.mark.parametrize("report", [None, {"skill": 0.3}, {**PASSED, "gate": {"passed": False}},
                                    {**PASSED, "sha256": None}])
def test_production_needs_a_passed_gate_or_an_override(reg, tmp_path, report):
    v1 = register(reg, tmp_path).version
    with pytest.raises(InvalidStageChangeError, match=f"model {v1} can become production only through the "
                                                      "promotion gate"):
        reg.set_stage(v1, "production", by="ana", reason="looks good", report=report)
    assert reg.get(v1).stage == "candidate" and len(reg.history(v1)) == 1
    over = reg.set_stage(v1, "production", by="ana", reason="storm season, gate overridden", override=True,
                         report=report)
    assert over.stage == "production" and over.history[-1].override is True


def test_invalid_stage_changes_are_refused_with_one_sentence(reg, tmp_path):
    v1 = register(reg, tmp_path).version
    cases = [
        (dict(stage="candidate"), f"model {v1} is already candidate"),
        (dict(stage="approved"), "stage must be one of candidate, production, retired, got 'approved'"),
        (dict(stage="production", reason="  "), f"moving model {v1} to production needs a reason"),
        (dict(stage="production", by=""), "by must be a non-empty string"),
    ]
    for kw, message in cases:
        args = {"by": "ana", "reason": "why not", **kw}
        with pytest.raises(InvalidStageChangeError, match=message):
            reg.set_stage(v1, args.pop("stage"), **args)
    reg.set_stage(v1, "production", by="ana", reason="good", report=PASSED)
    with pytest.raises(InvalidStageChangeError, match=f"model {v1} is production and cannot become candidate "
                                                      r"\(a model is a candidate only by being registered\)"):
        reg.set_stage(v1, "candidate", by="ana", reason="again")
    reg.set_stage(v1, "retired", by="ana", reason="drifted")
    assert reg.production("radar_precip", "precipitation_rate") is None
    rolled_back = reg.set_stage(v1, "production", by="ana", reason="roll back: successor failed", override=True)
    assert rolled_back.stage == "production" and len(rolled_back.history) == 4
    with pytest.raises(UnknownModelError, match="known versions: v1"):
        reg.set_stage("v9", "production", by="ana", reason="x", override=True)


def test_concurrent_promotions_leave_exactly_one_production(db, reg, tmp_path):
    versions = [register(reg, tmp_path, f"w{i}".encode()).version for i in range(6)]
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def worker(version: str) -> None:
        try:
            with db.registry() as mine:
                barrier.wait()
                mine.set_stage(version, "production", by=f"op-{version}", reason="race", override=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    stages = {r.version: r.stage for r in reg.list()}
    assert sorted(stages.values()) == ["production"] + ["retired"] * 5
    for v, stage in stages.items():
        path = [h.to_stage for h in reg.history(v)]
        assert path == (["candidate", "production"] if stage == "production" else
                        ["candidate", "production", "retired"])


# --------------------------------------------------------------------------------------------
# checkpoints and errors


def test_checkpoint_path_refuses_a_changed_or_missing_file(db, reg, tmp_path):
    rec = register(reg, tmp_path, b"original weights")
    assert reg.checkpoint_path("v1") == rec.checkpoint
    rec.checkpoint.write_bytes(b"tampered weights")
    with pytest.raises(CheckpointMismatchError) as e:
        reg.checkpoint_path("v1")
    msg = str(e.value)
    assert str(rec.checkpoint) in msg and hashlib.sha256(b"original weights").hexdigest() in msg
    assert hashlib.sha256(b"tampered weights").hexdigest() in msg and isinstance(e.value, BadInputError)
    rec.checkpoint.unlink()
    with pytest.raises(CheckpointMissingError, match=f"checkpoint of model v1 is missing at {rec.checkpoint}"):
        reg.checkpoint_path("v1")


def test_an_unknown_version_names_the_known_ones(reg, tmp_path):
    with pytest.raises(UnknownModelError, match="the model registry is empty") as e:
        reg.get("v1")
    assert isinstance(e.value, BadInputError) and isinstance(e.value, KeyError)
    register(reg, tmp_path)
    register(reg, tmp_path)
    with pytest.raises(UnknownModelError, match=r"no model 'v7' in the registry; known versions: v1, v2$"):
        reg.get("v7")
    with pytest.raises(UnknownModelError, match="known versions: v1, v2"):
        reg.checkpoint_path("v7")


# --------------------------------------------------------------------------------------------
# the command line


@pytest.fixture
def cli_db(db, tmp_path, monkeypatch):
    """FORECAST_HOME in tmp, and the registry's database (SQLite in HOME, or a PostgreSQL schema)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FORECAST_HOME", str(home))
    if db.schema is not None:
        with create_engine(PG_URL).begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{db.schema}"')
        url = f"{PG_URL}?options=-csearch_path%3D{db.schema}"
        monkeypatch.setenv("FORECAST_DATABASE_URL", url)
    else:
        url = f"sqlite:///{(home / 'review.db').absolute()}"
        monkeypatch.delenv("FORECAST_DATABASE_URL", raising=False)
    monkeypatch.delenv("FORECAST_MODELS", raising=False)
    reg = ModelRegistry(url, home / "models")
    yield reg
    reg.close()


def cli(*args: str, code: int = 0):
    res = CliRunner().invoke(app, ["models", *args, "--json"])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def test_cli_list_show_promote_retire(cli_db, tmp_path):
    reg = cli_db
    register(reg, tmp_path)
    register(reg, tmp_path)
    assert cli("list") == {"models": [reg.get("v1").to_json(), reg.get("v2").to_json()]}
    assert cli("list", "--stage", "production") == {"models": []}

    shown = cli("show", "v1")
    assert set(shown) == CONTRACT_KEYS and shown["stage"] == "candidate"

    # the promotion gate: no hindcast report of v1 -> refused (tests/test_gate.py covers reports)
    refused = cli("promote", "v1", "--by", "ana", "--reason", "hindcast beats persistence", code=2)
    assert "v1 has no hindcast report" in refused["error"]
    promoted = cli("promote", "v1", "--by", "ana", "--reason", "hindcast beats persistence", "--override")
    assert promoted["stage"] == "production"
    assert promoted["history"][-1] == {**promoted["history"][-1], "by": "ana", "from_stage": "candidate",
                                       "to_stage": "production", "reason": "hindcast beats persistence",
                                       "override": True, "report": None}
    promoted = cli("promote", "v2", "--by", "ben", "--reason", "better", "--override")
    assert promoted["history"][-1]["override"] is True
    assert [m["version"] for m in cli("list", "--stage", "retired")["models"]] == ["v1"]
    assert cli("show", "v1")["history"][-1]["reason"] == "better"

    retired = cli("retire", "v2", "--by", "ana", "--reason", "drift")
    assert retired["stage"] == "retired"
    assert cli("list", "--dataset", "radar_precip", "--stage", "production") == {"models": []}


def test_cli_refusals_exit_2_with_one_sentence(cli_db, tmp_path):
    register(cli_db, tmp_path)
    doc = cli("show", "v9", code=2)
    assert doc == {"error": "no model 'v9' in the registry; known versions: v1", "exit_code": 2}
    assert "known versions: v1" in cli("promote", "v9", "--by", "a", "--reason", "r", code=2)["error"]
    assert "needs a reason" in cli("promote", "v1", "--by", "ana", "--reason", "", code=2)["error"]
    assert "stage must be one of" in cli("list", "--stage", "live", code=2)["error"]
    res = CliRunner().invoke(app, ["models", "promote", "v1", "--by", "ana"])
    assert res.exit_code == 2 and "--reason" in res.output  # required by typer


def test_cli_human_output(cli_db, tmp_path):
    register(cli_db, tmp_path)
    register(cli_db, tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["models", "promote", "v1", "--by", "ana", "--reason", "good"], terminal_width=200)
    assert res.exit_code == 2 and "v1 has no hindcast report" in res.output
    res = runner.invoke(app, ["models", "promote", "v1", "--by", "ana", "--reason", "good", "--override"],
                        terminal_width=200)
    assert res.exit_code == 0 and "v1 is now the production model of radar_precip.precipitation_rate" in res.output
    res = runner.invoke(app, ["models", "promote", "v2", "--by", "ana", "--reason", "better", "--override"],
                        terminal_width=200)
    assert res.exit_code == 0 and "; v1 retired" in res.output
    res = runner.invoke(app, ["models", "list"], terminal_width=200)
    assert res.exit_code == 0 and "registered models" in res.output and "production" in res.output
    res = runner.invoke(app, ["models", "show", "v1"], terminal_width=200)
    assert res.exit_code == 0 and "stage history of v1" in res.output and "better" in res.output
    res = runner.invoke(app, ["models", "show", "v5"], terminal_width=200)
    assert res.exit_code == 2 and "known versions: v1, v2" in res.output


def test_the_registry_shares_the_review_queue_database(tmp_path):
    from forecast.review import ReviewQueue

    url = f"sqlite:///{tmp_path}/home/review.db"
    with ReviewQueue(url) as queue, ModelRegistry(url, tmp_path / "models") as reg:
        register(reg, tmp_path)
        assert queue.list() == [] and [r.version for r in reg.list()] == ["v1"]
        with reg.engine.connect() as c:
            tables = set(c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
    assert {"review_items", "review_audit", "model_versions", "model_stage_changes"} <= tables
