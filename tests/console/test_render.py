"""The field renderer: valid palette PNGs, a fixed colour scale per variable, SUSPECT / FAIL cells and forecast
marks outlined in their one colour, state colours readable on white."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from consoleworld import catalog_doc, write_catalog

from api.console import render
from forecast.catalog import load_catalog


@pytest.fixture(scope="module")
def precip(tmp_path_factory):
    cat = load_catalog(write_catalog(tmp_path_factory.mktemp("cat"), catalog_doc(16)))
    return render.scale_for("precipitation_rate", cat.variables["precipitation_rate"])


def rgb(png: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(png))
    assert im.mode == "P"
    return np.asarray(im.convert("RGB"))


def colour(hexcolour: str) -> tuple[int, int, int]:
    return render._rgb(hexcolour)


def test_png_is_valid_and_sized(precip):
    v = np.linspace(0, 60, 32 * 20, dtype="float32").reshape(32, 20)
    png, s = render.field_png(v, precip)
    assert s == render.upscale_factor(32, 20) == 12
    assert Image.open(io.BytesIO(png)).size == (20 * s, 32 * s)
    png1, s1 = render.field_png(np.zeros((1000, 1000), "float32"), precip)
    assert s1 == 1 and Image.open(io.BytesIO(png1)).size == (1000, 1000)


def test_the_scale_is_fixed_per_variable_and_nan_is_grey(precip):
    a = np.full((4, 4), 7.0, "float32")
    b = np.full((4, 4), 7.0, "float32")
    b[0, 0] = 190.0  # another field with a larger maximum: 7 mm/h keeps its colour
    b[3, 3] = np.nan
    ra, rb = rgb(render.field_png(a, precip, scale_factor=1)[0]), rgb(render.field_png(b, precip, scale_factor=1)[0])
    assert tuple(ra[1, 1]) == tuple(rb[1, 1])
    assert tuple(rb[3, 3]) == colour(render.NAN_COLOUR)
    assert tuple(rb[0, 0]) != tuple(rb[1, 1])


def test_suspect_and_fail_cells_are_outlined_in_their_colour(precip):
    v = np.full((16, 16), 3.0, "float32")
    flags = np.ones((16, 16), "uint8")
    flags[4, 4] = 3
    flags[10, 10] = 4
    img = rgb(render.field_png(v, precip, flags=flags, scale_factor=8)[0])
    suspect, fail = colour(render.FLAG_STATES[3][2]), colour(render.FLAG_STATES[4][2])
    cell = img[4 * 8:5 * 8, 4 * 8:5 * 8]
    assert tuple(cell[0, 0]) == suspect and tuple(cell[0, 4]) == suspect  # the cell's edge
    assert tuple(cell[4, 4]) != suspect  # the value stays visible inside
    assert tuple(img[4 * 8 - 1, 4 * 8 + 3]) == (0, 0, 0)  # a black halo outside
    assert tuple(img[10 * 8, 10 * 8 + 3]) == fail
    assert not (img[0:30, 60:] == suspect).all(axis=-1).any()  # nothing elsewhere


def test_forecast_marks_are_outlined(precip):
    v = np.full((8, 8), 1.0, "float32")
    ann = np.zeros((8, 8), "uint8")
    ann[2, 2], ann[5, 5] = 1, 2
    img = rgb(render.field_png(v, precip, annotations=ann, scale_factor=6)[0])
    assert tuple(img[12, 14]) == colour(render.ANNOTATION_STATES[1][2])
    assert tuple(img[30, 32]) == colour(render.ANNOTATION_STATES[2][2])


def _luminance(hexcolour: str) -> float:
    c = [x / 255 for x in colour(hexcolour)]
    c = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


@pytest.mark.parametrize("name,hexcolour", [(v[0], v[2]) for v in render.FLAG_STATES.values()]
                         + [(v[0], v[2]) for v in render.ANNOTATION_STATES.values()]
                         + [(k, v[1]) for k, v in render.SLOT_STATES.items() if k not in ("future", "before")])
def test_state_colours_have_contrast_on_white(name, hexcolour):
    ratio = 1.05 / (_luminance(hexcolour) + 0.05)
    assert ratio >= 4.5, (name, hexcolour, ratio)


def test_one_colour_per_flag_state_in_the_stylesheet():
    css = render.colours_css()
    for name, _, c in render.FLAG_STATES.values():
        assert f"--flag-{name}: {c};" in css and f".flag-{name} {{ color: #fff; background: {c}; }}" in css
    colours = [c for _, _, c in render.FLAG_STATES.values()]
    assert len(set(colours)) == len(colours)
