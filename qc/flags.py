"""The flag scheme: QARTOD codes per value (``v_qc``), one bit per test (``v_qc_tests``), their
aggregation by precedence, CF attributes, review decisions and the "usable for training" rule.

Values are never touched here: everything takes flag arrays and returns new flag arrays. Every
function accepts numpy arrays, dask arrays (the result stays lazy) and xarray DataArrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, IntFlag
from functools import partial
from typing import Any

import numpy as np

from qc.errors import QCError

__all__ = [
    "QCFlag",
    "TestBit",
    "TEST_NAMES",
    "TEST_BITS",
    "PRECEDENCE",
    "aggregate",
    "cf_attrs",
    "qc_name",
    "tests_name",
    "test_names",
    "apply_review",
    "usable_mask",
]


class QCFlag(IntEnum):
    """QARTOD flag codes (the values of ``v_qc``)."""

    GOOD = 1
    NOT_EVALUATED = 2
    SUSPECT = 3
    FAIL = 4
    MISSING = 9


class TestBit(IntFlag):
    """Bits of ``v_qc_tests`` (uint32): which tests raised SUSPECT / FAIL, and review decisions.

    Test bits occupy bits 0..7 (room for more up to bit 15), review bits 16..17.
    """

    __test__ = False  # not a pytest test class, despite the name

    MISSING = 1 << 0
    PHYSICAL_RANGE = 1 << 1
    CLIMATOLOGY = 1 << 2
    SPIKE = 1 << 3
    RATE_OF_CHANGE = 1 << 4
    FLAT_LINE = 1 << 5
    SPATIAL = 1 << 6
    CROSS_VARIABLE = 1 << 7
    REVIEWED_ACCEPTED = 1 << 16
    REVIEWED_REJECTED = 1 << 17


#: Test names as they appear in configs and in ``aggregate``'s mapping, in bit order.
TEST_NAMES: tuple[str, ...] = (
    "missing",
    "physical_range",
    "climatology",
    "spike",
    "rate_of_change",
    "flat_line",
    "spatial",
    "cross_variable",
)
TEST_BITS: dict[str, int] = {name: int(TestBit[name.upper()]) for name in TEST_NAMES}

#: Aggregation precedence, strongest first.
PRECEDENCE: tuple[QCFlag, ...] = (
    QCFlag.MISSING,
    QCFlag.FAIL,
    QCFlag.SUSPECT,
    QCFlag.GOOD,
    QCFlag.NOT_EVALUATED,
)

# Inside lazy pipelines the aggregate code and the test bits travel packed in one integer
# (one dask output per block, ``PACK_DTYPE``): test bits must stay below the shift.
PACK_DTYPE, _PACK_SHIFT = (np.uint16, 8) if max(TEST_BITS.values()) < 256 else (np.uint32, 24)
_U8 = {int(f): np.uint8(f) for f in QCFlag}


def qc_name(var: str) -> str:
    """Name of the aggregate flag variable beside ``var``."""
    return f"{var}_qc"


def tests_name(var: str) -> str:
    """Name of the per-test bitmask variable beside ``var``."""
    return f"{var}_qc_tests"


def test_names(bits: int) -> tuple[str, ...]:
    """The names of the ``TestBit`` bits set in a ``v_qc_tests`` bitmask, in bit order.

    Lower-case member names, review decisions included: ``test_names(0b1100 | 1 << 16)`` is
    ``("climatology", "spike", "reviewed_accepted")``. Bits that name no ``TestBit`` are ignored.
    """
    bits = int(bits)
    return tuple(b.name.lower() for b in TestBit if bits & int(b))


test_names.__test__ = False  # not a pytest test, despite the name


# --------------------------------------------------------------------------------------------
# aggregation


def aggregate_packed(names: tuple[str, ...], *flags: np.ndarray) -> np.ndarray:
    """numpy core of ``aggregate`` (also run by ``qc.pipeline``): returns ``tests | (qc << shift)``
    as ``PACK_DTYPE``; ``split_packed`` takes it apart."""
    qc, bits = _aggregate_np(names, flags)
    packed = bits.astype(PACK_DTYPE)
    packed |= qc.astype(PACK_DTYPE) << PACK_DTYPE(_PACK_SHIFT)
    return packed


def _aggregate_np(names, flags) -> tuple[np.ndarray, np.ndarray]:
    """(aggregate uint8, test bits as the smallest unsigned int that holds them)."""
    bits_dtype = np.uint8 if max(TEST_BITS[n] for n in names) < 256 else np.uint32
    first = np.asarray(flags[0])
    agg = first.astype(np.uint8, copy=True)
    bits = np.zeros(first.shape, dtype=bits_dtype)
    u8 = []
    for i, (name, f) in enumerate(zip(names, flags)):
        f = np.asarray(f)
        if f.dtype != np.uint8:
            f = f.astype(np.uint8)
        u8.append(f)
        if i:
            np.maximum(agg, f, out=agg)
        if name == "missing":
            raised = f == 9
        else:
            # 3 or 4 <=> (f - 3) as uint8 in {0, 1}: one subtraction and one comparison
            raised = (f - np.uint8(3)) <= np.uint8(1)
        np.bitwise_or(bits, bits_dtype(TEST_BITS[name]), out=bits, where=raised)
    # Codes are ordered by precedence except GOOD (1) < NOT_EVALUATED (2): where the maximum is
    # NOT_EVALUATED but some test said GOOD, the answer is GOOD. Usually few cells are at 2.
    two = np.flatnonzero(agg == 2)
    if two.size:
        good = np.zeros(two.size, dtype=bool)
        for f in u8:
            good |= f.reshape(-1)[two] == 1
        agg.reshape(-1)[two[good]] = 1
    return agg, bits


def _split_qc_np(packed: np.ndarray) -> np.ndarray:
    return (packed >> PACK_DTYPE(_PACK_SHIFT)).astype(np.uint8)


def _split_tests_np(packed: np.ndarray) -> np.ndarray:
    out = np.empty(packed.shape, dtype=np.uint32)
    np.bitwise_and(packed, PACK_DTYPE((1 << _PACK_SHIFT) - 1), out=out, casting="unsafe")
    return out


def split_packed(packed):
    """(qc uint8, tests uint32) from packed codes; numpy, dask (lazy) or xarray."""
    import xarray as xr

    if isinstance(packed, xr.DataArray):
        return (
            xr.apply_ufunc(_split_any, packed, kwargs={"which": "qc"}, dask="allowed"),
            xr.apply_ufunc(_split_any, packed, kwargs={"which": "tests"}, dask="allowed"),
        )
    return _split_any(packed, "qc"), _split_any(packed, "tests")


def _split_any(packed, which):
    fn, dt = (_split_qc_np, np.uint8) if which == "qc" else (_split_tests_np, np.uint32)
    import dask.array as da

    if isinstance(packed, da.Array):
        return packed.map_blocks(fn, dtype=dt, meta=np.empty((0,) * packed.ndim, dt))
    return fn(packed)


def aggregate(flags_by_test: Mapping[str, Any]) -> tuple[Any, Any]:
    """Combine per-test flags into the aggregate flag ``v_qc`` and the bitmask ``v_qc_tests``.

    Rule: per value, the aggregate is the strongest code any test gave, in the order
    MISSING > FAIL > SUSPECT > GOOD > NOT_EVALUATED. MISSING is strongest because there is no
    value to judge; a GOOD from any test that could evaluate the value beats NOT_EVALUATED from
    one that could not (no neighbours, not configured). A test's bit is set where it gave
    SUSPECT or FAIL; the ``missing`` test's bit is set where it gave MISSING. Codes other than
    the five QARTOD codes are not expected (the checks never produce them).

    Args:
        flags_by_test: test name (one of ``TEST_NAMES``) -> uint8 flags, all the same shape;
            numpy, dask or xarray (results are then lazy / DataArrays as well).

    Returns:
        ``(qc, tests)``: uint8 aggregate codes and uint32 bitmask, shaped like the inputs.

    Raises:
        QCError: when the mapping is empty, names an unknown test, or shapes differ.
    """
    if not flags_by_test:
        raise QCError("aggregate needs at least one test's flags, got an empty mapping")
    unknown = [n for n in flags_by_test if n not in TEST_BITS]
    if unknown:
        raise QCError(f"unknown test name(s) {unknown}; valid names are {list(TEST_NAMES)}")
    names = tuple(flags_by_test)
    arrays = list(flags_by_test.values())
    shapes = {tuple(np.shape(a)) for a in arrays}
    if len(shapes) != 1:
        raise QCError(f"all flag arrays must have the same shape, got {sorted(shapes)}")

    import xarray as xr

    if any(isinstance(a, xr.DataArray) for a in arrays):
        packed = xr.apply_ufunc(
            lambda *arrs: _aggregate_packed_any(names, arrs), *arrays, dask="allowed"
        )
        return split_packed(packed)
    return split_packed(_aggregate_packed_any(names, arrays))


def _aggregate_packed_any(names, arrays):
    import dask.array as da

    if any(isinstance(a, da.Array) for a in arrays):
        _, arrays = da.core.unify_chunks(*[x for a in arrays for x in (da.asarray(a), tuple(range(a.ndim)))])
        return da.map_blocks(
            partial(aggregate_packed, names),
            *arrays,
            dtype=PACK_DTYPE,
            meta=np.empty((0,) * arrays[0].ndim, PACK_DTYPE),
        )
    return aggregate_packed(names, *arrays)


# --------------------------------------------------------------------------------------------
# CF attributes


def cf_attrs(
    var: str,
    *,
    standard_name: str | None = None,
    long_name: str | None = None,
) -> dict[str, Any]:
    """CF attributes for ``<var>_qc`` and ``<var>_qc_tests`` and the data variable's link to them.

    Returns:
        ``{"qc": {...}, "tests": {...}, "ancillary_variables": "<var>_qc <var>_qc_tests"}``:
        ``qc`` carries ``flag_values`` (uint8) and ``flag_meanings`` and, when the data
        variable's ``standard_name`` is given, ``standard_name = "<standard_name> status_flag"``;
        ``tests`` carries ``flag_masks`` (uint32) and ``flag_meanings``. Put
        ``ancillary_variables`` on the data variable.
    """
    what = long_name or standard_name or var
    qc = {
        "long_name": f"Aggregate quality flag of {what}",
        "flag_values": np.array([int(f) for f in QCFlag], dtype=np.uint8),
        "flag_meanings": " ".join(f.name for f in QCFlag),
        "flag_precedence": " > ".join(f.name for f in PRECEDENCE),
        "references": "https://ioos.noaa.gov/project/qartod/",
    }
    if standard_name:
        qc["standard_name"] = f"{standard_name} status_flag"
    tests = {
        "long_name": f"Quality tests that raised SUSPECT or FAIL for {what}, and review decisions",
        "flag_masks": np.array([int(b) for b in TestBit], dtype=np.uint32),
        "flag_meanings": " ".join(b.name.lower() for b in TestBit),
    }
    return {"qc": qc, "tests": tests, "ancillary_variables": f"{qc_name(var)} {tests_name(var)}"}


# --------------------------------------------------------------------------------------------
# review decisions and usability


def _where(cond, a, b):
    import xarray as xr

    if any(isinstance(v, xr.DataArray) for v in (cond, a, b)):
        return xr.where(cond, a, b, keep_attrs=True)
    return np.where(cond, a, b)  # dask arrays dispatch to dask.array.where


def apply_review(qc, tests, accepted_mask, rejected_mask) -> tuple[Any, Any]:
    """Write operator decisions into the flags; the values themselves stay untouched.

    Rule: where accepted, the aggregate becomes GOOD and REVIEWED_ACCEPTED is set (and
    REVIEWED_REJECTED cleared); where rejected, the aggregate becomes FAIL and REVIEWED_REJECTED
    is set (REVIEWED_ACCEPTED cleared). Where a cell is in both masks, rejected wins (a later
    module resolves decisions in time order; this one errs on the side of not using the value).
    MISSING stays MISSING: there is no value to decide on. Test bits are kept, so the record of
    which tests raised the value survives the decision.

    Args:
        qc: uint8 aggregate flags. tests: uint32 bitmask. accepted_mask, rejected_mask: boolean
            arrays broadcastable to ``qc`` (numpy, dask or xarray).

    Returns:
        New ``(qc, tests)``.
    """
    acc_bit = np.uint32(TestBit.REVIEWED_ACCEPTED)
    rej_bit = np.uint32(TestBit.REVIEWED_REJECTED)
    present = qc != _U8[9]
    rej = rejected_mask & present
    acc = accepted_mask & ~rejected_mask & present
    new_qc = _where(rej, _U8[4], _where(acc, _U8[1], qc))
    new_tests = _where(acc, (tests | acc_bit) & ~rej_bit, tests)
    new_tests = _where(rej, (new_tests | rej_bit) & ~acc_bit, new_tests)
    return _astype(new_qc, np.uint8), _astype(new_tests, np.uint32)


def _astype(a, dtype):
    return a if a.dtype == dtype else a.astype(dtype)


def usable_mask(qc, tests, *, include_unreviewed_suspect: bool = True):
    """Which values training and verification may use.

    Rule: GOOD, NOT_EVALUATED, accepted by review, and SUSPECT not yet reviewed (only when
    ``include_unreviewed_suspect``); never FAIL, rejected or MISSING, whatever else is set.

    Returns:
        Boolean array shaped like ``qc`` (lazy for dask input).
    """
    acc = (tests & np.uint32(TestBit.REVIEWED_ACCEPTED)) != 0
    rej = (tests & np.uint32(TestBit.REVIEWED_REJECTED)) != 0
    ok = (qc == _U8[1]) | (qc == _U8[2]) | acc
    if include_unreviewed_suspect:
        ok = ok | ((qc == _U8[3]) & ~acc & ~rej)
    return ok & ~rej & (qc != _U8[4]) & (qc != _U8[9])
