"""The decision rules of the review queue, apart from the database: which cells a decision covers,
whether a reject needs a second operator (four eyes), what the item's state becomes, and how a
fully decided item resolves. ``ReviewQueue`` reads the rows, calls :func:`plan_decision` inside
its transaction and writes what the plan says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecast.review.errors import FourEyesError, InvalidDecision
from forecast.review.records import cell_rows, unpack_cells


@dataclass(frozen=True)
class Plan:
    """What one decision does to one item."""

    target: np.ndarray  # the (n, 3) cells the decision covers
    status: str  # "final" | "awaiting_second"
    outcome: str | None  # "accepted" | "rejected" | None while awaiting a second operator
    resolves: int | None  # id of the pending reject this decision settles
    proposed_by: str | None  # who proposed that reject
    state: str  # the item's state afterwards: "open" | "pending" | "decided"
    n_decided: int  # the item's decided cells afterwards
    resolution: str | None  # "accepted" | "rejected" | "mixed" once decided


class FourEyesRefusal(Exception):
    """A reject confirmed by the operator who proposed it: refused, and the refusal audited."""

    def __init__(self, error: FourEyesError, pending_id: int):
        super().__init__(str(error))
        self.error, self.pending_id = error, pending_id


def plan_decision(
    item: Mapping[str, Any],
    all_cells: np.ndarray,
    prior: Sequence[Mapping[str, Any]],
    action: str,
    by: str,
    chosen: np.ndarray | None,
) -> Plan:
    """Plan ``action`` by ``by`` on ``item`` (its row: id, n_cells, n_decided, exceeds_record) given
    its cells and its ``prior`` decisions still in force (rows with id, status, by, cells, outcome;
    status "final" or "awaiting_second"). ``chosen``: the cells decided on, or None for all
    undecided ones. Raises InvalidDecision for cells outside the item or already decided, and
    FourEyesRefusal when the proposer of a pending reject tries to confirm it."""
    item_id = item["id"]
    pending = next((p for p in prior if p["status"] == "awaiting_second"), None)
    finals = [p for p in prior if p["status"] == "final"]
    resolves = proposed_by = None
    if pending is not None:
        target = unpack_cells(pending["cells"])
        if chosen is not None and not same_set(chosen, target):
            raise InvalidDecision(
                f"review item {item_id} has a reject by {pending['by']} awaiting a second operator on "
                f"{len(target)} cell(s); decide on exactly those cells (omit cells) before any other"
            )
        if action == "reject" and by.casefold() == pending["by"].casefold():
            raise FourEyesRefusal(
                FourEyesError(
                    f"{by} proposed rejecting review item {item_id} and cannot confirm it: rejecting values "
                    "beyond the climatological record needs a second, different operator"
                ),
                pending["id"],
            )
        resolves, proposed_by = pending["id"], pending["by"]
        status, outcome = "final", ("rejected" if action == "reject" else "accepted")
    else:
        target = _choose(item_id, all_cells, [unpack_cells(p["cells"]) for p in finals], chosen)
        if action == "reject" and bool(item["exceeds_record"]):
            status, outcome = "awaiting_second", None
        else:
            status, outcome = "final", ("rejected" if action == "reject" else "accepted")

    n_decided = item["n_decided"] + (len(target) if status == "final" else 0)
    if status == "awaiting_second":
        state = "pending"
    elif n_decided >= item["n_cells"]:
        state = "decided"
    else:
        state = "open"
    resolution = None
    if state == "decided":
        outcomes = {outcome} | {p["outcome"] for p in finals}
        resolution = outcomes.pop() if len(outcomes) == 1 else "mixed"
    return Plan(target, status, outcome, resolves, proposed_by, state, n_decided, resolution)


def _choose(item_id: int, all_cells: np.ndarray, decided: list[np.ndarray], chosen: np.ndarray | None) -> np.ndarray:
    undecided = all_cells
    if decided:
        undecided = all_cells[~np.isin(cell_rows(all_cells), cell_rows(np.concatenate(decided)))]
    if chosen is None:
        return undecided
    outside = ~np.isin(cell_rows(chosen), cell_rows(all_cells))
    if outside.any():
        first = tuple(int(a) for a in chosen[np.argmax(outside)])
        raise InvalidDecision(
            f"{int(outside.sum())} of the given cells are not part of review item {item_id} "
            f"(first: (epoch {first[0]}, iy {first[1]}, ix {first[2]})); cells are (slot epoch s, iy, ix)"
        )
    again = ~np.isin(cell_rows(chosen), cell_rows(undecided))
    if again.any():
        raise InvalidDecision(
            f"{int(again.sum())} of the given cells of review item {item_id} are already decided; "
            "decide only on cells still open"
        )
    return chosen


def cells_arg(cells: Any) -> np.ndarray:
    """``cells`` as given by a caller, checked: a sorted, de-duplicated (n, 3) int64 array of
    (slot epoch s, iy, ix)."""
    try:
        c = np.asarray(cells)
    except (TypeError, ValueError) as e:  # pragma: no cover - ragged input
        raise InvalidDecision(f"cells must be (n, 3) integer triplets (slot epoch s, iy, ix): {e}") from e
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] == 0:
        raise InvalidDecision(
            f"cells must be a non-empty (n, 3) array of (slot epoch s, iy, ix), got shape {c.shape}"
        )
    if not np.issubdtype(c.dtype, np.integer):
        raise InvalidDecision(f"cells must be integers (slot epoch s, iy, ix), got dtype {c.dtype}")
    c = c.astype(np.int64)
    _, first = np.unique(cell_rows(c), return_index=True)
    c = c[np.sort(first)]
    return c[np.lexsort((c[:, 2], c[:, 1], c[:, 0]))]


def same_set(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.isin(cell_rows(a), cell_rows(b)).all())
