"""The production model in the worker's own process: a model that misses the cycle's deadline is killed
for real and the fallback answers; a checkpoint deleted while the service runs is refused and said so; a
probabilistic model's probabilities come through the process under the same deadline."""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import probkit
import pytest
import yaml

from forecast.clock import FixedClock
from forecast.timeutil import iso
from forecast.worker.cycle import open_service, run_cycle
from forecast.worker.inbox import feed_folders
from forecast.worker.runner import ModelProcess, _bulk_files, _pack, _unpack
from testkit import trains_model
from workerkit import P, START, STEP, drop, make_world, slot_file

TINY = {"inputs": 3, "leads": 3, "network": {"base_channels": 4, "depth": 2},
        "training": {"max_epochs": 1, "samples_per_epoch": 8, "patch": 16, "batch_size": 4, "max_val_windows": 2}}


@pytest.fixture(scope="module")
@trains_model
def trained(tmp_path_factory):
    """3 h of radar: the first 2 h ingested (as a backfill), a tiny model trained on them and promoted."""
    from forecast.ingest import ingest
    from forecast.quality import run_qc
    from forecast.registry import ModelRegistry, promote
    from forecast.registry.training import train_model
    from forecast.stores import store_for

    tmp = tmp_path_factory.mktemp("modelproc")
    st, cat, sample, manifest = make_world(tmp, hours=3, faults=())
    store = store_for(st)
    first = [sample / f for f in manifest["batches"]["main"]][:24]
    ingest(cat, first, store=store, latency=timedelta(minutes=1), scheduler="sync")
    run_qc(cat, store=store)
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    doc = train_model(st, cat.id, P, config_path=cfg, by="test")
    with ModelRegistry(st.db_url, st.models_dir) as reg:
        promote(st, reg, doc["version"], by="test", reason="a tiny model for the worker's tests", override=True)
    return st, cat, sample, manifest, doc


def _feed(svc, world, clock, t):
    st, cat, sample, manifest, _ = world
    inbox, _, _ = feed_folders(st, cat)
    clock.set(t + timedelta(seconds=30))
    drop(slot_file(sample, manifest, t), inbox)
    return run_cycle(svc)


def _with_deadline(svc, seconds: str):
    feed = svc.catalog.feed.model_copy(update={"deadline": seconds})
    svc.catalog = svc.catalog.model_copy(update={"feed": feed})


def test_a_model_past_its_deadline_is_killed_and_the_fallback_answers(trained):
    st, cat, sample, manifest, doc = trained
    clock = FixedClock(START)
    runner = ModelProcess()
    svc = open_service(st, cat.id, clock=clock, runner=runner)
    try:
        # a cold model process (spawn, torch import, checkpoint load) cannot answer within 0.5 s: the fallback
        # answers, and the process getting ready is left to finish (not killed)
        _with_deadline(svc, "0.5s")
        rep = _feed(svc, trained, clock, START + 24 * STEP)
        (f,) = rep["forecasts"]
        assert f["method"] == "extrapolation" and "its process is still starting" in f["fallback"]["reason"]
        assert runner.kills == 0
        # warm and with time: the model answers
        assert runner.warm()
        _with_deadline(svc, "120s")
        rep = _feed(svc, trained, clock, START + 25 * STEP)
        (f,) = rep["forecasts"]
        assert f["method"] == "model" and f["fallback"] is None and f["model"] == doc["version"]
        # the probabilities came through the model process under the same deadline: the model's own when it
        # has a probabilistic head, else the neighbourhood of its forecast, never a fallback of their own
        probs = svc.fstore.provenance(cat.id, START + 25 * STEP)["probabilities"]
        assert probs["source"] in ("model", "neighbourhood of model") and probs["fallback"] is None
        assert len(probs["parameters"]) == len(cat.variables[P].thresholds)
        # a model that hangs (its process stopped by SIGSTOP) past the deadline is killed for real, and a new
        # process is warmed at once
        import os
        import signal

        hung = runner._proc.pid
        os.kill(hung, signal.SIGSTOP)
        _with_deadline(svc, "1s")
        rep = _feed(svc, trained, clock, START + 26 * STEP)
        (f,) = rep["forecasts"]
        assert f["method"] == "extrapolation" and "exceeded the deadline of 1 s" in f["fallback"]["reason"]
        assert runner.kills == 1
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # gone, not piling up
        assert runner.warm(120)  # a new process, ready for the next cycle
        _with_deadline(svc, "120s")
        # the checkpoint is deleted while the service runs: refused, said so, the fallback answers
        ckpt = st.models_dir / doc["version"] / "model.ckpt"
        saved = ckpt.read_bytes()
        ckpt.unlink()
        try:
            rep = _feed(svc, trained, clock, START + 27 * STEP)
            (f,) = rep["forecasts"]
            assert f["method"] == "extrapolation" and "missing" in f["fallback"]["reason"]
            assert f["init_time"] == iso(START + 27 * STEP) and runner.kills == 1
        finally:
            ckpt.write_bytes(saved)
    finally:
        runner.close()
        svc.db.close()


