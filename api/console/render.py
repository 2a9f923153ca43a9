"""Fields drawn on the server as palette PNGs: a fixed colour scale per variable, SUSPECT / FAIL cells (or
forecast plausibility marks) outlined, written straight from numpy with zlib.

Why not matplotlib: an Agg figure of a 256 x 256 field costs ~60-100 ms (figure setup, colormapping in float
RGBA, PNG through libpng at 4 bytes per pixel). Here a field becomes one byte per pixel (an index into a
256-colour palette: the scale's colours, the flag colours, black), outlines are a few boolean shifts, and
the PNG is one zlib stream of those bytes: ~2 ms at 256 x 256, ~30 ms at 1000 x 1000 (``bench/console.py``).

The flag and annotation colours here are the only definition of them: the templates and the stylesheet
(``/console/static/colours.css``) are generated from the same constants, so a state has one colour on the
map, in the plots and in the tables.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["FLAG_STATES", "ANNOTATION_STATES", "SLOT_STATES", "ColourScale", "scale_for", "field_png", "encode_png",
           "colours_css", "upscale_factor"]

# -- one colour per state, everywhere -----------------------------------------------------------------------
# Each colour has a contrast of at least 4.5:1 against white (text in tables, badges) and is drawn on the maps
# with a black halo, so it stays visible on any colour of the data scale.

#: QARTOD flag code -> (name, label, colour)
FLAG_STATES: dict[int, tuple[str, str, str]] = {
    1: ("good", "GOOD", "#1a7f37"),
    2: ("not_evaluated", "NOT EVALUATED", "#57606a"),
    3: ("suspect", "SUSPECT", "#b04a00"),
    4: ("fail", "FAIL", "#cf222e"),
    9: ("missing", "MISSING", "#6639ba"),
}
#: forecast plausibility annotation code -> (name, label, colour); code 0 (ok) is not marked
ANNOTATION_STATES: dict[int, tuple[str, str, str]] = {
    1: ("extreme", "extreme (beyond the record)", "#b04a00"),
    2: ("implausible", "implausible (beyond the physical range)", "#cf222e"),
    3: ("degraded_inputs", "degraded inputs", "#6639ba"),
}
#: data-quality strip: slot state -> (label, colour)
SLOT_STATES: dict[str, tuple[str, str]] = {
    "on_time": ("arrived on time", "#1a7f37"),
    "late": ("late", "#b04a00"),
    "missing": ("missing", "#6639ba"),
    "revised": ("revised", "#0550ae"),
    "future": ("not due yet", "#d0d7de"),
    "before": ("before the feed's first data", "#eaeef2"),
}
SELECTION_COLOUR = "#0969da"
NAN_COLOUR = "#e6e6e6"


def _rgb(hexcolour: str) -> tuple[int, int, int]:
    h = hexcolour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# -- colour scales ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColourScale:
    """A fixed scale: ``bounds`` (ascending) cut values into ``len(bounds) + 1`` classes, class ``k`` drawn in
    ``colours[k]`` (class 0: below the first bound). Continuous scales are many narrow classes."""

    name: str
    units: str
    bounds: tuple[float, ...]
    colours: tuple[str, ...]
    labels: tuple[str, ...]  # legend entries (one per class, or a few ticks for continuous scales)
    legend: tuple[tuple[str, str], ...]  # (colour, label) pairs shown in the page legend

    def classes(self, values: np.ndarray) -> np.ndarray:
        """Class index (uint8, 1-based: 0 is NaN) of every value."""
        b = np.asarray(self.bounds, dtype=values.dtype if values.dtype.kind == "f" else "float64")
        out = np.searchsorted(b, values, side="right").astype(np.uint8)
        out += 1
        out[np.isnan(values)] = 0
        return out


_PRECIP_BOUNDS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
# white (dry) -> light blue -> deep blue -> violet: no orange or red, which mark SUSPECT and FAIL
_PRECIP_COLOURS = ("#ffffff", "#e1f0fb", "#c2e0f5", "#97c9ec", "#62a8dc", "#3a86c8", "#2166ac", "#174a8b",
                   "#132f6b", "#2b1a5e", "#120a2e")


def _interp(stops: list[str], n: int) -> list[str]:
    rgb = np.array([_rgb(s) for s in stops], dtype=float)
    pos = np.linspace(0, 1, len(stops))
    t = np.linspace(0, 1, n)
    out = np.stack([np.interp(t, pos, rgb[:, k]) for k in range(3)], axis=1).round().astype(int)
    return ["#%02x%02x%02x" % tuple(c) for c in out]


# a perceptually ordered blue -> grey -> sand scale for temperatures and other continuous variables (no red)
_CONTINUOUS_STOPS = ["#08306b", "#2c6aa8", "#7fb0d4", "#d9d9d9", "#d8c48f", "#a6843b", "#5c4515"]
_N_CONTINUOUS = 120


def _fmt(x: float) -> str:
    return f"{x:g}"


@lru_cache(maxsize=64)
def _scale(name: str, units: str, standard_name: str, lo: float, hi: float) -> ColourScale:
    if "precipitation" in standard_name or "precipitation" in name:
        labels = tuple([f"< {_fmt(_PRECIP_BOUNDS[0])}"]
                       + [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(_PRECIP_BOUNDS, _PRECIP_BOUNDS[1:])]
                       + [f">= {_fmt(_PRECIP_BOUNDS[-1])}"])
        return ColourScale(name, units, _PRECIP_BOUNDS, _PRECIP_COLOURS, labels,
                           tuple(zip(_PRECIP_COLOURS, labels)))
    if not hi > lo:
        hi = lo + 1.0
    bounds = tuple(float(x) for x in np.linspace(lo, hi, _N_CONTINUOUS - 1))
    colours = tuple(_interp(_CONTINUOUS_STOPS, _N_CONTINUOUS))
    ticks = np.linspace(lo, hi, 7)
    legend = tuple((_interp(_CONTINUOUS_STOPS, 7)[k], f"{ticks[k]:.3g}") for k in range(7))
    return ColourScale(name, units, bounds, colours, tuple(lab for _, lab in legend), legend)


def scale_for(variable_id: str, variable) -> ColourScale:
    """The fixed colour scale of a catalog variable: radar classes for precipitation, otherwise linear over
    the span of the climatological record (the physical range where no record is given)."""
    rmin, rmax = variable.record_min, variable.record_max
    lo_hi = [min(rmin) if rmin else None, max(rmax) if rmax else None]
    lo = lo_hi[0] if lo_hi[0] is not None else variable.physical_range[0]
    hi = lo_hi[1] if lo_hi[1] is not None else variable.physical_range[1]
    if lo_hi[0] is None and lo_hi[1] is not None:  # only a maximum record: start the scale at the physical low
        lo = max(variable.physical_range[0], hi - 3 * abs(hi))
    return _scale(variable_id, variable.units, variable.standard_name, float(lo), float(hi))


# -- the palette -------------------------------------------------------------------------------------------
# 0: NaN; 1..len(colours): the scale's classes; then the fixed marks at the top of the palette.
_BLACK, _WHITE, _SELECT = 255, 254, 253
_MARK_BASE = 240  # flags: 240 + index in FLAG_ORDER; annotations: 248 + code


def _flag_index(code: int) -> int:
    return _MARK_BASE + list(FLAG_STATES).index(code)


def _annotation_index(code: int) -> int:
    return 248 + code


@lru_cache(maxsize=64)
def _palette(scale: ColourScale) -> bytes:
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[0] = _rgb(NAN_COLOUR)
    for k, c in enumerate(scale.colours):
        pal[1 + k] = _rgb(c)
    for code, (_, _, c) in FLAG_STATES.items():
        pal[_flag_index(code)] = _rgb(c)
    for code, (_, _, c) in ANNOTATION_STATES.items():
        pal[_annotation_index(code)] = _rgb(c)
    pal[_SELECT] = _rgb(SELECTION_COLOUR)
    pal[_WHITE] = (255, 255, 255)
    pal[_BLACK] = (0, 0, 0)
    return pal.tobytes()


# -- PNG -----------------------------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(index: np.ndarray, palette: bytes, *, level: int = 1) -> bytes:
    """An 8-bit palette PNG of ``index`` (2-D uint8). Filter 0 on every row: palette images of fields are
    mostly runs of one index, which zlib's level 1 already packs tightly (higher levels: ~2x the time for
    ~10% fewer bytes)."""
    h, w = index.shape
    raw = np.zeros((h, w + 1), dtype=np.uint8)  # the leading zero of every row: filter type None
    raw[:, 1:] = index
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
        _chunk(b"PLTE", palette),
        _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)),
        _chunk(b"IEND", b""),
    ))


def upscale_factor(ny: int, nx: int, target: int = 384) -> int:
    """Whole pixels per cell so that the image is about ``target`` pixels wide (1 for large grids)."""
    return max(1, min(16, target // max(ny, nx, 1)))


def _upscale(a: np.ndarray, s: int) -> np.ndarray:
    if s == 1:
        return a
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def _shift_any(m: np.ndarray) -> np.ndarray:
    """Cells with at least one 4-neighbour set (dilation by the cross, without the centre)."""
    out = np.zeros_like(m)
    out[1:, :] |= m[:-1, :]
    out[:-1, :] |= m[1:, :]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def _shift_all(m: np.ndarray) -> np.ndarray:
    """Cells all of whose 4-neighbours are set (erosion by the cross; the border counts as unset)."""
    out = m.copy()
    out[1:, :] &= m[:-1, :]
    out[:-1, :] &= m[1:, :]
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    out[0, :] = out[-1, :] = False
    out[:, 0] = out[:, -1] = False
    return out


def _edges(mask: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of ``mask`` (cells) in pixels: the inner edge (2 px when cells are large enough) and the
    outer edge (for the black halo)."""
    up = _upscale(mask, s)
    inner = up & ~_shift_all(up)
    if s >= 6:
        inner |= up & ~_shift_all(_shift_all(up))
    return inner, _shift_any(up) & ~up


