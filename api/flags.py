"""QC flags as the API spells them: the aggregate flag's name per QARTOD code, and the names of the tests
set in a ``v_qc_tests`` bitmask."""

from __future__ import annotations

from qc.flags import QCFlag, TestBit

FLAG_NAMES: dict[int, str] = {int(f): f.name for f in QCFlag}
_BITS = [(int(b), b.name.lower()) for b in TestBit]


# TODO: qc.flags.test_names - replace this copy by the public one when it lands (it returns a tuple;
# the JSON encoding of a list and a tuple is the same).
def test_names(bits: int) -> list[str]:
    """Names of the test (and review) bits set in ``bits``, in bit order."""
    return [name for bit, name in _BITS if bits & bit]


test_names.__test__ = False  # a function named test_*: not a pytest test when imported into a test module
