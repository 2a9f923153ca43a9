"""The promotion gate: a model becomes production only on a hindcast report that shows it better.

`check_promotion` reads a hindcast ``report.json`` (see `forecast.hindcast`) and passes only if the report
is of this very model (version and checkpoint sha256), covers at least ``settings.gate_min_inits`` init
times outside the model's training period, the model fell back on at most
``settings.gate_max_fallback_share`` of them, and at every key lead (``settings.gate_key_leads_minutes``)
the paired block-bootstrap interval of ``RMSE(model) - RMSE(reference)`` lies below zero for each
reference: persistence, S-PROG and the current production model (when there is one; the report must
have run that very version as method ``production``). The first model of a dataset and variable is
gated against the baselines alone. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecast.errors import BadInputError
from forecast.evaluation.report import _get

__all__ = ["BASELINE_REFERENCES", "GateDecision", "check_promotion", "find_report", "load_report", "report_record"]

#: Baselines every candidate must beat (method names in the report).
BASELINE_REFERENCES = ("persistence", "sprog")
_NAMES = {"persistence": "persistence", "sprog": "S-PROG", "production": "the production model"}


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: ``passed``, one sentence per failed condition, and the numbers behind it."""

    passed: bool
    reasons: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def message(self, limit: int = 3) -> str:
        """The failed conditions as one sentence (the first ``limit``, then how many more)."""
        if self.passed:
            return "the hindcast report passes the promotion gate"
        shown = "; ".join(self.reasons[:limit])
        more = len(self.reasons) - limit
        return shown + (f"; and {more} more (see --json)" if more > 0 else "")

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), **self.details}


