"""Hindcast reports: ``report.json`` (every number), ``report.html`` with figures, and a terminal summary.

Input is the dict of `forecast.verify.metrics.Verifier.summary`. matplotlib is imported inside
`write_report` only (object-oriented API on the Agg canvas, no pyplot state), so importing this module
stays light. Identical input gives identical bytes in ``report.json`` (sorted keys) and, for a given
matplotlib version, identical figures.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forecast.serialize import jsonable

__all__ = ["REPORT_VERSION", "terminal_summary", "verdict", "write_report"]

#: Version of the layout of ``report.json``.
REPORT_VERSION = 1

_MAX_SUMMARY_LINES = 40


# --------------------------------------------------------------------------------------------------
# Helpers over the summary dict
# --------------------------------------------------------------------------------------------------


def _method_order(summary: dict) -> list[str]:
    """Compared methods first, then the reference, then the rest alphabetically."""
    names = list(summary.get("methods", {}))
    first = [m for m in summary.get("compare", []) if m in names]
    ref = summary.get("reference")
    if ref in names and ref not in first:
        first.append(ref)
    return first + sorted(m for m in names if m not in first)


def _lead_label(seconds: int) -> str:
    minutes = int(seconds) // 60
    if minutes % 60 == 0 and minutes >= 60:
        return f"{minutes // 60}h"
    return f"{minutes}min" if int(seconds) % 60 == 0 else f"{int(seconds)}s"


def _key_lead_indices(n_lead: int, k: int) -> list[int]:
    if n_lead <= k:
        return list(range(n_lead))
    return sorted({int(round(x)) for x in np.linspace(0, n_lead - 1, k)})


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _get(d: Any, *path: Any) -> Any:
    for p in path:
        if isinstance(d, dict):
            d = d.get(p)
        elif isinstance(d, list) and isinstance(p, int) and -len(d) <= p < len(d):
            d = d[p]
        else:
            return None
    return d


def _main_reference(summary: dict, method: str) -> str | None:
    """The reference a compared method's interval is shown against: the skill reference, else the first."""
    pairs = _get(summary, "bootstrap", method) or {}
    ref = summary.get("reference")
    if ref in pairs:
        return ref
    return sorted(pairs)[0] if pairs else None


