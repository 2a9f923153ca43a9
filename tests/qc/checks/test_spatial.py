"""spatial (qc.checks.spatial): isolated pixels vs storm cores, edges and gaps, a brute-force reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import qc
from qc import QCError

G, N, S, F, M = 1, 2, 3, 4, 9
nan = np.nan


def arr(*v, dtype="float64"):
    return np.array(v, dtype=dtype)


def _ref_spatial(x, window, suspect_z, fail_z, min_valid, min_scale, min_support):
    """Brute force: nanmedian / MAD over an explicit sliding window (slow, obviously right)."""
    r = window // 2
    p = np.pad(x.astype(float), ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    w = sliding_window_view(p, (window, window), axis=(1, 2)).reshape(x.shape + (window * window,))
    nb = np.delete(w, window * window // 2, axis=-1)
    out = np.ones(x.shape, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        med = np.nanmedian(nb, axis=-1)
        mad = np.nanmedian(np.abs(nb - med[..., None]), axis=-1)
        z = np.abs(x - med) / np.maximum(1.4826 * mad, min_scale)
        d = x - med
        sup = np.sum((nb - med[..., None]) * np.sign(d)[..., None] >= 0.5 * np.abs(d)[..., None], axis=-1)
    iso = sup < min_support
    out[(z > suspect_z) & iso] = S
    if fail_z:
        out[(z > fail_z) & iso] = F
    out[np.sum(~np.isnan(nb), axis=-1) < min_valid] = N
    out[np.isnan(x)] = M
    return out


def test_spatial_isolated_pixel_vs_storm_core():
    f = np.zeros((1, 12, 12))
    f[0, 3, 3] = 120.0  # a lone hot pixel amid dry cells
    f[0, 6:10, 6:11] = [[60, 90, 110, 95, 70], [80, 130, 160, 120, 85], [75, 125, 150, 118, 80], [50, 70, 90, 75, 55]]
    out = qc.spatial(f, suspect_z=10, fail_z=40, min_scale=2.0)
    assert out[0, 3, 3] == F
    core = out[0, 6:10, 6:11]
    assert (core == G).all(), core  # corroborated by its neighbours: not flagged
    flagged = np.argwhere(out[0] >= S)
    assert flagged.tolist() == [[3, 3]]


def test_spatial_small_pair_of_artefacts_still_flagged_but_2x2_is_corroborated():
    f = np.zeros((1, 9, 9))
    f[0, 2, 2] = f[0, 2, 3] = 100.0  # each supports the other: 1 < min_support 2
    f[0, 6:8, 6:8] = 100.0  # each has 3 supporters
    out = qc.spatial(f, suspect_z=10, fail_z=40, min_scale=2.0, min_support=2)
    assert out[0, 2, 2] == F and out[0, 2, 3] == F
    assert (out[0, 6:8, 6:8] == G).all()


def test_spatial_mad_zero_uses_min_scale():
    f = np.zeros((1, 5, 5))
    f[0, 2, 2] = 7.0
    np.testing.assert_array_equal(qc.spatial(f, suspect_z=3, min_scale=2.0)[0, 2, 2], S)  # z = 3.5
    np.testing.assert_array_equal(qc.spatial(f, suspect_z=3, min_scale=3.0)[0, 2, 2], G)  # z = 2.33


def test_spatial_edges_and_missing_neighbours():
    f = np.ones((1, 4, 4))
    f[0, 1, 1:3] = nan
    out = qc.spatial(f, suspect_z=3, min_scale=1.0, min_valid=5)
    # corners have 3 neighbours (< 5); (0, 1) has 5 neighbours of which 2 are NaN; (2, 1) has 6 valid
    assert out[0, 0, 0] == N and out[0, 3, 3] == N and out[0, 1, 1] == M
    assert out[0, 0, 1] == N and out[0, 2, 1] == G
    np.testing.assert_array_equal(out, _ref_spatial(f, 3, 3, None, 5, 1.0, 2))


@pytest.mark.parametrize("seed", range(12))
def test_spatial_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (2, int(rng.integers(1, 14)), int(rng.integers(1, 14)))
    x = rng.exponential(1.0, shape).astype(rng.choice(["float32", "float64"]))
    x[rng.random(shape) < 0.2] = 0
    x[rng.random(shape) < 0.1] = nan
    x[rng.random(shape) < 0.1] *= 30
    window = int(rng.choice([3, 5]))
    kw = dict(
        window=window,
        suspect_z=3.0,
        fail_z=8.0,
        min_valid=int(rng.integers(1, 6)),
        min_scale=0.5,
        min_support=int(rng.integers(0, 3)),
    )
    np.testing.assert_array_equal(qc.spatial(x, **kw), _ref_spatial(x, **kw))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"window": 4}, "window must be an odd integer >= 3, got 4"),
        ({"window": 1}, "window must be an odd integer >= 3"),
        ({"suspect_z": 5, "fail_z": 4}, r"fail_z must be greater than suspect_z \(5\), got 4"),
        ({"min_scale": 0}, "min_scale must be a finite number > 0, got 0"),
        ({"min_valid": 9}, "min_valid must be at most 8"),
    ],
)
def test_spatial_bad_parameters(kw, match):
    params = {"suspect_z": 3.0, "min_scale": 1.0, **kw}
    with pytest.raises(QCError, match=match):
        qc.spatial(np.zeros((3, 3)), **params)


def test_spatial_needs_two_dimensions():
    with pytest.raises(QCError, match="at least 2 dimensions"):
        qc.spatial(arr(1, 2, 3), suspect_z=3, min_scale=1)
