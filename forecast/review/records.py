"""What the review queue returns (items, decisions, audit entries, write-back orders) and how rows and
cell lists become them."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from qc.events import cells_from_bytes, cells_to_bytes
from qc.flags import test_names


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def pack_cells(cells: np.ndarray) -> bytes:
    return zlib.compress(cells_to_bytes(cells), 6)


def unpack_cells(blob: bytes) -> np.ndarray:
    return cells_from_bytes(zlib.decompress(blob))


def cell_rows(cells: np.ndarray) -> np.ndarray:
    """Cells as one opaque 24-byte value per row, for set operations."""
    c = np.ascontiguousarray(np.asarray(cells, dtype=np.int64).reshape(-1, 3))
    return c.view(np.dtype((np.void, 24))).ravel()


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------------------------
# what the queue returns


@dataclass(frozen=True)
class EnqueueResult:
    """How many events were new (``added``) and how many were already queued (``existing``);
    ``item_ids`` holds the item id of each event, in the order given."""

    added: int
    existing: int
    item_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Item:
    """One review item as listed (see ``Event`` for the meaning of the summary fields)."""

    id: int
    key: str
    dataset: str
    variable: str
    state: str
    version: int
    hazard: float
    exceeds_record: bool
    t_first: datetime
    t_last: datetime
    n_slots: int
    n_cells: int
    n_decided: int
    bbox: tuple[int, int, int, int]
    latlon_box: tuple[float, float, float, float] | None
    xy_box: tuple[float, float, float, float] | None
    max_value: float | None
    min_value: float | None
    peak_value: float | None
    peak: tuple[datetime, int, int]
    side: str | None
    record: float | None
    excess: float | None
    relative_excess: float | None
    tests: int
    test_names: tuple[str, ...]
    resolution: str | None
    pending_by: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class Decision:
    """One recorded decision.

    ``status``: ``final`` (counts; goes to the flags), ``awaiting_second`` (a reject waiting for
    a second operator), ``confirmed`` (such a reject, now confirmed: the confirming row is the
    final one), ``overruled`` (such a reject, resolved by an accept). ``outcome`` is
    ``accepted`` / ``rejected`` for final rows, else ``None``. ``resolves`` is the id of the
    pending reject a confirmation or accept resolved. ``item_version`` / ``item_state``: what
    the decision left the item at.
    """

    id: int
    item_id: int
    action: str
    status: str
    outcome: str | None
    by: str
    comment: str
    at: datetime
    n_cells: int
    resolves: int | None
    item_version: int
    item_state: str
    written_snapshot: str | None
    written_at: datetime | None
    cells: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    item_id: int | None
    decision_id: int | None
    details: dict[str, Any]


@dataclass(frozen=True)
class ItemDetail(Item):
    """An item with its cells, its decisions (oldest first) and its audit trail (oldest first)."""

    cells: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    decisions: tuple[Decision, ...] = ()
    audit: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True)
class Writeback:
    """A final decision to write into the store's flags.

    ``cells``: ``(n, 3)`` int64 ``(slot epoch seconds UTC, iy, ix)``. ``outcome``:
    ``accepted`` (flag GOOD + REVIEWED_ACCEPTED) or ``rejected`` (FAIL + REVIEWED_REJECTED).
    ``by`` / ``at`` identify the deciding operator (for a confirmed reject, the confirming one;
    the proposer is in the item's decisions).
    """

    decision_id: int
    item_id: int
    dataset: str
    variable: str
    outcome: Literal["accepted", "rejected"]
    by: str
    at: datetime
    cells: np.ndarray = field(repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


def item_from_row(r: Any) -> Item:
    return Item(**item_fields(r))


def item_fields(r: Any) -> dict[str, Any]:
    boxes = {}
    for name, cols in (
        ("latlon_box", ("lat_min", "lat_max", "lon_min", "lon_max")),
        ("xy_box", ("y_min", "y_max", "x_min", "x_max")),
    ):
        vals = [r[c] for c in cols]
        boxes[name] = None if any(v is None for v in vals) else tuple(float(v) for v in vals)
    tests = int(r["tests"])
    return dict(
        id=int(r["id"]),
        key=r["key"],
        dataset=r["dataset"],
        variable=r["variable"],
        state=r["state"],
        version=int(r["version"]),
        hazard=float(r["hazard"]),
        exceeds_record=bool(r["exceeds_record"]),
        t_first=r["t_first"],
        t_last=r["t_last"],
        n_slots=int(r["n_slots"]),
        n_cells=int(r["n_cells"]),
        n_decided=int(r["n_decided"]),
        bbox=(int(r["iy0"]), int(r["iy1"]), int(r["ix0"]), int(r["ix1"])),
        **boxes,
        max_value=r["max_value"],
        min_value=r["min_value"],
        peak_value=r["peak_value"],
        peak=(r["peak_time"], int(r["peak_iy"]), int(r["peak_ix"])),
        side=r["side"],
        record=r["record"],
        excess=r["excess"],
        relative_excess=r["relative_excess"],
        tests=tests,
        test_names=test_names(tests),
        resolution=r["resolution"],
        pending_by=r["pending_by"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        updated_by=r["updated_by"],
    )


def decision_from_row(r: Any) -> Decision:
    return Decision(
        id=int(r["id"]),
        item_id=int(r["item_id"]),
        action=r["action"],
        status=r["status"],
        outcome=r["outcome"],
        by=r["by"],
        comment=r["comment"],
        at=r["at"],
        n_cells=int(r["n_cells"]),
        resolves=r["resolves"],
        item_version=int(r["item_version"]),
        item_state=r["item_state"],
        written_snapshot=r["written_snapshot"],
        written_at=r["written_at"],
        cells=unpack_cells(r["cells"]),
    )


def audit_from_row(r: Any) -> AuditEntry:
    return AuditEntry(
        id=int(r["id"]),
        at=r["at"],
        actor=r["actor"],
        action=r["action"],
        item_id=r["item_id"],
        decision_id=r["decision_id"],
        details=dict(r["details"] or {}),
    )