@pytest.mark.parametrize("loader, source, why, bulk", [
    # every answer through shared memory (the other cases, and the test above, use the pipe)
    (probkit.load_with_probabilities, "model", None, True),
    (probkit.load_with_broken_probabilities, "neighbourhood of model", "failed: RuntimeError: probability head diverged",
     False),
    (probkit.load_with_slow_probabilities, "neighbourhood of model", "probabilities exceeded the deadline of 20 s",
     False),
])
def test_a_probabilistic_model_sends_its_probabilities_through_the_process(trained, loader, source, why, bulk,
                                                                            monkeypatch):
    st, cat, sample, manifest, doc = trained
    bulk_answers = []
    if bulk:
        import forecast.worker.runner as runner_module

        monkeypatch.setenv("FORECAST_MODEL_BULK_BYTES", "0")  # read by the child it spawns
        monkeypatch.setattr(runner_module, "_unpack", lambda a: bulk_answers.append(a[0]) or _unpack(a))
    clock = FixedClock(START)
    runner = ModelProcess(loader=loader)
    svc = open_service(st, cat.id, clock=clock, runner=runner)
    t = START + {"load_with_probabilities": 28, "load_with_broken_probabilities": 29}.get(loader.__name__, 30) * STEP
    try:
        assert runner.warm(120)
        _with_deadline(svc, "20s")
        rep = _feed(svc, trained, clock, t)
        (f,) = rep["forecasts"]
        assert f["method"] == "model" and f["fallback"] is None, f  # the forecast stands in every case
        probs = svc.fstore.provenance(cat.id, t)["probabilities"]
        assert probs["source"] == source
        assert (probs["fallback"] is None) if why is None else (why in probs["fallback"])
        assert runner.kills == (1 if "deadline" in (why or "") else 0)
        stored = svc.fstore.open(cat.id)
        p = stored[probs["parameters"][0]].isel(init_time=-1).values
        assert np.isfinite(p).any() and np.nanmin(p) >= 0 and np.nanmax(p) <= 1
        assert _bulk_files(os.getpid()) == []  # every answer's file read and removed
        assert bulk_answers == (["bulk", "bulk"] if bulk else [])  # the forecast and its probabilities
    finally:
        runner.close()
        svc.db.close()


def test_a_large_answer_goes_through_shared_memory_unchanged(monkeypatch):
    """`_pack` (the child's side) writes the values to a file and sends their description; `_unpack` (the
    parent's) gives the same DataArray back and removes the file; a small answer goes as it is."""
    import xarray as xr

    da = xr.DataArray(np.random.default_rng(3).random((2, 3, 4, 5), dtype=np.float32), dims=("threshold", "lead_time",
                      "y", "x"), coords={"threshold": [1.0, 10.0], "y": np.arange(4.0)}, attrs={"units": "1"},
                      name=P)
    da[0, 0, 0, 0] = np.nan
    assert _pack(da) is da  # under 8 MiB: through the pipe
    monkeypatch.setenv("FORECAST_MODEL_BULK_BYTES", "1")
    packed = _pack(da)
    assert packed[0] == "bulk" and os.path.exists(packed[1])
    back = _unpack(packed)
    assert not os.path.exists(packed[1])
    xr.testing.assert_identical(back, da)
    assert _unpack("not an answer") == "not an answer"


@pytest.mark.parametrize("threads", [1, 2])
def test_the_model_process_runs_torch_with_the_threads_it_is_given(trained, threads):
    """`worker_model_threads`: the model's process computes with that many torch threads (0, the default,
    is one per core: the worker waits while its model forecasts)."""
    from forecast.nowcast.forecaster import input_quality
    from forecast.nowcast.predict import read_inputs
    from forecast.worker.cycle import _forecaster

    st, cat, sample, manifest, doc = trained
    runner = ModelProcess(loader=probkit.load_reporting_threads, threads=threads)
    svc = open_service(st, cat.id, clock=FixedClock(START + 24 * STEP), runner=runner)
    try:
        assert runner.warm(120)
        fc = _forecaster(svc, P)
        init = START + 23 * STEP
        obs = read_inputs(svc.store, cat, P, init, fc.k, as_of=START + 24 * STEP)
        _, usable = input_quality(obs, P)
        answer = fc._run_model(obs[P], obs[P].copy(data=usable), 60.0)
        assert answer.out is not None, answer.reason
        assert answer.out.attrs["torch_threads"] == threads
    finally:
        runner.close()
        svc.db.close()