def _as_nan(values: Sequence[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


# --------------------------------------------------------------------------------------------------
# Verdict and terminal summary
# --------------------------------------------------------------------------------------------------


def verdict(summary: dict) -> str:
    """One line: where each compared method is better than each other method with the interval excluding zero."""
    boot = summary.get("bootstrap") or {}
    if not boot:
        return "No comparison was requested: scores only, no significance statement."
    n_lead = len(summary.get("lead_time_s", []))
    thr = summary.get("thresholds") or []
    t0 = np.format_float_positional(float(thr[0]), trim="-") if thr else None
    conf = None
    parts = []
    for method in boot:
        for ref, b in sorted(boot[method].items()):
            conf = b.get("confidence", conf)
            rmse_n = sum(bool(x) for x in _get(b, "rmse", "better") or [])
            text = f"{method} vs {ref}: RMSE lower at {rmse_n}/{n_lead} leads"
            if t0 is not None:
                csi_n = sum(bool(x) for x in _get(b, "csi", t0, "better") or [])
                text += f", CSI@{t0} higher at {csi_n}/{n_lead}"
            text += f" ({b.get('n_inits', 0)} paired inits)"
            parts.append(text)
    pct = f"{100 * conf:g}%" if conf else "95%"
    return "; ".join(parts) + f" [{pct} block-bootstrap interval excluding zero]."


def terminal_summary(summary: dict, *, key_leads: Sequence[int] | None = None) -> str:
    """A plain-text table that fits one screen (at most 40 lines, 100 columns).

    Rows: key lead times x methods. Columns: RMSE, RMSE skill against the reference, CSI at the lowest
    threshold, FSS at the lowest FSS threshold and the middle window, the share of verifiable cells, and
    for compared methods the RMSE difference to the reference with its bootstrap interval (``*``: the
    interval excludes zero in the method's favour).

    Args:
        summary: `Verifier.summary` output.
        key_leads: indices into the lead times to show (default: up to 4, evenly spread, fewer when
            there are many methods).
    """
    methods = _method_order(summary)
    leads = summary.get("lead_time_s", [])
    ref = summary.get("reference")
    thr = summary.get("thresholds") or []
    fthr = summary.get("fss_thresholds") or []
    wins = summary.get("fss_windows") or []
    t0 = np.format_float_positional(float(thr[0]), trim="-") if thr else None
    ft0 = np.format_float_positional(float(fthr[0]), trim="-") if fthr else None
    w0 = str(wins[len(wins) // 2]) if wins else None

    head = []
    n_inits = {m: _get(summary, "methods", m, "n_inits") for m in methods}
    if not methods:
        first = "Hindcast verification: no data"
    elif len(set(n_inits.values())) == 1:
        first = f"Hindcast verification: {n_inits[methods[0]]} inits for each of {len(methods)} methods"
    else:
        first = "Hindcast verification, inits: " + ", ".join(f"{m} {n_inits[m]}" for m in methods)
    head.append(first if len(first) <= 100 else first[:96] + " ...")
    head.append(f"reference: {ref or '-'}; interval: RMSE(method) - RMSE(ref), '*' = excludes zero in favour")
    cols = f"{'lead':>6} {'method':<14} {'RMSE':>7} {'skill':>7} {'CSI@' + (t0 or '-'):>8} "
    cols += f"{'FSS@' + (ft0 or '-') + '/' + (w0 or '-'):>10} {'valid':>6}  dRMSE [CI] vs ref"
    head += [cols, "-" * min(len(cols) + 12, 100)]

    budget = _MAX_SUMMARY_LINES - len(head) - 1
    shown = methods[: max(1, budget - 1)]
    if key_leads is None:
        k = max(1, min(4, budget // (len(shown) + 1))) if shown else 1
        key_leads = _key_lead_indices(len(leads), k)
    lines = list(head)
    for li in key_leads:
        for m in shown:
            s = summary["methods"][m]
            rmse = _get(s, "continuous", "rmse", li)
            skill = _get(s, "skill", "rmse_skill", li)
            csi = _get(s, "categorical", t0, "csi", li) if t0 else None
            fss = _get(s, "fss", ft0, w0, li) if ft0 else None
            valid = _get(s, "valid_fraction", li)
            ci = ""
            r = _main_reference(summary, m)
            if r is not None:
                b = summary["bootstrap"][m][r]["rmse"]
                star = "*" if _get(b, "better", li) else " "
                ci = f"{_fmt(_get(b, 'diff', li))} [{_fmt(_get(b, 'lower', li))}, {_fmt(_get(b, 'upper', li))}]{star}"
                if r != ref:
                    ci += f" vs {r}"
            lines.append(
                f"{_lead_label(leads[li]):>6} {m[:14]:<14} {_fmt(rmse):>7} {_fmt(skill):>7} {_fmt(csi):>8} "
                f"{_fmt(fss):>10} {_fmt(valid, 2):>6}  {ci}".rstrip()
            )
        lines.append("")
    if len(shown) < len(methods):
        lines.append(f"... {len(methods) - len(shown)} more methods in report.json")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines[:_MAX_SUMMARY_LINES])


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def _colours(methods: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def _figures(summary: dict, examples: list[dict]) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG bytes) for every figure."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    methods = _method_order(summary)
    colour = _colours(methods)
    leads_min = np.array(summary.get("lead_time_s", []), dtype=float) / 60.0
    n_lead = len(leads_min)
    ref = summary.get("reference")
    thr = [np.format_float_positional(float(t), trim="-") for t in summary.get("thresholds") or []]
    fthr = [np.format_float_positional(float(t), trim="-") for t in summary.get("fss_thresholds") or []]
    wins = [str(w) for w in summary.get("fss_windows") or []]
    key = _key_lead_indices(n_lead, 3)
    out: list[tuple[str, str, bytes]] = []

    def line(ax: Any, x: Any, values: Any, m: str, **kw: Any) -> None:
        ax.plot(x, _as_nan(values, len(x)), marker="o", ms=3, color=colour[m], label=m, **kw)

    # 1. continuous scores and RMSE skill against lead time
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [
        ("rmse", "RMSE", lambda s: _get(s, "continuous", "rmse")),
        ("skill", f"RMSE skill vs {ref}" if ref else "RMSE skill", lambda s: _get(s, "skill", "rmse_skill")),
        ("bias", "bias (mean fcst - obs)", lambda s: _get(s, "continuous", "bias")),
        ("corr", "correlation", lambda s: _get(s, "continuous", "correlation")),
    ]
    for ax, (_, title, get) in zip(axes.flat, panels):
        for m in methods:
            line(ax, leads_min, get(summary["methods"][m]), m)
        ax.set_title(title)
        ax.set_xlabel("lead time (min)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    out.append(("continuous.png", "RMSE, RMSE skill, bias and correlation against lead time", _png(fig)))

    # 2. CSI against lead time, one panel per threshold
    if thr:
        ncol = min(4, len(thr))
        nrow = math.ceil(len(thr) / ncol)
        fig = Figure(figsize=(3.6 * ncol, 3.2 * nrow), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, t in zip(axes, thr):
            for m in methods:
                line(ax, leads_min, _get(summary["methods"][m], "categorical", t, "csi"), m)
            ax.set_title(f"CSI, event >= {t}")
            ax.set_xlabel("lead time (min)")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        for ax in axes[len(thr) :]:
            ax.set_visible(False)
        axes[0].legend(fontsize=8)
        out.append(("csi_lead.png", "CSI against lead time at each threshold", _png(fig)))

        # 3. CSI against threshold at key leads
        fig = Figure(figsize=(3.6 * len(key), 3.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(key), squeeze=False)).ravel()
        x = np.array([float(t) for t in thr])
        for ax, li in zip(axes, key):
            for m in methods:
                cat = summary["methods"][m].get("categorical", {})
                line(ax, x, [_get(cat, t, "csi", li) for t in thr], m)
            if np.all(x > 0) and len(x) > 1:
                ax.set_xscale("log")
            ax.set_title(f"CSI by threshold, lead {_lead_label(summary['lead_time_s'][li])}")
            ax.set_xlabel("threshold")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        out.append(("csi_threshold.png", "CSI against threshold at key lead times", _png(fig)))

    # 4. FSS against window size
    if fthr and wins:
        shown_thr = fthr[:4]
        fig = Figure(figsize=(3.6 * len(key), 3.0 * len(shown_thr)), layout="constrained")
        axes = fig.subplots(len(shown_thr), len(key), squeeze=False)
        x = np.array([int(w) for w in wins])
        for r, t in enumerate(shown_thr):
            for c, li in enumerate(key):
                ax = axes[r, c]
                for m in methods:
                    line(ax, x, [_get(summary["methods"][m], "fss", t, w, li) for w in wins], m)
                ax.set_xscale("log", base=2)
                ax.set_xticks(x, [str(w) for w in x])
                ax.set_ylim(0, 1)
                ax.set_title(f"FSS >= {t}, lead {_lead_label(summary['lead_time_s'][li])}", fontsize=9)
                ax.set_xlabel("window (cells)")
                ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        out.append(("fss_window.png", "FSS against window size (zero padding; valid centres only)", _png(fig)))

    # 5. bootstrap intervals of the differences
    pairs = [(m, r) for m in summary.get("bootstrap", {}) for r in sorted(summary["bootstrap"][m])]
    if pairs:
        shown_thr = thr[:3]
        ncol = 1 + len(shown_thr)
        fig = Figure(figsize=(3.6 * ncol, 2.9 * len(pairs)), layout="constrained")
        axes = fig.subplots(len(pairs), ncol, squeeze=False)
        for r_i, (m, r) in enumerate(pairs):
            b = summary["bootstrap"][m][r]
            blocks = [("RMSE", b["rmse"])] + [(f"CSI >= {t}", _get(b, "csi", t)) for t in shown_thr]
            for c, (name, blk) in enumerate(blocks):
                ax = axes[r_i, c]
                d = _as_nan(_get(blk, "diff"), n_lead)
                lo, hi = _as_nan(_get(blk, "lower"), n_lead), _as_nan(_get(blk, "upper"), n_lead)
                ax.axhline(0, color="k", lw=0.8)
                ax.fill_between(leads_min, lo, hi, color=colour.get(m, "C0"), alpha=0.25, lw=0)
                ax.plot(leads_min, d, marker="o", ms=3, color=colour.get(m, "C0"))
                ax.set_title(f"{name}: {m} - {r}", fontsize=9)
                ax.set_xlabel("lead time (min)")
                ax.grid(alpha=0.3)
        conf = _get(summary, "bootstrap", pairs[0][0], pairs[0][1], "confidence") or 0.95
        out.append(
            ("bootstrap.png", f"Differences to each reference, {100 * conf:g}% block-bootstrap intervals", _png(fig))
        )

    # 6. example maps with a shared colour scale
    for i, ex in enumerate(examples):
        obs = np.asarray(ex["obs"], dtype=float)
        fields = {k: np.asarray(v, dtype=float) for k, v in (ex.get("fields") or {}).items()}
        arrays = [obs, *fields.values()]
        finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
        vmin = float(min(0.0, finite.min())) if finite.size else 0.0
        vmax = float(finite.max()) if finite.size else 1.0
        norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0)
        n = len(arrays)
        fig = Figure(figsize=(3.1 * n + 0.8, 3.3), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
        image = None
        for ax, (name, a) in zip(axes, [("observed", obs), *fields.items()]):
            image = ax.imshow(
                np.ma.masked_invalid(a), origin="lower", norm=norm, cmap="viridis", interpolation="nearest"
            )
            ax.set_facecolor("0.85")  # not verifiable / missing
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=list(axes), shrink=0.85)
        lead = jsonable(ex.get("lead_time"))
        lead = _lead_label(lead) if isinstance(lead, int) else lead
        title = f"{ex.get('title', 'example')} - init {jsonable(ex.get('init_time'))}, lead {lead}"
        fig.suptitle(title, fontsize=10)
        out.append((f"example_{i + 1}.png", title, _png(fig)))
    return out


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if isinstance(d, dict):
        for k in sorted(d):
            rows += _flatten(d[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, x in enumerate(d):
            rows += _flatten(x, f"{prefix}[{i}]")
    else:
        rows.append((prefix, "null" if d is None else d if isinstance(d, str) else json.dumps(d)))
    return rows


def _score_tables(summary: dict) -> list[dict[str, Any]]:
    """Per method: the rows (name, formatted values per lead) of its score table."""
    leads = summary.get("lead_time_s", [])
    tables = []
    for m in _method_order(summary):
        s = summary["methods"][m]
        rows = [
            ("valid fraction", s.get("valid_fraction")),
            ("RMSE", _get(s, "continuous", "rmse")),
            ("MAE", _get(s, "continuous", "mae")),
            ("bias", _get(s, "continuous", "bias")),
            ("correlation", _get(s, "continuous", "correlation")),
            ("RMSE skill", _get(s, "skill", "rmse_skill")),
        ]
        for t, blk in (s.get("categorical") or {}).items():
            rows += [(f"CSI >= {t}", blk.get("csi")), (f"ETS >= {t}", blk.get("ets")), (f"POD >= {t}", blk.get("pod"))]
            rows += [(f"FAR >= {t}", blk.get("far")), (f"freq. bias >= {t}", blk.get("frequency_bias"))]
            rows += [(f"base rate >= {t}", blk.get("base_rate"))]
        for t, per_w in (s.get("fss") or {}).items():
            rows += [(f"FSS >= {t}, w={w}", v) for w, v in per_w.items()]
        tables.append({"method": m, "n_inits": s.get("n_inits", 0), "first_init": str(s.get("first_init")),
                       "last_init": str(s.get("last_init")),
                       "rows": [(name, [_fmt(_get(vals, i)) for i in range(len(leads))])
                                for name, vals in rows if vals is not None]})
    return tables


def _template(name: str):
    """A template of ``forecast/evaluation/templates`` (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("forecast.evaluation", "templates"),
                             autoescape=True, keep_trailing_newline=True)
    return env.get_template(name)


def write_report(
    summary: dict,
    out_dir: Path,
    *,
    provenance: dict,
    examples: list[dict] | None = None,
    command: str | None = None,
) -> dict:
    """Write ``report.json``, ``report.html`` and the PNG figures into ``out_dir``.

    Args:
        summary: `Verifier.summary` output (every number of the report).
        out_dir: folder to write into (created if missing).
        provenance: the hindcast's provenance (model version and checkpoint sha256, observation snapshot,
            QC config hash, revision policy, software versions, ...); shown as a table and kept in the JSON.
        examples: maps to show, each ``{"title", "init_time", "lead_time", "obs": 2-D array,
            "fields": {method: 2-D array}}``; drawn with one colour scale per example, NaN in grey.
        command: the command line that produced the hindcast.

    Returns:
        ``{"json": path, "html": path, "figures": [paths]}`` (strings).

    ``report.json`` holds ``{"report_version", "command", "provenance", "summary", "verdict",
    "examples": [{"title", "init_time", "lead_time", "methods", "obs_max"}], "figures": [names]}`` and,
    when ``summary`` has a ``probabilistic`` block (`ProbabilisticVerifier.summary`), the keys of
    `forecast.evaluation.report_probabilistic.probabilistic_keys` (``brier``, ``bss``, ``bss_reference``,
    ``reliability``, ``roc``, ``ece``, ``auc``, ``crps``: method -> threshold -> lead minutes), with
    sorted keys and NaN as null, so identical input gives identical bytes. The HTML embeds every figure
    (base64) and the figures are also written beside it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from forecast.evaluation.report_probabilistic import (
        probabilistic_figures,
        probabilistic_keys,
        probabilistic_tables,
    )

    examples = list(examples or [])
    prob = summary.get("probabilistic")
    figures = _figures(summary, examples)
    if prob:
        figures += probabilistic_figures(prob, _png, _colours)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    fig_paths = []
    for name, _, png in figures:
        path = fig_dir / name
        path.write_bytes(png)
        fig_paths.append(str(path))

    line = verdict(summary)
    example_meta = []
    for ex in examples:
        obs = np.asarray(ex["obs"], dtype=float)
        example_meta.append(
            {
                "title": ex.get("title"),
                "init_time": ex.get("init_time"),
                "lead_time": ex.get("lead_time"),
                "methods": sorted(ex.get("fields") or {}),
                "obs_max": float(np.nanmax(obs)) if np.isfinite(obs).any() else None,
            }
        )
    doc = jsonable(
        {
            "report_version": REPORT_VERSION,
            "command": command,
            "provenance": provenance,
            "summary": summary,
            "verdict": line,
            "examples": example_meta,
            "figures": [f"figures/{name}" for name, _, _ in figures],
            **probabilistic_keys(prob),
        }
    )
    json_path = out / "report.json"
    json_path.write_text(json.dumps(doc, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n", "utf-8")

    page = _template("report.html.j2").render(
        verdict=line,
        terminal=terminal_summary(summary),
        provenance=_flatten(doc["provenance"]),
        command=command,
        figures=[{"name": name, "caption": caption, "data": base64.b64encode(png).decode()}
                 for name, caption, png in figures],
        leads=[_lead_label(x) for x in summary.get("lead_time_s", [])],
        score_tables=_score_tables(summary),
        prob_tables=probabilistic_tables(prob),
        conventions=[(k, str(v)) for k, v in sorted((summary.get("conventions") or {}).items())],
    )
    html_path = out / "report.html"
    html_path.write_text(page, "utf-8")
    return {"json": str(json_path), "html": str(html_path), "figures": fig_paths}
