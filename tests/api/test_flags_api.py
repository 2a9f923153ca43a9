"""QC flag names as the API spells them (api.flags)."""

from __future__ import annotations

from api.flags import FLAG_NAMES, test_names
from qc.flags import QCFlag, TestBit


def test_flag_names_cover_every_qartod_code():
    assert FLAG_NAMES == {1: "GOOD", 2: "NOT_EVALUATED", 3: "SUSPECT", 4: "FAIL", 9: "MISSING"}
    assert set(FLAG_NAMES) == {int(f) for f in QCFlag}


def test_test_names_in_bit_order_including_review_bits():
    assert test_names(0) == []
    bits = TestBit.SPIKE | TestBit.CLIMATOLOGY | TestBit.REVIEWED_ACCEPTED
    assert test_names(int(bits)) == ["climatology", "spike", "reviewed_accepted"]
    assert test_names(2**32 - 1) == [b.name.lower() for b in TestBit]