def field_png(values: np.ndarray, scale: ColourScale, *, flags: np.ndarray | None = None,
              annotations: np.ndarray | None = None, box: tuple[int, int, int, int] | None = None,
              scale_factor: int | None = None) -> tuple[bytes, int]:
    """A field (2-D, rows north first as stored) as PNG bytes, and the pixels per cell used.

    ``flags``: QARTOD codes of the same shape: SUSPECT and FAIL cells are outlined in their colour (GOOD
    cells that a review accepted stay plain). ``annotations``: forecast plausibility codes: extreme,
    implausible and degraded values outlined. ``box``: ``(iy0, iy1, ix0, ix1)`` inclusive cells framed in the
    selection colour (an item's extent on an overview)."""
    values = np.asarray(values)
    ny, nx = values.shape
    s = scale_factor or upscale_factor(ny, nx)
    img = _upscale(scale.classes(values), s)
    marks: list[tuple[np.ndarray, int]] = []
    if flags is not None:
        f = np.asarray(flags)
        for code in (3, 4):  # FAIL drawn last: it wins where both touch
            marks.append((f == code, _flag_index(code)))
    if annotations is not None:
        a = np.asarray(annotations)
        for code in (3, 1, 2):
            marks.append((a == code, _annotation_index(code)))
    if box is not None:
        iy0, iy1, ix0, ix1 = box
        m = np.zeros((ny, nx), bool)
        m[max(iy0, 0):iy1 + 1, max(ix0, 0):ix1 + 1] = True
        marks.append((m, _SELECT))
    edges = [(*_edges(mask, s), colour) for mask, colour in marks if mask.any()]
    if edges:
        halo = np.zeros(img.shape, bool)
        inner_all = np.zeros(img.shape, bool)
        for inner, outer, _ in edges:
            halo |= outer
            inner_all |= inner
        img[halo & ~inner_all] = _BLACK  # every outline's outer edge in black, under the outlines
        for inner, _, colour in edges:
            img[inner] = colour
    return encode_png(np.ascontiguousarray(img), _palette(scale)), s


def colours_css() -> str:
    """The stylesheet of the state colours (served as ``/console/static/colours.css``)."""
    lines = [":root {"]
    for _, (name, _, c) in FLAG_STATES.items():
        lines.append(f"  --flag-{name}: {c};")
    for _, (name, _, c) in ANNOTATION_STATES.items():
        lines.append(f"  --ann-{name}: {c};")
    for name, (_, c) in SLOT_STATES.items():
        lines.append(f"  --slot-{name}: {c};")
    lines.append(f"  --selection: {SELECTION_COLOUR};")
    lines.append("}")
    for _, (name, _, c) in FLAG_STATES.items():
        lines.append(f".flag-{name} {{ color: #fff; background: {c}; }}")
        lines.append(f".flag-text-{name} {{ color: {c}; }}")
    for _, (name, _, c) in ANNOTATION_STATES.items():
        lines.append(f".ann-{name} {{ color: #fff; background: {c}; }}")
    for name, (_, c) in SLOT_STATES.items():
        fg = "#000" if name in ("future", "before") else "#fff"
        lines.append(f".slot-{name} {{ color: {fg}; background: {c}; }}")
    return "\n".join(lines) + "\n"