def _num(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def check_promotion(settings, registry, version: str, report: dict) -> GateDecision:
    """Judge whether ``version`` may become production on the strength of ``report`` (a parsed report.json).

    Raises:
        UnknownModelError: no model has this version.
        BadInputError: ``report`` is not a hindcast report.
    """
    rec = registry.get(version)
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict) \
            or not isinstance(report.get("provenance"), dict):
        raise BadInputError("the report is not a hindcast report.json (it lacks summary and provenance)")
    prov, summary = report["provenance"], report["summary"]
    reasons: list[str] = []
    min_inits = int(settings.gate_min_inits)
    key_leads = [int(m) for m in settings.gate_key_leads_minutes]
    max_fallback = float(settings.gate_max_fallback_share)

    rep_model = prov.get("model") or {}
    if rep_model.get("version") != version:
        reasons.append(f"the report is a hindcast of model {rep_model.get('version')}, not of {version}")
    elif rep_model.get("checkpoint_sha256") != rec.checkpoint_sha256:
        reasons.append(f"the report was made with another checkpoint of {version} (sha256 "
                       f"{str(rep_model.get('checkpoint_sha256'))[:12]}..., registered {rec.checkpoint_sha256[:12]}...)")
    if (prov.get("dataset"), prov.get("variable")) != (rec.dataset, rec.variable):
        reasons.append(f"the report verifies {prov.get('dataset')}.{prov.get('variable')}, but {version} forecasts "
                       f"{rec.dataset}.{rec.variable}")

    n_inits = _get(summary, "methods", "model", "n_inits") or 0
    if n_inits < min_inits:
        reasons.append(f"the hindcast of {version} covers {n_inits} init times, fewer than the {min_inits} required")
    if _get(prov, "training_overlap", "model"):
        period = _get(prov, "model", "training_period") or ["?", "?"]
        reasons.append(f"the hindcast period overlaps the training period of {version} ({period[0]} to {period[1]}): "
                       "an in-sample verification proves nothing")
    fb = _get(prov, "fallbacks", "model") or {}
    share = fb.get("share", (fb.get("count", 0) / n_inits) if n_inits else 0.0)
    if share > max_fallback:
        reasons.append(f"{version} fell back to a baseline at {share:.0%} of the init times (at most "
                       f"{max_fallback:.0%} allowed): the report does not show the model itself")

    production = registry.production(rec.dataset, rec.variable)
    refs = list(BASELINE_REFERENCES)
    prod_version = None
    if production is not None and production.version != version:
        prod_version = production.version
        rep_prod = prov.get("production") or {}
        if rep_prod.get("version") != prod_version:
            have = rep_prod.get("version")
            reasons.append(f"the report compares {version} with " + (f"model {have}" if have else "no production model")
                           + f", but {prod_version} is in production now; rerun the hindcast")
        elif rep_prod.get("checkpoint_sha256") != production.checkpoint_sha256:
            reasons.append(f"the report ran another checkpoint of the production model {prod_version}; rerun the hindcast")
        else:
            refs.insert(0, "production")

    leads_s = summary.get("lead_time_s") or []
    boot = _get(summary, "bootstrap", "model") or {}
    for ref in [r for r in refs if _get(boot, r, "rmse") is None]:
        reasons.append(f"the report has no comparison of {version} with {_NAMES.get(ref, ref)}"
                       + (f" {prod_version}" if ref == "production" else "") + "; rerun the hindcast with it")
        refs.remove(ref)
    comparisons = []
    for minutes in key_leads:
        if minutes * 60 not in leads_s:
            have = ", ".join(f"{s // 60}" for s in leads_s) or "none"
            reasons.append(f"the report has no +{minutes} min lead (its leads: {have} min)")
            continue
        i = leads_s.index(minutes * 60)
        for ref in refs:
            name = f"{_NAMES.get(ref, ref)}" + (f" {prod_version}" if ref == "production" else "")
            b = _get(boot, ref, "rmse")
            diff, lo, hi = _get(b, "diff", i), _get(b, "lower", i), _get(b, "upper", i)
            better = bool(_get(b, "better", i))
            comparisons.append({"reference": ref, "lead_minutes": minutes, "rmse_model": _get(b, "method", i),
                                "rmse_reference": _get(b, "reference", i), "diff": diff, "lower": lo, "upper": hi,
                                "better": better})
            if better:
                continue
            if lo is None or hi is None:
                reasons.append(f"{version} cannot be judged against {name} at +{minutes} min: no bootstrap interval "
                               "(fewer than 2 paired inits or no verifiable cells)")
            elif lo > 0:
                reasons.append(f"{version} is worse than {name} at +{minutes} min: RMSE difference CI "
                               f"[{_num(lo)}, {_num(hi)}] lies above 0")
            else:
                reasons.append(f"{version} is not better than {name} at +{minutes} min: RMSE difference CI "
                               f"[{_num(lo)}, {_num(hi)}] includes 0")
    details = {
        "version": version,
        "checkpoint_sha256": rec.checkpoint_sha256,
        "production": prod_version,
        "references": refs,
        "n_inits": n_inits,
        "min_inits": min_inits,
        "key_leads_minutes": key_leads,
        "max_fallback_share": max_fallback,
        "model_fallback_share": share,
        "period": {k: _get(prov, "period", k) for k in ("start", "end", "every_s")},
        "snapshot": _get(prov, "observations", "snapshot"),
        "comparisons": comparisons,
    }
    return GateDecision(passed=not reasons, reasons=tuple(reasons), details=details)


def load_report(path: str | Path) -> tuple[dict, str]:
    """A report.json and the sha256 of its bytes. Raises BadInputError when missing or not JSON."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        data = p.read_bytes()
        return json.loads(data), hashlib.sha256(data).hexdigest()
    except OSError as e:
        raise BadInputError(f"cannot read the hindcast report {p}: {e.strerror or e}") from None
    except ValueError:
        raise BadInputError(f"{p} is not a hindcast report (not JSON)") from None


def find_report(settings, version: str) -> Path | None:
    """The newest report.json under HOME/hindcasts that is a hindcast of ``version`` (None if none)."""
    root = Path(settings.home) / "hindcasts"
    found: list[tuple[float, str, Path]] = []
    for p in root.glob("*/report.json"):
        try:
            doc = json.loads(p.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if _get(doc, "provenance", "model", "version") == version:
            found.append((p.stat().st_mtime, str(p), p))
    return max(found)[2] if found else None


def report_record(path: Path, sha256: str, report: dict, decision: GateDecision) -> dict[str, Any]:
    """What the registry keeps of the report behind a promotion: where, its hash and the key numbers."""
    prov = report.get("provenance") or {}
    return {
        "path": str(Path(path).resolve()),
        "sha256": sha256,
        "command": report.get("command"),
        "snapshot": _get(prov, "observations", "snapshot"),
        "period": prov.get("period"),
        "verdict": report.get("verdict"),
        "gate": decision.to_json(),
    }
