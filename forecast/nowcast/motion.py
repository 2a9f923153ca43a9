"""Motion for the Lagrangian methods: pysteps' Lucas-Kanade on dB-transformed frames (cached: extrapolation
and S-PROG of one init share it) and semi-Lagrangian advection of the last field along it."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
from cachetools import LRUCache

from forecast.nowcast.base import DB_ZEROVALUE, Prepared


class Motion:
    """A dense motion field in pixels per input step (x, y components), or why there is none."""

    def __init__(self, velocity: np.ndarray | None, n_vectors: int, reason: str | None = None):
        self.velocity = velocity
        self.n_vectors = n_vectors
        self.reason = reason


def to_db(frames: np.ndarray, threshold: float) -> np.ndarray:
    from pysteps.utils import transformation

    # NaN stays NaN (NaN < threshold is False and log10(NaN) is NaN): pysteps treats it as no-data
    return transformation.dB_transform(frames, threshold=threshold, zerovalue=DB_ZEROVALUE)[0]


#: Recent motion fields by the content of their inputs (see `estimate_motion`); a few entries suffice:
#: extrapolation and S-PROG of one init run one after the other on the same thread.
_MOTION_CACHE: LRUCache[bytes, Motion] = LRUCache(maxsize=8)
_motion_lock = threading.Lock()


def _motion_key(frames_mm: np.ndarray, threshold: float, lk_options: dict[str, Any]) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((frames_mm.shape, str(frames_mm.dtype), float(threshold), sorted(lk_options.items(), key=str)))
             .encode())
    h.update(np.ascontiguousarray(frames_mm).view(np.uint8).data)
    return h.digest()


def estimate_motion(frames_mm: np.ndarray, *, threshold: float, lk_options: dict[str, Any]) -> Motion:
    """pysteps' Lucas-Kanade on dB-transformed frames (see `Extrapolation` for the handling of gaps).

    Runs LK sparse (``dense=False``) so that "no vector found" is told apart from "no motion", then
    declusters and interpolates as ``dense_lucaskanade`` itself does.

    Extrapolation and S-PROG of the same inputs need the same motion: the last few results are kept,
    keyed by the frames' bytes, threshold and options (a hit returns a copy of exactly what the
    estimate gave, so the forecasts are the same as without the cache).
    """
    key = _motion_key(frames_mm, threshold, lk_options)
    with _motion_lock:
        hit = _MOTION_CACHE.get(key)
    if hit is None:
        hit = _estimate_motion_uncached(frames_mm, threshold=threshold, lk_options=lk_options)
        with _motion_lock:
            _MOTION_CACHE[key] = hit
    return Motion(None if hit.velocity is None else hit.velocity.copy(), hit.n_vectors, hit.reason)


def _estimate_motion_uncached(frames_mm: np.ndarray, *, threshold: float, lk_options: dict[str, Any]) -> Motion:
    from pysteps import motion, utils
    from pysteps.utils.cleansing import decluster

    opts = dict(lk_options)
    decl_scale = opts.pop("decl_scale", 20)
    interp_method = opts.pop("interp_method", "idwinterp2d")
    interp_kwargs = opts.pop("interp_kwargs", None) or {}
    # tracking features into an entirely missing slot gives bogus vectors: use the most recent run of
    # consecutive observed slots
    observed = np.isfinite(frames_mm).any(axis=(1, 2))
    run = len(observed)
    while run > 0 and observed[run - 1]:
        run -= 1
    frames_mm = frames_mm[run:]
    if len(frames_mm) < 2:
        return Motion(None, 0, "motion needs two consecutive observed slots ending at the init time; "
                                "a recent slot is entirely missing")
    # A hole inside rain, filled by pysteps with the minimum, is a stationary dry patch that LK's 50 px
    # windows lock onto. Holes are filled from the slot before instead (off by one step of motion, a far
    # smaller error); cells never observed stay NaN, which pysteps masks.
    frames_mm = frames_mm.copy()
    for k in range(1, len(frames_mm)):
        hole = np.isnan(frames_mm[k])
        frames_mm[k][hole] = frames_mm[k - 1][hole]
    db = to_db(frames_mm, threshold)
    xy, uv = motion.get_method("LK")(db, dense=False, **opts)
    if xy.shape[0] == 0:
        return Motion(None, 0, f"Lucas-Kanade found no motion vectors in the last {len(frames_mm)} inputs "
                                "(too little precipitation structure)")
    n = int(xy.shape[0])
    if decl_scale > 1:
        xy, uv = decluster(xy, uv, decl_scale, 1)
    ny, nx = frames_mm.shape[1:]
    velocity = utils.get_method(interp_method)(xy, uv, np.arange(nx), np.arange(ny), **interp_kwargs)
    if not np.all(np.isfinite(velocity)):
        return Motion(None, n, "the interpolated motion field is not finite")
    return Motion(np.asarray(velocity, dtype=np.float64), n)


def motion_attrs(prep: Prepared, mot: Motion, dt: np.timedelta64) -> dict[str, Any]:
    attrs: dict[str, Any] = {"motion_vectors": mot.n_vectors}
    if mot.velocity is None:
        return attrs
    mx, my = (float(c) for c in mot.velocity.mean(axis=(1, 2)))
    attrs["motion_x_px_per_step"] = mx  # along the x index, per input step
    attrs["motion_y_px_per_step"] = my  # along the y index (southward for north-up grids)
    src = prep.inputs
    if all(d in src.coords and src.sizes[d] > 1 and src[d].attrs.get("units", "m") == "m" for d in ("x", "y")):
        secs = dt / np.timedelta64(1, "s")
        dx = float(src["x"].values[1] - src["x"].values[0])
        dy = float(src["y"].values[1] - src["y"].values[0])
        attrs["motion_u_m_s"] = float(mx * dx / secs)  # towards +x (east for EPSG:3035)
        attrs["motion_v_m_s"] = float(my * dy / secs)  # towards +y (north for EPSG:3035)
    return attrs


def missing_pysteps_dependency() -> type[BaseException]:
    from pysteps.exceptions import MissingOptionalDependency

    return MissingOptionalDependency


def advect(prep: Prepared, velocity: np.ndarray, timesteps: int | list[float], *, outval: float,
            interp_order: int) -> np.ndarray:
    """The last slot moved along ``velocity`` by pysteps' semi-Lagrangian scheme, in mm h-1.

    Holes of the last slot are first filled from earlier slots brought forward along the same motion.
    """
    from pysteps import extrapolation

    extrapolate = extrapolation.get_method("semilagrangian")
    v = prep.values
    base = v[-1].copy()
    for k in range(1, v.shape[0]):
        hole = np.isnan(base)
        if not hole.any():
            break
        older = v[-1 - k]
        if not np.isfinite(older).any():
            continue
        moved = extrapolate(older, velocity, k, outval=np.nan, allow_nonfinite_values=True,
                            interp_order=interp_order)[-1]
        base[hole] = moved[hole]
    if not np.isfinite(base).any():
        raise ValueError("no finite cell left to advect")
    return extrapolate(base, velocity, timesteps, outval=outval, allow_nonfinite_values=True,
                       interp_order=interp_order)
