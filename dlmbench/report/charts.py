"""The leaderboard's charts (matplotlib, Agg), each answering one question:

- ``intervals_<task>``: how do the models compare on a task? One point per model with its 95% interval
  (± 1.96 standard errors). Exact values (autoregressive models) are filled points; Monte Carlo bounds
  (diffusion models) are open points with a one-sided arrow towards where the true value lies, labelled
  ``≤`` (``≥`` for a log-probability bounded below).
- ``frontier_<task>``: what does speed cost in quality? Generative perplexity (or MAUVE, or a reasoning task's
  strict accuracy) against function evaluations and against tokens per second, one line per model and decoder
  (the step sweep, and Fast-dLLM's threshold / factor / cache, :func:`_decoder`); the unigram entropy of the samples beside
  the entropy of real text, and points whose entropy falls below it flagged (a low gen-PPL from repetition).
- ``reasoning``: accuracy by task and verifier (strict vs paper-faithful) with 95% intervals.
- ``reversal``: exact match in the trained direction vs the reverse one, per model and task.

Rows are selected only by the metric names of :mod:`dlmbench.metrics.names`, which the task types write;
:func:`chart_rows` says how many rows each chart matches (a test fails when one matches none).
Every function takes the tidy table after run selection (:func:`dlmbench.report.selection.select_runs`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from dlmbench.metrics import names as M

Z95 = 1.96
EXACT_COLOR, BOUND_COLOR, FLAG_COLOR = "#1f77b4", "#d95f02", "#d62728"
#: metrics shown in the per-task interval chart, in this order (the first ones present, at most two)
INTERVAL_METRICS = (M.NLL_PER_TOKEN, M.BITS_PER_BYTE, M.ACC, M.PERPLEXITY, M.WORD_PERPLEXITY)
QUALITY_METRICS = (M.GEN_PPL, M.MAUVE)
#: the frontier's quality axis, first present: gen-PPL, MAUVE, then a reasoning task's strict accuracy (swept runs only)
FRONTIER_QUALITY = (*QUALITY_METRICS, M.STRICT_ACC)
#: settings that make a separate line on the frontier (Fast-dLLM decoding), read from the sampler record first
DECODER_KEYS = ("threshold", "factor", "cache")
REASONING_METRICS = (M.STRICT_ACC, M.FAITHFUL_ACC)
REVERSAL_METRICS = tuple(M.reversal_metric(d, M.EXACT_MATCH) for d in M.REVERSAL_DIRECTIONS)


@dataclass
class Figure:
    """One chart: a file stem, a title, and the same picture as PNG bytes and SVG text."""

    name: str
    title: str
    png: bytes
    svg: str


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _ci(stderr: Any) -> float:
    s = _num(stderr)
    return 0.0 if s is None else Z95 * s


def chart_rows(df) -> dict[str, int]:
    """How many rows of ``df`` each kind of chart reads: ``intervals``, ``frontier``, ``reasoning``,
    ``reversal``."""
    metric = df["metric"]
    frontier_runs = set(df[metric.isin(QUALITY_METRICS)]["run_id"]) & set(df[metric == M.NFE]["run_id"])
    frontier_runs |= set(df[metric == M.STRICT_ACC]["run_id"]) & set(df[metric == M.NFE_PER_EXAMPLE]["run_id"])
    return {
        "intervals": int(metric.isin(INTERVAL_METRICS).sum()),
        "frontier": int((df["run_id"].isin(frontier_runs) & metric.isin((*FRONTIER_QUALITY, M.NFE, M.NFE_PER_EXAMPLE, M.SECONDS_PER_SAMPLE,
                                                                          M.TOKENS_PER_SECOND, M.ENTROPY))).sum()),
        "reasoning": int(metric.isin(REASONING_METRICS).sum()),
        "reversal": int(metric.isin(REVERSAL_METRICS).sum()),
    }


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(fig, name: str, title: str) -> Figure:
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    fig.savefig(svg, format="svg", bbox_inches="tight")
    _plt().close(fig)
    return Figure(name, title, png.getvalue(), svg.getvalue())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _label(model: str, extra: str) -> str:
    return f"{model} ({extra})" if extra else model


def _varying(df, key_of) -> dict[str, str]:
    """run_id -> the settings that differ between the runs of ``df`` (``steps=8``), empty when one run per model."""
    per_model = df.groupby("model")["run_id"].nunique()
    if (per_model <= 1).all():
        return {}
    return {rid: key_of(rid) for rid in df["run_id"].unique()}


def all_charts(df, settings_label=lambda run_id: "") -> list[Figure]:
    """Every chart the table has rows for, in the order of the module docstring."""
    if df.empty:
        return []
    figs: list[Figure] = []
    skip_tasks = set(df[df["metric"].isin((*QUALITY_METRICS, *REASONING_METRICS, *REVERSAL_METRICS))]["task"])
    for task, tdf in df.groupby("task", sort=True):
        if task not in skip_tasks:
            f = intervals(tdf, str(task), settings_label)
            if f is not None:
                figs.append(f)
    for task, tdf in df.groupby("task", sort=True):
        f = frontier(tdf, str(task), settings_label)
        if f is not None:
            figs.append(f)
    for f in (reasoning(df), reversal(df)):
        if f is not None:
            figs.append(f)
    return figs


def intervals(tdf, task: str, settings_label=lambda run_id: "") -> Figure | None:
    """Per task: one panel per headline metric (up to two of :data:`INTERVAL_METRICS`), models as points
    with 95% intervals, best on top; bounds open with a one-sided arrow and ``≤``/``≥``."""
    metrics = [m for m in INTERVAL_METRICS if (tdf["metric"] == m).any()][:2]
    if not metrics:
        return None
    plt = _plt()
    from matplotlib.lines import Line2D

    labels = _varying(tdf, settings_label)
    # one row per run, in the order of the first metric (best on top: the last plotted row is the top)
    first = tdf[tdf["metric"] == metrics[0]]
    order = list(first.sort_values("value", ascending=bool(first["higher_is_better"].iloc[0]))["run_id"])
    order += [r for r in tdf["run_id"].unique() if r not in order]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics) + 2.2, 1.0 + 0.42 * len(order)), squeeze=False,
                             sharey=True)
    for ax, metric in zip(axes[0], metrics):
        rows = tdf[tdf["metric"] == metric].set_index("run_id")
        hib = bool(rows["higher_is_better"].iloc[0])
        rows = rows.reindex([r for r in order if r in rows.index]).reset_index()
        vals = [float(v) for v in rows["value"]]
        cis = [_ci(s) for s in rows["stderr"]]
        lo = min(v - c for v, c in zip(vals, cis))
        hi = max(v + c for v, c in zip(vals, cis))
        span = (hi - lo) or max(abs(hi), 1.0) * 0.1
        arrow = 0.12 * span
        ax.set_xlim(lo - 0.45 * span, hi + 0.45 * span)
        yticks = []
        for r, v, c in zip(rows.itertuples(), vals, cis):
            y = order.index(r.run_id)
            bound = r.bound == "upper"
            color = BOUND_COLOR if bound else EXACT_COLOR
            ax.errorbar([v], [y], xerr=[[c], [c]], fmt="o", ms=8, color=color, mfc="white" if bound else color,
                        mew=2, capsize=4, lw=1.5)
            sign = ""
            if bound:
                # an upper bound on an NLL: the true value is at most v (left); a log-probability: at least v (right)
                d = arrow if r.higher_is_better else -arrow
                sign = "≥ " if r.higher_is_better else "≤ "
                ax.annotate("", xy=(v + d, y), xytext=(v, y),
                            arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5, "shrinkA": 5, "shrinkB": 0})
            ax.annotate(f"{sign}{v:.4g}", (v, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8,
                        color=color)
            yticks.append((y, _label(r.model, labels.get(r.run_id, "")) + (" (≤ bound)" if bound and not r.higher_is_better else "")))
        if ax is axes[0][0]:
            yticks.sort()
            ax.set_yticks([y for y, _ in yticks], [lbl for _, lbl in yticks])
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.set_xlabel(f"{metric} ({'higher' if hib else 'lower'} is better)")
        ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], marker="o", color=EXACT_COLOR, mfc=EXACT_COLOR, ls="", label="exact value, 95% interval"),
        Line2D([], [], marker="o", color=BOUND_COLOR, mfc="white", mew=2, ls="",
               label="Monte Carlo upper bound (≤): true value lies toward the arrow"),
    ]
    fig.suptitle(f"{task}: models with 95% intervals", fontsize=11)
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return _figure(fig, f"intervals_{_safe(task)}", f"{task}: models with 95% intervals (≤ marks bounds)")


def _value(df, run_id: str, metric: str) -> tuple[float | None, float | None]:
    r = df[(df["run_id"] == run_id) & (df["metric"] == metric)]
    if r.empty:
        return None, None
    return _num(r["value"].iloc[0]), _num(r["stderr"].iloc[0])


def _decoder(settings: Any) -> dict[str, Any]:
    """The Fast-dLLM decoding settings a run was fed (``threshold``, ``factor``, ``cache``), from its sampler record
    (``sampler.KEY``, flat or nested) before the model card's own value; unset ones left out."""
    s = settings if isinstance(settings, dict) else {}
    nested = s.get("sampler") if isinstance(s.get("sampler"), dict) else {}
    out = {}
    for k in DECODER_KEYS:
        v = s.get(f"sampler.{k}", nested.get(k, s.get(k)))
        if v is not None and v != "none":
            out[k] = v
    return out


