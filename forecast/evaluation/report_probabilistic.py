"""The probabilistic part of a hindcast report: the top-level ``report.json`` keys (method -> threshold ->
lead minutes), the score tables and the figures (reliability diagram, Brier skill by lead, ROC curves),
all from `ProbabilisticVerifier.summary` (``summary["probabilistic"]``). matplotlib stays inside the
figure function, as in `forecast.evaluation.report`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["probabilistic_figures", "probabilistic_keys", "probabilistic_tables"]

#: top-level report.json keys filled from the probabilistic summary
KEYS = ("brier", "bss", "bss_reference", "reliability", "roc", "ece", "auc", "crps")


def _lead_keys(prob: dict) -> list[str]:
    return [str(int(s) // 60) for s in prob.get("lead_time_s", [])]


def probabilistic_keys(prob: dict | None) -> dict[str, Any]:
    """``{"brier", "bss", "ece", "auc", "reliability", "roc"}`` each ``{method: {threshold: {lead minutes:
    ...}}}`` (thresholds keyed as in ``summary.methods.*.categorical``, e.g. "0.1", "10"; leads as whole
    minutes, e.g. "5"), ``bss_reference`` ``{"reference": name, "scores": {method: {threshold: {lead:
    ...}}}}`` (BSS against that method; None without one) and ``crps`` ``{method: {lead: ...}}`` for the
    methods with an ensemble. Empty when there is no probabilistic summary."""
    if not prob or not prob.get("methods"):
        return {}
    leads = _lead_keys(prob)
    cut = prob.get("roc_cutoffs", [])
    out: dict[str, Any] = {k: {} for k in ("brier", "bss", "ece", "auc", "reliability", "roc", "crps")}
    ref = prob.get("reference")
    ref_scores: dict[str, Any] = {}
    for m, s in prob["methods"].items():
        for key in ("brier", "bss", "ece", "auc"):
            out[key][m] = {t: dict(zip(leads, blk[key])) for t, blk in s["thresholds"].items()}
        if ref is not None:
            ref_scores[m] = {t: dict(zip(leads, blk.get("bss_reference") or [])) for t, blk in s["thresholds"].items()}
        out["reliability"][m] = {
            t: {lead: {"n": blk["reliability"]["n"][i], "mean_p": blk["reliability"]["mean_p"][i],
                       "obs_freq": blk["reliability"]["obs_freq"][i], "ece": blk["ece"][i]}
                for i, lead in enumerate(leads)}
            for t, blk in s["thresholds"].items()}
        out["roc"][m] = {
            t: {lead: {"cutoffs": cut, "pod": blk["roc"]["pod"][i], "pofd": blk["roc"]["pofd"][i], "auc": blk["auc"][i]}
                for i, lead in enumerate(leads)}
            for t, blk in s["thresholds"].items()}
        if s.get("crps") is not None:
            out["crps"][m] = dict(zip(leads, s["crps"]))
    out["bss_reference"] = {"reference": ref, "scores": ref_scores} if ref is not None else None
    return out


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def probabilistic_tables(prob: dict | None) -> list[dict[str, Any]]:
    """Per method: rows (name, formatted values per lead) of Brier, BSS, ECE, AUC per threshold and CRPS."""
    if not prob:
        return []
    tables = []
    for m, s in sorted(prob.get("methods", {}).items()):
        rows = []
        for t, blk in s["thresholds"].items():
            rows += [(f"Brier >= {t}", blk["brier"]), (f"BSS >= {t}", blk["bss"])]
            if blk.get("bss_reference") is not None:
                rows.append((f"BSS vs {prob.get('reference')} >= {t}", blk["bss_reference"]))
            rows += [(f"ECE >= {t}", blk["ece"]), (f"AUC >= {t}", blk["auc"])]
        if s.get("crps") is not None:
            rows.append(("CRPS (fair)", s["crps"]))
        tables.append({"method": m, "n_inits": s.get("n_inits", 0), "first_init": str(s.get("first_init")),
                       "last_init": str(s.get("last_init")),
                       "rows": [(name, [_fmt(v) for v in vals]) for name, vals in rows]})
    return tables


def probabilistic_figures(prob: dict | None, png, colours) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG bytes): Brier skill by lead per threshold, reliability diagrams and ROC
    curves at the middle lead. ``png(fig)`` and ``colours(methods)`` are the report's helpers."""
    if not prob or not prob.get("methods"):
        return []
    from matplotlib.figure import Figure

    methods = sorted(prob["methods"])
    colour = colours(methods)
    leads_min = np.array(prob.get("lead_time_s", []), dtype=float) / 60.0
    thr = list(next(iter(prob["methods"].values()))["thresholds"])
    shown = thr[:5]
    li = len(leads_min) // 2
    out = []

    def nan(values):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

    fig = Figure(figsize=(3.4 * len(shown), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shown), squeeze=False)).ravel()
    for ax, t in zip(axes, shown):
        for m in methods:
            ax.plot(leads_min, nan(prob["methods"][m]["thresholds"][t]["bss"]), marker="o", ms=3, color=colour[m],
                    label=m)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"Brier skill, event >= {t}", fontsize=9)
        ax.set_xlabel("lead time (min)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    out.append(("brier_skill_lead.png", "Brier skill score against the sample climatology by lead time", png(fig)))

    fig = Figure(figsize=(3.4 * len(shown), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shown), squeeze=False)).ravel()
    lead_label = f"{int(leads_min[li])} min" if len(leads_min) else ""
    for ax, t in zip(axes, shown):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        for m in methods:
            rel = prob["methods"][m]["thresholds"][t]["reliability"]
            ax.plot(nan(rel["mean_p"][li]), nan(rel["obs_freq"][li]), marker="o", ms=3, color=colour[m], label=m)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"reliability >= {t}, lead {lead_label}", fontsize=9)
        ax.set_xlabel("forecast probability")
        ax.set_ylabel("observed frequency")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    out.append(("reliability.png", f"Reliability diagrams (10 probability bins) at lead {lead_label}", png(fig)))

    fig = Figure(figsize=(3.4 * len(shown), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shown), squeeze=False)).ravel()
    for ax, t in zip(axes, shown):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        for m in methods:
            roc = prob["methods"][m]["thresholds"][t]["roc"]
            auc = prob["methods"][m]["thresholds"][t]["auc"][li]
            ax.plot(nan(roc["pofd"][li]), nan(roc["pod"][li]), color=colour[m], label=f"{m} ({_fmt(auc)})")
        ax.set_title(f"ROC >= {t}, lead {lead_label}", fontsize=9)
        ax.set_xlabel("false alarm rate")
        ax.set_ylabel("hit rate")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    out.append(("roc.png", f"ROC curves (AUC in brackets) at lead {lead_label}", png(fig)))
    return out
