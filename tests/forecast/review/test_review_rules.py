"""The review queue's decision rules on their own (no database): cell choice, four eyes, states."""

import numpy as np
import pytest

from forecast.review.errors import InvalidDecision
from forecast.review.records import pack_cells
from forecast.review.rules import FourEyesRefusal, cells_arg, plan_decision

CELLS = np.array([[600, 1, 1], [600, 1, 2], [900, 2, 2]], dtype=np.int64)


def item(exceeds=False, n_decided=0):
    return {"id": 7, "n_cells": 3, "n_decided": n_decided, "exceeds_record": exceeds}


def test_accepting_part_then_the_rest_decides_the_item():
    p = plan_decision(item(), CELLS, [], "accept", "ann", CELLS[:1])
    assert (p.status, p.outcome, p.state, p.n_decided, p.resolution) == ("final", "accepted", "open", 1, None)
    prior = [{"id": 1, "status": "final", "by": "ann", "cells": pack_cells(CELLS[:1]), "outcome": "accepted"}]
    p = plan_decision(item(n_decided=1), CELLS, prior, "reject", "bob", None)
    assert p.target.tolist() == CELLS[1:].tolist()  # only the cells still open
    assert (p.state, p.n_decided, p.resolution) == ("decided", 3, "mixed")


def test_reject_beyond_the_record_needs_a_second_operator():
    p = plan_decision(item(exceeds=True), CELLS, [], "reject", "ann", None)
    assert (p.status, p.outcome, p.state, p.n_decided) == ("awaiting_second", None, "pending", 0)
    prior = [{"id": 4, "status": "awaiting_second", "by": "ann", "cells": pack_cells(CELLS), "outcome": None}]
    with pytest.raises(FourEyesRefusal, match="ANN proposed rejecting review item 7 and cannot confirm"):
        plan_decision(item(exceeds=True), CELLS, prior, "reject", "ANN", None)
    p = plan_decision(item(exceeds=True), CELLS, prior, "reject", "bob", None)
    assert (p.resolves, p.proposed_by, p.state, p.resolution) == (4, "ann", "decided", "rejected")
    with pytest.raises(InvalidDecision, match="decide on exactly those cells"):
        plan_decision(item(exceeds=True), CELLS, prior, "accept", "bob", CELLS[:1])


def test_cells_outside_the_item_or_decided_twice_are_refused():
    with pytest.raises(InvalidDecision, match=r"1 of the given cells are not part of review item 7 \(first: \(epoch 600, iy 9"):
        plan_decision(item(), CELLS, [], "accept", "ann", cells_arg([[600, 9, 9], [600, 1, 1]]))
    prior = [{"id": 1, "status": "final", "by": "ann", "cells": pack_cells(CELLS[:1]), "outcome": "accepted"}]
    with pytest.raises(InvalidDecision, match="already decided"):
        plan_decision(item(n_decided=1), CELLS, prior, "accept", "bob", CELLS[:1])


def test_cells_argument_is_checked_sorted_and_deduplicated():
    assert cells_arg([[900, 2, 2], [600, 1, 1], [900, 2, 2]]).tolist() == [[600, 1, 1], [900, 2, 2]]
    with pytest.raises(InvalidDecision, match=r"got shape \(2,\)"):
        cells_arg([1, 2])
    with pytest.raises(InvalidDecision, match="must be integers"):
        cells_arg([[1.5, 2, 3]])
