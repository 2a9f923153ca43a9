"""The QC checks: pure functions from values to uint8 QARTOD flags shaped like the values.

A check never changes or drops a value; it only says what it thinks of it. Each check accepts a
numpy array, a dask array (the result stays lazy; neighbourhood checks overlap blocks by exactly
the neighbours they look at, so chunked and whole-array results are identical) or an xarray
DataArray (numpy- or dask-backed; the result is a DataArray with the same dims and coords).

Conventions shared by every check:

- data positional, options keyword-only; a bad option raises ``QCError`` at once, a bad value is
  only ever a flag;
- a NaN value is flagged MISSING (9) by every check (except ``cross_variable``, see there);
- a value a check cannot judge (no neighbours, no record for that month) is NOT_EVALUATED (2);
- temporal checks work along the ``time`` dimension (axis 0 of plain arrays; for DataArrays the
  dimension named ``time_dim``), spatial checks over the last two dimensions;
- thresholds are compared with strict ``>`` (as ioos_qc does), and arithmetic runs in the data's
  own float dtype (float32 stays float32).

Modules: ``range`` (missing, physical_range, climatology), ``temporal`` (spike, rate_of_change,
flat_line), ``spatial``, ``cross_variable``; ``common`` holds what they share and ``halo`` runs
their numpy cores over dask blocks.

``qc.checks.spatial`` and ``qc.checks.cross_variable`` are the functions (re-exported over their
modules' names); reach those modules' other contents with ``from qc.checks.spatial import ...``.
"""

# Each check is named as the test it implements, so the exports are TEST_NAMES (a test in
# tests/qc/checks/test_common.py keeps the two in step).
from qc.checks.cross_variable import cross_variable  # noqa: F401
from qc.checks.range import climatology, missing, physical_range  # noqa: F401
from qc.checks.spatial import MAD_TO_SIGMA, spatial  # noqa: F401
from qc.checks.temporal import flat_line, rate_of_change, spike  # noqa: F401
from qc.flags import TEST_NAMES

__all__ = [*TEST_NAMES, "MAD_TO_SIGMA"]
