"""The model registry (versions, checkpoints, stage history) and the promotion gate."""

from forecast.registry.gate import GateDecision, check_promotion, find_report, load_report, report_record
from forecast.registry.promotion import Promotion, PromotionRefused, promote
from forecast.registry.store import (
    STAGES,
    CheckpointMismatchError,
    CheckpointMissingError,
    InvalidStageChangeError,
    ModelRecord,
    ModelRegistry,
    StageChange,
    UnknownModelError,
)

__all__ = ["STAGES", "CheckpointMismatchError", "CheckpointMissingError", "GateDecision", "InvalidStageChangeError",
           "ModelRecord", "ModelRegistry", "StageChange", "UnknownModelError", "check_promotion", "find_report",
           "load_report", "report_record", "Promotion", "PromotionRefused", "promote"]
