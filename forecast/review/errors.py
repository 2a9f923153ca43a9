"""The review queue's exception tree; leaves also inherit the builtin they resemble."""

from __future__ import annotations

from datetime import datetime

from forecast.timeutil import iso

__all__ = [
    "ReviewError",
    "ItemNotFound",
    "ReviewConflict",
    "FourEyesError",
    "InvalidRequest",
    "InvalidDecision",
]


class ReviewError(Exception):
    """Base of every error the review queue raises on purpose."""


class ItemNotFound(ReviewError, KeyError):
    """The review item does not exist (also a ``KeyError``)."""

    def __init__(self, item_id: int):
        self.item_id = item_id
        super().__init__(f"review item {item_id} does not exist; list the queue to see the items it holds")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ReviewConflict(ReviewError):
    """Someone else changed or decided the item first; ``by`` / ``at`` say who and when.

    Attributes: ``item_id``, ``by``, ``at`` (UTC), ``state`` and ``version`` of the item now.
    """

    def __init__(
        self, item_id: int, *, by: str, at: datetime, state: str, version: int, seen: int | None = None
    ):
        self.item_id, self.by, self.at, self.state, self.version = item_id, by, at, state, version
        when = iso(at)
        if state == "decided":
            what = f"review item {item_id} was already decided by {by} at {when}"
        else:
            saw = (
                f"you saw version {seen}, it is now version {version}"
                if seen is not None
                else f"now version {version}"
            )
            what = f"review item {item_id} was changed by {by} at {when} ({saw}, state {state})"
        super().__init__(
            f"{what}; your decision was not recorded: reload the item and decide again if still needed"
        )


class FourEyesError(ReviewError, PermissionError):
    """A reject of a record-breaking value needs a second, different operator (also a ``PermissionError``)."""


class InvalidRequest(ReviewError, ValueError):
    """An argument to the queue is invalid (also a ``ValueError``)."""


class InvalidDecision(InvalidRequest):
    """A decision is malformed: unknown action, empty comment or operator, cells outside the item."""
