"""The layers: import-linter's contracts (pyproject.toml [tool.importlinter]) hold, and what is imported
lazily stays out of a process until it is used (the contracts see lazy imports too, so the runtime check
is the one that shows `forecast ingest`, the API and the worker's bookkeeping never pay for torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testkit import ROOT


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout and "Contracts: 7 kept, 0 broken." in res.stdout


@pytest.mark.parametrize("modules, absent", [
    # the command line, ingestion and the stores start without torch, pysteps or the web framework
    ("forecast.cli, forecast.stores, forecast.ingest, forecast.quality, forecast.registry, forecast.nowcast",
     ("torch", "lightning", "pysteps", "litestar", "matplotlib")),
    # the model's registry and the Forecaster import torch only when a learned model runs
    ("forecast.nowcast.forecaster, forecast.nowcast.predict, forecast.registry.training, forecast.evaluation.hindcast",
     ("torch", "lightning")),
    # the API starts fast and light: forecasts are precomputed
    ("api.app", ("torch", "lightning", "pysteps")),
    # qc is science on arrays only
    ("qc, qc.config, qc.pipeline, qc.checks, qc.flags, qc.events", ("forecast", "api", "torch", "litestar",
                                                                    "lightning", "sqlalchemy")),
])
def test_lazy_imports_stay_out_until_used(modules, absent):
    code = (f"import sys, {modules}; bad = [m for m in {absent!r} if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, f"importing {modules} loaded {res.stdout.strip()} {res.stderr[-500:]}"
