"""The promotion gate: a model becomes production only on a hindcast report that shows it better.

`check_promotion` reads a hindcast ``report.json`` (see `forecast.hindcast`) and passes only if the report
is of this very model (version and checkpoint sha256), covers at least ``settings.gate_min_inits`` init
times outside the model's training period, the model fell back on at most
``settings.gate_max_fallback_share`` of them, and it beats every reference per the dataset's catalog
``gate:`` (`forecast.catalog.models.GateConfig`):

- deterministic: at every key lead (``gate.key_leads_minutes``, default ``settings.gate_key_leads_minutes``)
  the paired block-bootstrap interval of ``RMSE(model) - RMSE(reference)`` lies below zero (and, with
  ``csi`` among ``gate.scores``, that of ``CSI(model) - CSI(reference)`` above zero at ``csi_thresholds``)
  for each reference: by default every method the report compared the model with (every baseline the
  hindcast ran, climatology included), persistence and S-PROG at least, and always the current
  production model (when there is one; the report must have run that very version as ``production``);
- probabilistic: the Brier skill ``1 - BS(model) / BS(reference)`` exceeds ``min_skill`` per
  ``gate.probabilistic``; by default, when the report verified the model's probabilities, > 0 against
  every probabilistic method of the report at every threshold and key lead.

Each refusal names the reference, the score, the lead and both values. The first model of a dataset and
variable is gated against the baselines alone. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecast.catalog import get_catalog
from forecast.errors import BadInputError
from forecast.evaluation.report import _get

__all__ = ["BASELINE_REFERENCES", "GateDecision", "check_promotion", "find_report", "load_report", "report_record"]

#: Baselines every candidate must beat at least (method names in the report).
BASELINE_REFERENCES = ("persistence", "sprog")
_NAMES = {"persistence": "persistence", "sprog": "S-PROG", "production": "the production model",
          "steps": "STEPS", "climatology": "climatology"}


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


def check_promotion(settings, registry, version: str, report: dict, *, config=None) -> GateDecision:
    """Judge whether ``version`` may become production on the strength of ``report`` (a parsed report.json).

    Args:
        config: a `GateConfig` (default: the ``gate:`` of the model's dataset catalog).

    Raises:
        UnknownModelError: no model has this version.
        BadInputError: ``report`` is not a hindcast report, or the model's dataset has no catalog.
    """
    rec = registry.get(version)
    if config is None:
        config = get_catalog(settings.catalogs, rec.dataset).gate
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict) \
            or not isinstance(report.get("provenance"), dict):
        raise BadInputError("the report is not a hindcast report.json (it lacks summary and provenance)")
    prov, summary = report["provenance"], report["summary"]
    reasons: list[str] = []
    min_inits = int(settings.gate_min_inits)
    key_leads = [int(m) for m in (config.key_leads_minutes or settings.gate_key_leads_minutes)]
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
    boot = _get(summary, "bootstrap", "model") or {}
    if config.references is not None:
        refs = [r for r in config.references if r != "production"]
    else:  # every method the report compared the model with, persistence and S-PROG at least
        refs = list(BASELINE_REFERENCES) + sorted(r for r in boot if r not in BASELINE_REFERENCES and r != "production")
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
    for ref in [r for r in refs if _get(boot, r, "rmse") is None]:
        reasons.append(f"the report has no comparison of {version} with {_NAMES.get(ref, ref)}"
                       + (f" {prod_version}" if ref == "production" else "") + "; rerun the hindcast with it")
        refs.remove(ref)
    thr_keys = [_thr_key(t) for t in (summary.get("thresholds") or [])]
    csi_keys = ([_thr_key(t) for t in config.csi_thresholds] if config.csi_thresholds is not None
                else thr_keys[:1])
    checks = [("RMSE", "rmse", None)] if "rmse" in config.scores else []
    if "csi" in config.scores:
        for key in csi_keys:
            if key not in thr_keys:
                reasons.append(f"the report has no CSI at threshold {key} "
                               f"(its thresholds: {', '.join(thr_keys) or 'none'})")
            else:
                checks.append((f"CSI >= {key}", "csi", key))
    comparisons = []
    for minutes in key_leads:
        if minutes * 60 not in leads_s:
            have = ", ".join(f"{s // 60}" for s in leads_s) or "none"
            reasons.append(f"the report has no +{minutes} min lead (its leads: {have} min)")
            continue
        i = leads_s.index(minutes * 60)
        for ref in refs:
            name = f"{_NAMES.get(ref, ref)}" + (f" {prod_version}" if ref == "production" else "")
            for label, score, key in checks:
                b = _get(boot, ref, score) if key is None else _get(boot, ref, score, key)
                diff, lo, hi = _get(b, "diff", i), _get(b, "lower", i), _get(b, "upper", i)
                mine, theirs = _get(b, "method", i), _get(b, "reference", i)
                better = bool(_get(b, "better", i))
                comparisons.append({"reference": ref, "score": label, "lead_minutes": minutes,
                                    f"{score}_model": mine, f"{score}_reference": theirs, "diff": diff,
                                    "lower": lo, "upper": hi, "better": better})
                if better:
                    continue
                values = f" ({label} {_num(mine)} against {_num(theirs)})"
                worse = (lo is not None and lo > 0) if score == "rmse" else (hi is not None and hi < 0)
                if lo is None or hi is None:
                    reasons.append(f"{version} cannot be judged against {name} at +{minutes} min: no bootstrap "
                                   f"interval of the {label} difference (fewer than 2 paired inits or no verifiable "
                                   "cells)")
                elif worse:
                    reasons.append(f"{version} is worse than {name} at +{minutes} min: {label} difference CI "
                                   f"[{_num(lo)}, {_num(hi)}] lies {'above' if score == 'rmse' else 'below'} 0"
                                   + values)
                else:
                    reasons.append(f"{version} is not better than {name} at +{minutes} min: {label} difference CI "
                                   f"[{_num(lo)}, {_num(hi)}] includes 0" + values)
    prob_comparisons = _probabilistic(version, summary, config, key_leads, reasons)
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
        "probabilistic_comparisons": prob_comparisons,
    }
    return GateDecision(passed=not reasons, reasons=tuple(reasons), details=details)


def _thr_key(value: float) -> str:
    import numpy as np

    return np.format_float_positional(float(value), trim="-")


def _probabilistic(version: str, summary: dict, config, key_leads: list[int], reasons: list[str]) -> list[dict]:
    """Check the Brier skill requirements (appending refusals to ``reasons``); the comparisons made."""
    prob = summary.get("probabilistic") or {}
    methods = prob.get("methods") or {}
    requirements = config.probabilistic
    if requirements is None:  # default: only when the report verified the model's probabilities
        if "model" not in methods:
            return []
        from forecast.catalog.models import ProbabilisticRequirement

        requirements = [ProbabilisticRequirement(reference=m) for m in sorted(methods)
                        if m not in ("model", "production")]
    if not requirements:
        return []
    if "model" not in methods:
        reasons.append(f"the report has no probabilistic scores of {version}, which the gate of this dataset "
                       "requires (Brier skill); rerun the hindcast with a model that forecasts probabilities")
        return []
    leads_s = prob.get("lead_time_s") or []
    thr_keys = [_thr_key(t) for t in prob.get("thresholds") or []]
    mine_all = methods["model"]["thresholds"]
    out = []
    for req in requirements:
        ref = req.reference
        name = _NAMES.get(ref, ref)
        if ref != "climatology" and ref not in methods:
            reasons.append(f"the report has no probabilistic scores of {name} to compare {version} with; rerun the "
                           "hindcast with it")
            continue
        keys = [_thr_key(t) for t in req.thresholds] if req.thresholds is not None else thr_keys
        for key in keys:
            if key not in thr_keys:
                reasons.append(f"the report has no Brier score at threshold {key} (its thresholds: "
                               f"{', '.join(thr_keys) or 'none'})")
                continue
            for minutes in (req.leads_minutes or key_leads):
                if minutes * 60 not in leads_s:
                    have = ", ".join(f"{s // 60}" for s in leads_s) or "none"
                    reasons.append(f"the report has no +{minutes} min lead in its probabilistic scores (its leads: "
                                   f"{have} min)")
                    continue
                i = leads_s.index(minutes * 60)
                mine = _get(mine_all, key, "brier", i)
                if ref == "climatology":
                    base = _get(mine_all, key, "base_rate", i)
                    theirs = None if base is None else base * (1 - base)
                else:
                    theirs = _get(methods, ref, "thresholds", key, "brier", i)
                skill = None if mine is None or not theirs else 1.0 - mine / theirs
                ok = skill is not None and skill > req.min_skill
                out.append({"reference": ref, "score": f"Brier >= {key}", "lead_minutes": minutes,
                            "brier_model": mine, "brier_reference": theirs, "brier_skill": skill,
                            "min_skill": req.min_skill, "better": ok})
                if not ok:
                    reasons.append(f"{version} is not better than {name} in Brier score >= {key} at +{minutes} min: "
                                   f"{_num(mine)} against {_num(theirs)} (Brier skill {_num(skill)}, needs more "
                                   f"than {req.min_skill:g})")
    return out


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
