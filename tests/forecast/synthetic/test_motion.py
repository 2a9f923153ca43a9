"""The steering flow: ``curving`` motion (the model bench's second regime) moves rain faster than ``steady``
and along arcs, measured on the rendered fields, and the default stays the steady flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from samplefiles import JULY, sample, shipped
from test_fields import xcorr_shift

from forecast.errors import BadInputError
from forecast.synthetic.context import CURVING_PERIOD_H, Context
from forecast.synthetic.fields import precipitation

STEP = 300.0


def _displacements(motion: str, seed: int, hours: tuple[float, ...]) -> list[np.ndarray]:
    """Per start hour, the median (rows, columns) shift between three consecutive 5-minute pairs of rendered
    rain (log1p), found by cross-correlation."""
    cat = shipped("radar_precip")
    ctx = Context(cat, seed, motion)
    spec = next(s for s in ctx.specs if s.kind == "precipitation")
    t0 = JULY.timestamp()
    out = []
    for h in hours:
        fields = [np.log1p(precipitation(ctx, spec, t0 + h * 3600 + i * STEP)) for i in range(4)]
        shifts = [xcorr_shift(a, b, max_shift=16) for a, b in zip(fields, fields[1:])]
        out.append(np.median(np.array(shifts, float), axis=0))
    return out


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees between two (rows, columns) vectors."""
    return math.degrees(abs(math.remainder(math.atan2(b[0], b[1]) - math.atan2(a[0], a[1]), 2 * math.pi)))


@pytest.mark.parametrize("seed", [7, 42])
def test_curving_motion_is_faster_and_turns(seed):
    hours = (0.0, 1.0, 2.0)
    steady = _displacements("steady", seed, hours)
    curving = _displacements("curving", seed, hours)
    speed_s = np.mean([np.hypot(*d) for d in steady])
    speed_c = np.mean([np.hypot(*d) for d in curving])
    assert speed_c > 1.3 * speed_s, (speed_s, speed_c)  # 27 m/s against about 15
    # the direction of motion turns about 45 degrees an hour; the steady flow's drifts slowly
    per_hour = 360.0 / CURVING_PERIOD_H
    turn_c = [_angle(curving[0], d) for d in curving[1:]]
    turn_s = [_angle(steady[0], d) for d in steady[1:]]
    assert abs(turn_c[0] - per_hour) < 15 and abs(turn_c[1] - 2 * per_hour) < 25, turn_c
    assert max(turn_s) < 20, turn_s


def test_curving_wind_matches_its_shift():
    """The analytic displacement is the integral of the wind (features and textures move with it)."""
    ctx = Context(shipped("radar_precip"), 3, "curving")
    t = JULY.timestamp()
    (y0, x0), (y1, x1) = ctx.shift_px(t), ctx.shift_px(t + 60.0)
    u, v = ctx.wind(t + 30.0)
    assert x1 - x0 == pytest.approx(u * 60.0 / ctx.step_x_m, rel=1e-3)
    assert y1 - y0 == pytest.approx(v * 60.0 / ctx.step_y_m, rel=1e-3)
    assert math.hypot(u, v) > 18.0


def test_unknown_motion_is_refused(tmp_path):
    with pytest.raises(BadInputError, match="unknown motion 'spiral'.*steady, curving"):
        sample(shipped("radar_precip"), tmp_path, start=JULY, hours=0.5, motion="spiral")


def test_motion_is_recorded_in_the_manifest(tmp_path):
    manifest, _ = sample(shipped("radar_precip"), tmp_path, start=JULY, hours=0.25, motion="curving", seed=7)
    assert manifest["motion"] == "curving"
