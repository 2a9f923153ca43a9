"""Running numpy block functions over dask arrays with asymmetric halos: the engine under every check
and under the fused pipeline (``qc.pipeline``).

``halo_map`` gives each task its own block of ``x`` plus views of exactly the neighbouring cells
it needs (``halo[axis] = (before, after)``, never padding the array's own edges, so an edge block
sees what a whole-array numpy call sees there) as a ``HaloBlock``. Unlike ``dask.array.overlap``
it does not concatenate every overlapped block into a new array up front: the function asks for
the regions it needs (whole, or slab by slab so intermediates stay in cache), and only those are
copied. Side inputs (per-time-slot values, per-month gridded references, partner variables) are
cut the same way along the axes they share with ``x``.

Results on chunked input equal results on numpy input as long as the halo covers every neighbour
the function looks at.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

#: side input kinds -> which axis of x each of their axes follows (None: an axis of their own)
SIDE_AXES = {
    "full": lambda nd: tuple(range(nd)),
    "time": lambda nd: (0,),
    "month_spatial": lambda nd: (None, *range(1, nd)),
}


def is_dask(a: Any) -> bool:
    import dask.array as da

    return isinstance(a, da.Array)


class HaloBlock:
    """One block of an array with views of its neighbours' edges, assembled on request.

    Coordinates are those of the overlapped block: along an x-axis ``a`` with geometry
    ``seg[a] = (before, core, after)``, the core occupies ``[before, before + core)``.
    """

    def __init__(self, pieces: dict[tuple[int, ...], np.ndarray], axes: tuple[int | None, ...], seg):
        self.pieces = pieces
        self.axes = axes  # per own axis: the x-axis it follows, or None
        self.seg = seg  # per x-axis: (before, core, after)
        any_piece = next(iter(pieces.values()))
        self.dtype = any_piece.dtype
        self.shape = tuple(
            sum(seg[a]) if a is not None else any_piece.shape[i] for i, a in enumerate(axes)
        )

    @classmethod
    def whole(cls, arr: np.ndarray, axes: tuple[int | None, ...], seg) -> HaloBlock:
        key = tuple(0 for a in axes if a is not None)
        return cls({key: arr}, axes, seg)

    def get(self, region: dict[int, tuple[int, int]] | None = None) -> np.ndarray:
        """The cells ``region[x_axis] = (lo, hi)`` (default: everything) as one array; a view when
        they lie in one piece."""
        region = region or {}
        want = []
        for i, a in enumerate(self.axes):
            lo, hi = region.get(a, (0, self.shape[i])) if a is not None else (0, self.shape[i])
            want.append((lo, hi))
        parts = []
        for key, piece in self.pieces.items():
            src, dst = [], []
            k = iter(key)
            ok = True
            for i, a in enumerate(self.axes):
                lo, hi = want[i]
                if a is None:
                    src.append(slice(lo, hi))
                    dst.append(slice(0, hi - lo))
                    continue
                off = next(k)
                b, c, f = self.seg[a]
                start = {-1: 0, 0: b, 1: b + c}[off]
                stop = start + piece.shape[i]
                s0, s1 = max(lo, start), min(hi, stop)
                if s0 >= s1:
                    ok = False
                    break
                src.append(slice(s0 - start, s1 - start))
                dst.append(slice(s0 - lo, s1 - lo))
            if ok:
                parts.append((tuple(src), tuple(dst), piece))
        shape = tuple(hi - lo for lo, hi in want)
        if len(parts) == 1 and all(d.stop - d.start == n for d, n in zip(parts[0][1], shape)):
            return parts[0][2][parts[0][0]]
        out = np.empty(shape, dtype=self.dtype)
        for src, dst, piece in parts:
            out[dst] = piece[src]
        return out


def _run_block(inputs, seg, *, func, params):
    blocks = [HaloBlock({tuple(off): arr for off, arr in pieces}, tuple(axes), seg) for pieces, axes in inputs]
    core = tuple(slice(b, b + c) for b, c, _ in seg)
    return func(blocks, core=core, **params)


def _min_chunks(need: int, chunks: tuple[int, ...]) -> tuple[int, ...]:
    from dask.array.overlap import ensure_minimum_chunksize

    if len(chunks) == 1 or need <= min(chunks):
        return chunks
    if sum(chunks) <= need:
        return (sum(chunks),)
    return ensure_minimum_chunksize(need, chunks)


def halo_map(
    func: Callable[..., np.ndarray],
    x,
    *,
    halo: dict[int, tuple[int, int]] | None = None,
    side: Sequence[tuple[Any, str]] = (),
    dtype=np.uint8,
    **params,
):
    """Lazily apply ``func(blocks, core=slices, **params)`` to each block of dask array ``x``.

    ``blocks[0]`` is x's ``HaloBlock``, then one per side input; ``func`` returns the core's
    result (shape of the core).
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    nd = x.ndim
    halo = {ax % nd: (int(b), int(f)) for ax, (b, f) in (halo or {}).items() if b or f}
    chunks = list(x.chunks)
    for ax, (b, f) in halo.items():
        chunks[ax] = _min_chunks(max(b, f), chunks[ax])
    x = x.rechunk(tuple(chunks))
    halo = {ax: bf for ax, bf in halo.items() if len(x.chunks[ax]) > 1}

    inputs = [(x, tuple(range(nd)))]
    for arr, kind in side:
        axes = SIDE_AXES[kind](nd)
        a = da.asarray(arr)
        a = a.rechunk(tuple(x.chunks[ax] if ax is not None else -1 for ax in axes))
        inputs.append((a, axes))

    token = tokenize(func, x, halo, [(a.name, ax) for a, ax in inputs[1:]], params, dtype)
    name = f"qc-halo-{token}"
    piece_name = f"qc-halo-piece-{token}"
    dsk: dict[Any, Any] = {}
    run = partial(_run_block, func=func, params=params)
    nblocks = x.numblocks
    for idx in itertools.product(*[range(n) for n in nblocks]):
        seg = []
        for ax in range(nd):
            b, f = halo.get(ax, (0, 0))
            k = idx[ax]
            seg.append((b if k > 0 else 0, x.chunks[ax][k], f if k < nblocks[ax] - 1 else 0))
        task_inputs = []
        for j, (a, axes) in enumerate(inputs):
            mapped = [ax for ax in axes if ax is not None]
            choices = []
            for ax in mapped:
                bl, _, fl = seg[ax]
                choices.append([o for o in (-1, 0, 1) if (o == 0 or (o == -1 and bl) or (o == 1 and fl))])
            pieces = []
            for off in itertools.product(*choices):
                src_idx, sl = [], []
                it = iter(zip(mapped, off))
                for ax in axes:
                    if ax is None:
                        src_idx.append(0)
                        sl.append(slice(None))
                        continue
                    _, o = next(it)
                    src_idx.append(idx[ax] + o)
                    b, f = halo.get(ax, (0, 0))
                    sl.append(slice(-b, None) if o == -1 else slice(0, f) if o == 1 else slice(None))
                if all(o == 0 for o in off):
                    ref = (a.name, *src_idx)
                else:
                    ref = (piece_name, j, *idx, *off)
                    dsk[ref] = (operator.getitem, (a.name, *src_idx), tuple(sl))
                pieces.append((tuple(off), ref))
            task_inputs.append(([(off, ref) for off, ref in pieces], axes))
        dsk[(name, *idx)] = (
            run,
            [[[list(p) for p in pcs], list(axes)] for pcs, axes in task_inputs],
            [list(s) for s in seg],
        )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[a for a, _ in inputs])
    return da.Array(graph, name, chunks=x.chunks, dtype=dtype, meta=np.empty((0,) * nd, dtype=dtype))


def run_core(func, x, *, halo=None, side=(), dtype=np.uint8, **params):
    """``func(blocks, core=..., **params)`` over a numpy array (directly) or a dask array."""
    if is_dask(x):
        return halo_map(func, x, halo=halo, side=side, dtype=dtype, **params)
    nd = np.ndim(x)
    seg = [(0, n, 0) for n in np.shape(x)]
    blocks = [HaloBlock.whole(np.asarray(x), tuple(range(nd)), seg)]
    for arr, kind in side:
        arr = arr.compute() if is_dask(arr) else np.asarray(arr)
        blocks.append(HaloBlock.whole(arr, SIDE_AXES[kind](nd), seg))
    return func(blocks, core=tuple(slice(None) for _ in range(nd)), **params)


def whole_blocks(core_fn):
    """Adapt ``core_fn(x, *side, core=..., **params)`` (whole overlapped block in, same-shaped
    or core-shaped flags out) to the ``HaloBlock`` interface."""

    def run(blocks, *, core, **params):
        arrays = [b.get() for b in blocks]
        res = core_fn(*arrays, core=core, **params)
        if res.shape == arrays[0].shape:
            return res[core]
        return res

    run.__name__ = getattr(core_fn, "__name__", "run")
    return run
