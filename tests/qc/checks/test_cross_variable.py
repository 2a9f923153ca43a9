"""cross_variable (qc.checks.cross_variable): known values, NaN pairs, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

import qc
from qc import QCError

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


def arr(*v, dtype="float64"):
    return np.array(v, dtype=dtype)


def test_cross_variable_dew_point_above_air_temperature():
    t = arr(280, 280, 280, 280, nan, 280)
    td = arr(275, 280.4, 281, 290, 270, nan)
    out = qc.cross_variable(t, td, rule="a_ge_b", tolerance=0.5, fail_tolerance=5.0)
    np.testing.assert_array_equal(out, [G, G, S, F, N, N])
    np.testing.assert_array_equal(qc.cross_variable(td, t, rule="a_le_b", tolerance=0.5), [G, G, S, S, N, N])


def test_cross_variable_bad_parameters():
    with pytest.raises(QCError, match=r"unknown cross-variable rule 'a_gt_b'; valid rules are \['a_ge_b', 'a_le_b'\]"):
        qc.cross_variable(arr(1), arr(1), rule="a_gt_b", tolerance=0)
    with pytest.raises(QCError, match="fail_tolerance must be greater than tolerance"):
        qc.cross_variable(arr(1), arr(1), tolerance=1, fail_tolerance=0.5)
    with pytest.raises(QCError, match="broadcastable"):
        qc.cross_variable(arr(1, 2), arr(1, 2, 3), tolerance=1)
