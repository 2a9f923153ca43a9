"""Promotion to production: the one way a model becomes the production model (CLI, console and demo
all call `promote`).

`promote` judges the model's hindcast report with the gate (`forecast.registry.gate.check_promotion`)
and moves it to production only when the gate passes, or when a named person overrides a refusal (or
the lack of a report) with a reason. Either way the report behind the decision (path, sha256, the key
numbers and the gate's verdict) is recorded in the append-only stage history. `ModelRegistry.set_stage`
itself refuses a production stage without that evidence, so no caller can skip the gate by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forecast.errors import BadInputError
from forecast.registry.gate import GateDecision, check_promotion, find_report, load_report, report_record
from forecast.registry.store import ModelRecord, ModelRegistry

__all__ = ["Promotion", "PromotionRefused", "promote"]


class PromotionRefused(BadInputError):
    """The gate refused the promotion (and no override was given); ``decision`` says why."""

    def __init__(self, version: str, decision: GateDecision, report: Path):
        self.version, self.decision, self.report = version, decision, report
        super().__init__(f"promotion of {version} refused: {decision.message()}")


@dataclass(frozen=True)
class Promotion:
    """What a promotion did: the promoted record, the gate's decision (None when promoted by override
    without a report), the report it judged, and the versions it retired."""

    record: ModelRecord
    decision: GateDecision | None
    report: Path | None
    retired: tuple[str, ...]

    def to_json(self) -> dict:
        doc = self.record.to_json()
        doc["gate"] = self.decision.to_json() if self.decision is not None else None
        doc["report"] = str(self.report) if self.report is not None else None
        doc["retired"] = list(self.retired)
        return doc


def promote(settings, registry: ModelRegistry, version: str, *, by: str, reason: str, override: bool = False,
            report: str | Path | None = None) -> Promotion:
    """Make ``version`` the production model of its dataset and variable through the promotion gate.

    Args:
        report: the hindcast ``report.json`` (or its folder) behind the promotion; default: the newest
            report of ``version`` under ``HOME/hindcasts``.
        override: promote although the gate refuses (or no report exists); recorded as an override.

    Raises:
        UnknownModelError: no model has this version.
        InvalidStageChangeError: an empty reason or ``by``, or a model that cannot become production.
        BadInputError: no report and no override, or an unreadable report.
        PromotionRefused: the gate refused and ``override`` is false.
    """
    current = registry.get(version)  # an unknown version names the known ones
    if not isinstance(reason, str) or not reason.strip():
        # an override above all needs a reason; say so before judging the report
        raise BadInputError(f"moving model {version} to production needs a reason saying why (got an empty one)")
    decision = None
    record = None
    path = None
    if current.stage != "production":  # promoting the production model again: set_stage says why not
        path = Path(report) if report is not None else find_report(settings, version)
        if path is None and not override:
            raise BadInputError(
                f"{version} has no hindcast report under {Path(settings.home) / 'hindcasts'}; run a hindcast of "
                f"{version} over a period after its training (`forecast hindcast {current.dataset} --model {version} "
                "--start ... --end ...`) first, name a report, or override with a reason")
        if path is not None:
            if path.is_dir():
                path = path / "report.json"
            doc, sha = load_report(path)
            decision = check_promotion(settings, registry, version, doc)
            if not decision.passed and not override:
                raise PromotionRefused(version, decision, path)
            record = report_record(path, sha, doc, decision)
    before = {r.version for r in registry.list(dataset=current.dataset, variable=current.variable, stage="production")}
    rec = registry.set_stage(version, "production", by=by, reason=reason, override=override, report=record)
    return Promotion(record=rec, decision=decision, report=path, retired=tuple(sorted(before - {version})))
