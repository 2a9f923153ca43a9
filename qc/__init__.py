"""Quality control that flags without discarding: pure checks, the flag scheme, QC configs."""

from qc.checks import (  # noqa: F401 (exported through *TEST_NAMES below)
    climatology,
    cross_variable,
    flat_line,
    missing,
    physical_range,
    rate_of_change,
    spatial,
    spike,
)
from qc.config import DEFAULTS, QCConfig, VariableMeta, default_config, load_qc_config
from qc.errors import QCConfigError, QCError
from qc.flags import (
    TEST_BITS,
    TEST_NAMES,
    QCFlag,
    TestBit,
    aggregate,
    apply_review,
    cf_attrs,
    qc_name,
    test_names,
    tests_name,
    usable_mask,
)
from qc.pipeline import run_checks

__all__ = [
    "QCError",
    "QCConfigError",
    "QCFlag",
    "TestBit",
    "TEST_NAMES",
    "TEST_BITS",
    "aggregate",
    "apply_review",
    "cf_attrs",
    "qc_name",
    "tests_name",
    "test_names",
    "usable_mask",
    *TEST_NAMES,  # the checks, one per test: missing, physical_range, ... cross_variable
    "QCConfig",
    "VariableMeta",
    "DEFAULTS",
    "default_config",
    "load_qc_config",
    "run_checks",
]
