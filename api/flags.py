"""QC flags as the API spells them: the aggregate flag's name per QARTOD code, and the names of the tests
set in a ``v_qc_tests`` bitmask (`qc.flags.test_names`, as a list)."""

from __future__ import annotations

from qc.flags import QCFlag
from qc.flags import test_names as _names

FLAG_NAMES: dict[int, str] = {int(f): f.name for f in QCFlag}


def test_names(bits: int) -> list[str]:
    """Names of the test (and review) bits set in ``bits``, in bit order."""
    return list(_names(bits))


test_names.__test__ = False  # a function named test_*: not a pytest test when imported into a test module
