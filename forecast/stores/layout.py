"""The observation store's layout: one group per dataset on a regular, pre-sized time axis, and the
per-slot bookkeeping (revision, availability, hashes, superseded revisions) read back as `DatasetState`.

Layout of group ``<dataset>`` (every array a zarr v3 array with ``dimension_names``):

- ``time`` (time) int64 seconds since 1970-01-01 UTC, pre-sized in blocks of the catalog's ``block``;
  ``x``, ``y``, ``lat``, ``lon``, ``elevation`` (when the catalog has one) and the ``crs`` grid mapping.
- ``<v>`` (time, y, x) float32, one chunk per slot (and spatial tile), NaN where nothing arrived.
- ``<v>_revision`` (time) int16 (-1 = nothing yet, 0 = first arrival), ``<v>_available_at`` (time) int64
  seconds (when that revision became available), ``<v>_sha256`` / ``<v>_digest`` (time, 32) uint8: the
  source file's sha256 and a digest of the decoded values (a re-encoded identical file is no revision).
- ``<v>_archive`` (entry, y, x) with ``<v>_archive_{slot,revision,available_at,sha256,digest}``: every
  superseded revision, kept in the current snapshot so that as-of reads never depend on old snapshots
  (which an operator may expire to bound storage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog, parse_catalog
from forecast.errors import StoreError
from forecast.stores.repo import codec_for
from forecast.timeutil import iso

NO_TIME = np.iinfo("int64").min  # fill for "never available"
HASH_BYTES = 32
BRANCH = "main"
META_CHUNK_BLOCKS = 16  # per-slot metadata arrays: one chunk spans this many time blocks


def per_slot_arrays(vid: str) -> tuple[str, ...]:
    """The arrays of a variable that run along the time axis (values and per-slot bookkeeping)."""
    return (vid, f"{vid}_revision", f"{vid}_available_at", f"{vid}_sha256", f"{vid}_digest")


def qc_arrays(vid: str) -> tuple[str, ...]:
    """The QC layer beside a variable: flags, test bitmask, and the value revision they judge."""
    return (f"{vid}_qc", f"{vid}_qc_tests", f"{vid}_qc_revision")


def hex_digest(row: np.ndarray) -> str | None:
    b = bytes(np.asarray(row, dtype="uint8"))
    return None if not any(b) else b.hex()


@dataclass
class VarState:
    """Per-slot bookkeeping of one variable over a window of slots [base, base + len) (small: no
    values). Only the window holding data is read: the axis may be pre-sized to ~10^6 slots."""

    base: int
    revision: np.ndarray  # int16, -1 = empty
    available_at: np.ndarray  # int64 seconds
    sha256: np.ndarray  # (n, 32) uint8
    digest: np.ndarray  # (n, 32) uint8
    archive_slot: np.ndarray
    archive_revision: np.ndarray
    archive_available_at: np.ndarray
    archive_sha256: np.ndarray
    archive_digest: np.ndarray

    def known_hashes(self, slot: int) -> tuple[set[bytes], set[bytes]]:
        """sha256 and digests of every revision this slot ever held (current and archived)."""
        shas, digs = set(), set()
        i = slot - self.base
        if 0 <= i < len(self.revision) and self.revision[i] >= 0:
            shas.add(bytes(self.sha256[i]))
            digs.add(bytes(self.digest[i]))
        for i in np.flatnonzero(self.archive_slot == slot):
            shas.add(bytes(self.archive_sha256[i]))
            digs.add(bytes(self.archive_digest[i]))
        return shas, digs


@dataclass
class DatasetState:
    catalog: Catalog
    capacity: int
    base: int  # the window of slots read: [base, hi)
    hi: int
    first_slot: int  # -1 when empty
    n_slots: int  # high-water mark: last filled slot + 1 (0 when empty)
    vars: dict[str, VarState] = field(default_factory=dict)


class ObservationLayout:
    """Creating, checking and growing a dataset's group, and reading its bookkeeping (a mixin of
    `forecast.stores.observations.ObservationStore`)."""

    @staticmethod
    def has_dataset(session, dataset: str) -> bool:
        import zarr
        from zarr.errors import GroupNotFoundError

        try:
            root = zarr.open_group(session.store, mode="r")
        except (GroupNotFoundError, FileNotFoundError):
            return False  # a new repository has no root group yet
        return dataset in root.group_keys()

    @staticmethod
    def stored_catalog(session, dataset: str) -> Catalog:
        import zarr

        g = zarr.open_group(session.store, path=dataset, mode="r")
        return parse_catalog(json.loads(g.attrs["catalog"]), f"store group {dataset!r}")

    def check_compatible(self, session, catalog: Catalog) -> None:
        """The store's layout is fixed by the catalog it was created with; a catalog whose grid or time
        axis moved would silently misplace data, so it is refused."""
        stored = self.stored_catalog(session, catalog.id)
        problems = []
        if stored.grid.model_dump(exclude={"tolerance"}) != catalog.grid.model_dump(exclude={"tolerance"}):
            problems.append("grid")
        if (stored.time.start, stored.time.step, stored.time.block) != (
            catalog.time.start,
            catalog.time.step,
            catalog.time.block,
        ):
            problems.append("time axis (start, step or block)")
        if set(stored.variables) - set(catalog.variables):
            problems.append(f"variables removed: {sorted(set(stored.variables) - set(catalog.variables))}")
        if problems:
            raise StoreError(
                f"catalog {catalog.id} no longer matches the store it created ({', '.join(problems)} changed); "
                "a moved grid or time axis needs a new dataset id"
            )

    def create_dataset(self, session, catalog: Catalog) -> None:
        """Create the group with its coordinates and empty (zero-length) time axis arrays."""
        import zarr

        g = zarr.open_group(session.store, mode="a").require_group(catalog.id)
        ny, nx = catalog.grid.shape
        cy = catalog.storage.chunk_y or ny
        cx = catalog.storage.chunk_x or nx
        codec = codec_for(catalog)
        g.attrs.update(
            {
                "dataset": catalog.id,
                "title": catalog.title,
                "source": catalog.source,
                "licence": catalog.licence,
                "Conventions": "CF-1.8",
                "catalog": json.dumps(catalog.model_dump(mode="json", exclude={"path"})),
                "catalog_hash": catalog.hash,
                "time_start": iso(catalog.time.start),
                "time_step": catalog.time.step,
                "codec": {"name": "blosc", "cname": catalog.storage.cname, "clevel": catalog.storage.clevel,
                          "shuffle": catalog.storage.shuffle, "blocksize": catalog.storage.blocksize},
                "first_slot": -1,
                "n_slots": 0,
                "created_with": f"forecast {__version__}",
            }
        )
        ax = catalog.grid
        for name, axis, std in (("x", ax.x, "projection_x_coordinate"), ("y", ax.y, "projection_y_coordinate")):
            a = g.create_array(name, shape=(axis.size,), dtype="float64", dimension_names=(name,), overwrite=True)
            a[:] = axis.values()
            a.attrs.update({"units": axis.units, "standard_name": std, "axis": name.upper()})
        lat, lon = ax.latlon()
        for name, vals, std, units in (("lat", lat, "latitude", "degrees_north"), ("lon", lon, "longitude", "degrees_east")):
            a = g.create_array(name, shape=(ny, nx), dtype="float64", dimension_names=("y", "x"), overwrite=True)
            a[:] = vals
            a.attrs.update({"units": units, "standard_name": std})
        elev = ax.elevation_field()
        if elev is not None:
            a = g.create_array("elevation", shape=(ny, nx), dtype="float32", dimension_names=("y", "x"), overwrite=True)
            a[:] = elev
            a.attrs.update({"units": "m", "standard_name": "surface_altitude"})
        from pyproj import CRS

        crs = g.create_array("crs", shape=(), dtype="int32", overwrite=True, fill_value=0)
        crs.attrs.update(CRS.from_user_input(ax.crs).to_cf())
        tchunk = catalog.time.block * META_CHUNK_BLOCKS
        t = g.create_array("time", shape=(0,), chunks=(tchunk,), dtype="int64", dimension_names=("time",), fill_value=0)
        t.attrs.update({"units": "seconds since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian",
                        "standard_name": "time", "axis": "T"})
        for vid, var in catalog.variables.items():
            self._create_variable(g, catalog, vid, var, codec, (cy, cx))

    def _create_variable(self, g, catalog: Catalog, vid: str, var, codec, chunks) -> None:
        ny, nx = catalog.grid.shape
        tchunk = catalog.time.block * META_CHUNK_BLOCKS
        a = g.create_array(vid, shape=(0, ny, nx), chunks=(1, *chunks), dtype="float32", fill_value=np.nan,
                           compressors=[codec], dimension_names=("time", "y", "x"))
        a.attrs.update({
            "units": var.units, "standard_name": var.standard_name, "long_name": var.long_name or vid,
            "grid_mapping": "crs", "coordinates": "lat lon",
            "physical_range": list(var.physical_range),
            "revision_variables": f"{vid}_revision {vid}_available_at {vid}_sha256",
        })
        meta = {
            "revision": ("int16", -1, {"long_name": f"revision of {vid} in the slot (0 = first arrival, -1 = none)"}),
            "available_at": ("int64", NO_TIME, {"long_name": f"when that revision of {vid} became available",
                                                "units": "seconds since 1970-01-01 00:00:00"}),
        }
        for suffix, (dtype, fill, attrs) in meta.items():
            m = g.create_array(f"{vid}_{suffix}", shape=(0,), chunks=(tchunk,), dtype=dtype, fill_value=fill,
                               dimension_names=("time",))
            m.attrs.update(attrs)
        for suffix, what in (("sha256", "sha256 of the source file"), ("digest", "blake2b-256 of the decoded values")):
            m = g.create_array(f"{vid}_{suffix}", shape=(0, HASH_BYTES), chunks=(tchunk, HASH_BYTES), dtype="uint8",
                               fill_value=0, dimension_names=("time", "hash_byte"))
            m.attrs["long_name"] = what
        g.create_array(f"{vid}_archive", shape=(0, ny, nx), chunks=(1, *chunks), dtype="float32", fill_value=np.nan,
                       compressors=[codec], dimension_names=("archive_entry", "y", "x")).attrs.update(
            {"units": var.units, "long_name": f"superseded revisions of {vid}"})
        for suffix, dtype, fill in (("slot", "int64", -1), ("revision", "int16", -1), ("available_at", "int64", NO_TIME)):
            g.create_array(f"{vid}_archive_{suffix}", shape=(0,), chunks=(1024,), dtype=dtype, fill_value=fill,
                           dimension_names=("archive_entry",))
        for suffix in ("sha256", "digest"):
            g.create_array(f"{vid}_archive_{suffix}", shape=(0, HASH_BYTES), chunks=(1024, HASH_BYTES), dtype="uint8",
                           fill_value=0, dimension_names=("archive_entry", "hash_byte"))

    def ensure_capacity(self, session, catalog: Catalog, max_slot: int) -> bool:
        """Grow the time axis (whole blocks) so that ``max_slot`` fits; True when it grew."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="a")
        t = g["time"]
        cap = t.shape[0]
        if max_slot < cap:
            return False
        block = catalog.time.block
        new_cap = (max_slot // block + 1) * block
        t.resize((new_cap,))
        t[cap:new_cap] = catalog.time.label(np.arange(cap, new_cap))
        present = set(g.array_keys())
        for vid in catalog.variables:
            for name in (*per_slot_arrays(vid), *qc_arrays(vid)):
                if name in present:
                    a = g[name]
                    a.resize((new_cap, *a.shape[1:]))
        return True

    def add_missing_variables(self, session, catalog: Catalog) -> list[str]:
        """A catalog may gain variables over time; their arrays are created on the existing axis."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="a")
        added = [v for v in catalog.variables if v not in g.array_keys()]
        if added:
            ny, nx = catalog.grid.shape
            chunks = (catalog.storage.chunk_y or ny, catalog.storage.chunk_x or nx)
            cap = g["time"].shape[0]
            for vid in added:
                self._create_variable(g, catalog, vid, catalog.variables[vid], codec_for(catalog), chunks)
                for name in per_slot_arrays(vid):
                    a = g[name]
                    a.resize((cap, *a.shape[1:]))
        return added

    def dataset_state(self, session, catalog: Catalog, *, lo: int | None = None, hi: int | None = None) -> DatasetState:
        """Bookkeeping over slots [lo, hi) (default: the slots that hold data), clipped to the axis."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="r")
        cap = g["time"].shape[0]
        first = int(g.attrs.get("first_slot", -1))
        n_slots = int(g.attrs.get("n_slots", 0))
        lo = max(0, min(lo if lo is not None else (first if first >= 0 else 0), cap))
        hi = max(lo, min(hi if hi is not None else n_slots, cap))
        st = DatasetState(catalog=catalog, capacity=cap, base=lo, hi=hi, first_slot=first, n_slots=n_slots)
        names = set(g.array_keys())
        for vid in catalog.variables:
            if vid not in names:
                continue
            st.vars[vid] = VarState(
                base=lo,
                revision=g[f"{vid}_revision"][lo:hi],
                available_at=g[f"{vid}_available_at"][lo:hi],
                sha256=g[f"{vid}_sha256"][lo:hi],
                digest=g[f"{vid}_digest"][lo:hi],
                archive_slot=g[f"{vid}_archive_slot"][:],
                archive_revision=g[f"{vid}_archive_revision"][:],
                archive_available_at=g[f"{vid}_archive_available_at"][:],
                archive_sha256=g[f"{vid}_archive_sha256"][:],
                archive_digest=g[f"{vid}_archive_digest"][:],
            )
        return st