def _decoder_label(dec: dict[str, Any]) -> str:
    """A frontier line's name: the parallel rule (not its value, which varies along the line) and the cache."""
    parts = [k for k in ("threshold", "factor") if k in dec]
    if "cache" in dec:
        parts.append(f"{dec['cache']} cache")
    return " + ".join(parts)


def frontier(tdf, task: str, settings_label=lambda run_id: "") -> Figure | None:
    """Per sampling task: quality (gen-PPL, MAUVE, or a reasoning task's strict accuracy) against NFE and against
    generated tokens per second (seconds per sample for runs that predate the tokens/s metric), and entropy against
    NFE with the real-text entropy; low-entropy points ringed in red. One line per model and decoder: the step
    sweep of the model's own sampler, and one per Fast-dLLM setting (threshold / factor, cache), each point
    annotated with its threshold or factor. A reasoning task gets the chart only when a model has several runs."""
    quality = next((m for m in FRONTIER_QUALITY if (tdf["metric"] == m).any()), None)
    nfe_metric = M.NFE if (tdf["metric"] == M.NFE).any() else M.NFE_PER_EXAMPLE
    if quality is None or not (tdf["metric"] == nfe_metric).any():
        return None
    if quality == M.STRICT_ACC and (tdf.groupby("model")["run_id"].nunique() <= 1).all():
        return None
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    has_entropy = (tdf["metric"] == M.ENTROPY).any()
    has_rate = (tdf["metric"] == M.TOKENS_PER_SECOND).any()
    has_seconds = (tdf["metric"] == M.SECONDS_PER_SAMPLE).any()
    panels = [(nfe_metric, "function evaluations per sample (NFE)", quality)]
    if has_rate:
        panels.append((M.TOKENS_PER_SECOND, "generated tokens per second", quality))
    elif has_seconds:
        panels.append((M.SECONDS_PER_SAMPLE, "seconds per sample", quality))
    if has_entropy:
        panels.append((nfe_metric, "function evaluations per sample (NFE)", M.ENTROPY))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = ("o", "s", "^", "D", "v", "P")
    ref = tdf[tdf["metric"] == M.REFERENCE_ENTROPY]
    any_flag = False
    settings_of = dict(zip(tdf["run_id"], tdf["settings"])) if "settings" in tdf else {}
    for mi, (model, mdf) in enumerate(tdf.groupby("model", sort=True)):
        color = colors[mi % len(colors)]
        lines: dict[str, list[dict[str, Any]]] = {}
        for rid in mdf["run_id"].unique():
            nfe, _ = _value(mdf, rid, nfe_metric)
            sec, _ = _value(mdf, rid, M.SECONDS_PER_SAMPLE)
            rate, _ = _value(mdf, rid, M.TOKENS_PER_SECOND)
            q, qse = _value(mdf, rid, quality)
            ent, ese = _value(mdf, rid, M.ENTROPY)
            flag, _ = _value(mdf, rid, M.LOW_ENTROPY_FLAG)
            dec = _decoder(settings_of.get(rid))
            lines.setdefault(_decoder_label(dec), []).append(
                {nfe_metric: nfe, M.SECONDS_PER_SAMPLE: sec, M.TOKENS_PER_SECOND: rate, quality: q, f"{quality}_se": qse,
                 M.ENTROPY: ent, f"{M.ENTROPY}_se": ese, "flag": bool(flag),
                 "tag": next((f"{'τ' if k == 'threshold' else 'f'}={dec[k]:g}" for k in ("threshold", "factor") if k in dec), "")})
        for li, (dname, pts) in enumerate(sorted(lines.items())):
            for ax, (xm, _xl, ym) in zip(axes[0], panels):
                sel = sorted((p for p in pts if p[xm] is not None and p[ym] is not None), key=lambda p: p[xm])
                if not sel:
                    continue
                xs, ys = [p[xm] for p in sel], [p[ym] for p in sel]
                es = [_ci(p[f"{ym}_se"]) for p in sel]
                ax.errorbar(xs, ys, yerr=es, marker=markers[li % len(markers)], color=color, capsize=3,
                            ls="-" if not dname else "--", label=f"{model} {dname}".strip())
                for p in sel:
                    if p["tag"]:
                        ax.annotate(p["tag"], (p[xm], p[ym]), xytext=(4, 4), textcoords="offset points", fontsize=6, color=color)
                    if p["flag"]:
                        any_flag = True
                        ax.plot([p[xm]], [p[ym]], "o", ms=15, mfc="none", mec=FLAG_COLOR, mew=2)
                        if ym != M.ENTROPY and p[M.ENTROPY] is not None:
                            ax.annotate(f"H={p[M.ENTROPY]:.2f}", (p[xm], p[ym]), xytext=(8, -12), textcoords="offset points",
                                        fontsize=7, color=FLAG_COLOR)
    for ax, (_xm, xl, ym) in zip(axes[0], panels):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xl + (" (higher is faster)" if _xm == M.TOKENS_PER_SECOND else " (lower is cheaper)"))
        if ym == M.ENTROPY:
            ax.set_ylabel("unigram entropy of samples (nats)")
            if not ref.empty:
                rv = float(ref["value"].mean())
                ax.axhline(rv, color="gray", ls="--", lw=1)
                ax.annotate(f"real text {rv:.2f}", (1.0, rv), xycoords=("axes fraction", "data"), xytext=(-4, 4),
                            textcoords="offset points", ha="right", fontsize=8, color="gray")
        else:
            better = "higher" if quality in (M.MAUVE, M.STRICT_ACC) else "lower"
            ax.set_ylabel(f"{quality} ({better} is better)")
            if quality == M.GEN_PPL:
                ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    handles, lbls = axes[0][0].get_legend_handles_labels()
    if any_flag:
        handles.append(Line2D([], [], marker="o", ms=12, mfc="none", mec=FLAG_COLOR, mew=2, ls=""))
        lbls.append("flagged: entropy below real text (repetitive samples)")
    fig.legend(handles, lbls, loc="lower center", ncol=min(len(lbls), 4), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.0))
    legend_rows = math.ceil(len(lbls) / min(len(lbls), 4)) if lbls else 1
    fig.suptitle(f"{task}: speed vs quality (95% intervals)", y=1.04 + 0.06 * legend_rows, fontsize=11)
    fig.tight_layout()
    return _figure(fig, f"frontier_{_safe(task)}", f"{task}: speed vs quality, with the entropy check")


