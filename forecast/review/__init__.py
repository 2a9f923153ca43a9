"""The operator review queue: SUSPECT cells grouped into events, queued in SQL, decided by
operators under the four-eyes rule, audited, and handed back to the store as flag writes."""

from forecast.review.errors import (
    FourEyesError,
    InvalidDecision,
    InvalidRequest,
    ItemNotFound,
    ReviewConflict,
    ReviewError,
)
from forecast.review.queue import (
    ACTIONS,
    STATES,
    AuditEntry,
    Decision,
    EnqueueResult,
    Item,
    ItemDetail,
    ReviewQueue,
    Writeback,
)
from qc.events import Event, event_key, find_events, hazard_score

__all__ = [
    "find_events",
    "event_key",
    "hazard_score",
    "Event",
    "ReviewQueue",
    "EnqueueResult",
    "Item",
    "ItemDetail",
    "Decision",
    "AuditEntry",
    "Writeback",
    "STATES",
    "ACTIONS",
    "ReviewError",
    "ItemNotFound",
    "ReviewConflict",
    "FourEyesError",
    "InvalidRequest",
    "InvalidDecision",
]