def _bars(ax, groups: list[str], series: list[tuple[str, list[float | None], list[float], list[int | None]]], ylabel: str):
    """Grouped bars with 95% intervals, each bar annotated with its value (and k/n when n is known)."""
    import numpy as np

    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    hatches = ["", "//", "..", "xx"]
    for i, (name, vals, cis, ns) in enumerate(series):
        pos = x - 0.4 + width * (i + 0.5)
        v = [0.0 if a is None else a for a in vals]
        lo = [min(c, a) for c, a in zip(cis, v)]
        hi = [min(c, 1 - a) for c, a in zip(cis, v)]
        hi_of = dict(zip(pos, hi))
        ax.bar(pos, v, width, yerr=[lo, hi], capsize=3, label=name, hatch=hatches[i % len(hatches)], edgecolor="black",
               lw=0.5, alpha=0.85)
        for px, a, n in zip(pos, vals, ns):
            if a is None:
                ax.annotate("n/a", (px, 0.01), ha="center", fontsize=7)
                continue
            txt = f"{a:.2f}" + (f"\n{round(a * n)}/{n}" if n else "")
            ax.annotate(txt, (px, a + hi_of[px]), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _task_panels(rows, series_of: list[tuple[str, str]], ylabel: str, legend_loc: str, title: str, name: str,
                 caption: str) -> Figure:
    """One panel per task of grouped bars: for each model, one bar per ``(label, metric)`` of ``series_of``
    (value, 95% interval, k/n)."""
    plt = _plt()
    tasks = sorted(rows["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.5, 1.6 * rows["model"].nunique() + 2) * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = rows[rows["task"] == task]
        models = sorted(t["model"].unique())
        series = []
        for label, metric in series_of:
            vals, cis, ns = [], [], []
            for m in models:
                r = t[(t["model"] == m) & (t["metric"] == metric)]
                vals.append(None if r.empty else _num(r["value"].iloc[0]))
                cis.append(0.0 if r.empty else _ci(r["stderr"].iloc[0]))
                ns.append(None if r.empty else int(r["n"].iloc[0]))
            series.append((label, vals, cis, ns))
        _bars(ax, models, series, ylabel)
        ax.set_title(task, fontsize=10)
    axes[0][0].legend(fontsize=8, loc=legend_loc)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _figure(fig, name, caption)


def reasoning(df) -> Figure | None:
    """Accuracy by task (one panel each) and verifier (strict, paper-faithful), models side by side."""
    rows = df[df["metric"].isin(REASONING_METRICS)]
    if rows.empty:
        return None
    series = [(f"{M.VERIFIER_OF[metric]} verifier", metric) for metric in REASONING_METRICS]
    return _task_panels(rows, series, "accuracy (95% interval)", "upper left", "Reasoning: accuracy by task and verifier",
                        "reasoning", "Reasoning accuracy by task and verifier")


def reversal(df) -> Figure | None:
    """Exact match in the trained direction (``same``) vs the reversed one, per model; one panel per task."""
    rows = df[df["metric"].isin(REVERSAL_METRICS)]
    if rows.empty:
        return None
    series = [(f"{'trained direction' if d == M.REVERSAL_SAME else 'reversed'} ({d})", metric)
              for d, metric in zip(M.REVERSAL_DIRECTIONS, REVERSAL_METRICS)]
    return _task_panels(rows, series, "exact match (95% interval)", "upper right",
                        "Reversal curse: exact match, trained direction vs reversed", "reversal",
                        "Reversal curse: trained direction vs reversed")
