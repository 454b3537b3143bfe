"""Leaderboard reports from the tidy table: ``leaderboard.md``, a self-contained ``leaderboard.html``,
and PNG/SVG plots beside them.

The report reads only the tidy table (docs/architecture.md). Bounds are shown with ``≤`` and every value with its
standard error. Plots are chosen by what the table holds:

- bits per byte across models (comparable across tokenizers);
- any metric against a numeric setting that varies within a model/task (e.g. gen-PPL or accuracy vs
  ``steps``) — the speed/quality curves;
- gen-PPL against entropy with the reference-entropy line, when ``genppl`` rows carry ``entropy``;
- forward vs reverse bars for the reversal curse (tasks named ``*same*``/``*reverse*`` or a ``direction``
  setting).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlmbench.report.table import format_value

_SKIP_SETTING_KEYS = {"limit", "task_settings", "n_requests", "n_tokens", "n_bytes", "n_examples", "n_params"}


@dataclass
class Figure:
    name: str
    title: str
    png: bytes
    svg: str


def _latest(df):
    """One row per (model, task, metric, settings-that-vary): the most recent run wins."""
    if df.empty:
        return df
    df = df.copy()
    df["_settings_key"] = df["settings"].map(lambda s: json.dumps(_flat_settings(s), sort_keys=True, default=str))
    df = df.sort_values("started_at")
    return df.drop_duplicates(["model", "task", "metric", "_settings_key", "seed"], keep="last")


def _flat_settings(settings: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Scalar settings with nested mappings as dotted keys (``{"sampler": {"temperature": 0}}`` →
    ``sampler.temperature``); bookkeeping keys and lists left out."""
    out: dict[str, Any] = {}
    for k, v in (settings or {}).items():
        if not prefix and k in _SKIP_SETTING_KEYS:
            continue
        if isinstance(v, dict):
            out.update(_flat_settings(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def task_tables(df) -> dict[str, list[dict[str, Any]]]:
    """Per task: rows of ``{model, family, metric: formatted value, ...}`` sorted by the primary metric."""
    out: dict[str, list[dict[str, Any]]] = {}
    for task, tdf in df.groupby("task", sort=True):
        metrics = list(dict.fromkeys(tdf["metric"]))
        rows = []
        # one table row per run: metrics of one run may carry their own settings (e.g. the reversal task's
        # direction and file), which must not split the run over several rows
        for (model, family, _run, seed), mdf in tdf.groupby(["model", "family", "run_id", "seed"], sort=False):
            skey = mdf["_settings_key"].iloc[0]
            row: dict[str, Any] = {"model": model, "family": family, "seed": seed, "settings": _short_settings(skey)}
            for _, r in mdf.iterrows():
                row[r["metric"]] = format_value(r["value"], _nan_none(r["stderr"]), r["bound"], bool(r["higher_is_better"]))
                row[f"_{r['metric']}"] = r["value"]
                row["_hib_" + r["metric"]] = bool(r["higher_is_better"])
            row["n"] = int(mdf["n"].max())
            rows.append(row)
        primary = metrics[0]
        hib = bool(tdf[tdf["metric"] == primary]["higher_is_better"].iloc[0])
        rows.sort(key=lambda r: (r.get(f"_{primary}") is None, -(r.get(f"_{primary}") or 0) if hib else (r.get(f"_{primary}") or 0)))
        out[str(task)] = rows
    return out


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _short_settings(skey: str) -> str:
    """The settings a reader needs to compare rows; a task's own sampler settings (``sampler.KEY``, e.g. the
    reasoning tasks' greedy decoding) take precedence over the model card's defaults of the same name."""
    s = json.loads(skey)
    keep = {}
    for k in ("steps", "sampler", "mc_samples", "precision", "stride", "time_sampling", "greedy_method", "top_p", "temperature",
              "topk_strategy"):
        if f"sampler.{k}" in s:
            keep[k] = s[f"sampler.{k}"]
        elif k in s:
            keep[k] = s[k]
    if keep.get("sampler") != "topk":
        keep.pop("topk_strategy", None)  # the top-k decoding's option, a default everywhere else
    return ", ".join(f"{k}={v}" for k, v in sorted(keep.items()))


def _metrics_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if not k.startswith("_") and k not in ("model", "family", "seed", "settings", "n"):
                seen[k] = None
    return list(seen)


def markdown(df) -> str:
    df = _latest(df)
    lines = ["# dlmbench leaderboard", ""]
    if df.empty:
        return "\n".join(lines + ["No results yet."]) + "\n"
    lines.append("Values are mean ± standard error; `≤` marks Monte Carlo upper bounds on the NLL (diffusion models), `≥` log-probabilities bounded below by them.")
    lines.append("")
    for task, rows in task_tables(df).items():
        metrics = _metrics_of(rows)
        lines += [f"## {task}", "", "| model | family | " + " | ".join(metrics) + " | n | settings |", "|" + "---|" * (len(metrics) + 4)]
        for r in rows:
            lines.append(f"| {r['model']} | {r['family']} | " + " | ".join(r.get(m, "") for m in metrics) + f" | {r['n']} | {r['settings']} |")
        lines.append("")
    commits = sorted(set(df["git_commit"]))
    lines.append(f"_Generated from {len(df)} rows; dlmbench git {', '.join(c[:12] for c in commits)}._")
    return "\n".join(lines) + "\n"


# -- plots --------------------------------------------------------------------------------------


def _fig_to_figure(fig, name: str, title: str) -> Figure:
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    fig.savefig(svg, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(name, title, png.getvalue(), svg.getvalue())


def plots(df) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _latest(df)
    figs: list[Figure] = []
    if df.empty:
        return figs
    bpb = df[df["metric"] == "bits_per_byte"]
    if not bpb.empty:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * len(bpb)))
        labels = [f"{r.model} · {r.task}" + (" (≤)" if r.bound == "upper" else "") for r in bpb.itertuples()]
        errs = [0 if _nan_none(e) is None else e for e in bpb["stderr"]]
        colors = ["tab:orange" if b == "upper" else "tab:blue" for b in bpb["bound"]]
        ax.barh(labels, bpb["value"], xerr=errs, color=colors)
        ax.set_xlabel("bits per byte (lower is better; orange = upper bound)")
        ax.invert_yaxis()
        figs.append(_fig_to_figure(fig, "bits_per_byte", "Bits per byte across tokenizers"))
    # metric vs a numeric setting that varies (speed/quality curves: steps, NFE, ...)
    for axis_key in ("steps", "nfe", "mc_samples"):
        vals = df["settings"].map(lambda s: (s or {}).get(axis_key))  # noqa: B023 - used at once
        sub = df[vals.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))].copy()
        if sub.empty:
            continue
        sub["_x"] = vals[sub.index]
        for (task, metric), g in sub.groupby(["task", "metric"]):
            if g["_x"].nunique() < 2:
                continue
            fig, ax = plt.subplots(figsize=(6, 4))
            for model, mg in g.groupby("model"):
                mg = mg.sort_values("_x")
                ax.errorbar(mg["_x"], mg["value"], yerr=[0 if _nan_none(e) is None else e for e in mg["stderr"]], marker="o", label=model, capsize=3)
            ax.set_xscale("log", base=2)
            ax.set_xlabel(axis_key)
            ax.set_ylabel(metric + (" (≤)" if (g["bound"] == "upper").any() else ""))
            ax.set_title(f"{task}: {metric} vs {axis_key}")
            ax.legend(fontsize=8)
            figs.append(_fig_to_figure(fig, f"{task}_{metric}_vs_{axis_key}".replace("/", "_"), f"{task}: {metric} vs {axis_key}"))
    # gen-PPL vs entropy with the reference-entropy line
    gp = df[df["metric"] == "gen_ppl"]
    ent = df[df["metric"] == "entropy"]
    if not gp.empty and not ent.empty:
        merged = gp.merge(ent, on=["run_id"], suffixes=("", "_ent"))
        if not merged.empty:
            fig, ax = plt.subplots(figsize=(6, 4))
            for model, mg in merged.groupby("model"):
                ax.scatter(mg["value_ent"], mg["value"], label=model)
            ref = df[df["metric"] == "reference_entropy"]
            if not ref.empty:
                ax.axvline(float(ref["value"].mean()), color="gray", ls="--", label="real text entropy")
            ax.set_xlabel("unigram entropy (nats)")
            ax.set_ylabel("generative perplexity")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
            figs.append(_fig_to_figure(fig, "genppl_vs_entropy", "Generative perplexity vs entropy"))
    # speed/quality frontier: cost (NFE, seconds per sample) vs the quality metric of the same runs
    quality = df[df["metric"].isin(["gen_ppl", "mauve", "acc", "acc_strict"])]
    for cost_metric, cost_label in (("nfe", "function evaluations (NFE)"), ("seconds_per_sample", "seconds per sample")):
        cost = df[df["metric"] == cost_metric]
        if quality.empty or cost.empty:
            continue
        merged = quality.merge(cost[["run_id", "value"]], on="run_id", suffixes=("", "_cost"))
        for (task, metric), g in merged.groupby(["task", "metric"]):
            if len(g) < 2:
                continue
            fig, ax = plt.subplots(figsize=(6, 4))
            for model, mg in g.groupby("model"):
                mg = mg.sort_values("value_cost")
                ax.errorbar(mg["value_cost"], mg["value"], yerr=[0 if _nan_none(e) is None else e for e in mg["stderr"]],
                            marker="o", capsize=3, label=model)
            ax.set_xscale("log")
            ax.set_xlabel(cost_label + " (lower is cheaper)")
            ax.set_ylabel(metric + (" (higher is better)" if bool(g["higher_is_better"].iloc[0]) else " (lower is better)"))
            if metric == "gen_ppl":
                ax.set_yscale("log")
            ax.legend(fontsize=8)
            name = f"{task}_{metric}_vs_{cost_metric}".replace("/", "_")
            figs.append(_fig_to_figure(fig, name, f"{task}: speed/quality ({metric} vs {cost_metric})"))
    # reversal curse: forward vs reverse accuracy per model
    rev = df[df["task"].str.contains("reversal") & (df["metric"].str.contains("acc"))]
    if not rev.empty:
        fig, ax = plt.subplots(figsize=(7, 4))
        pivot = rev.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
        pivot.plot.bar(ax=ax)
        ax.set_ylabel("accuracy")
        ax.set_title("Reversal curse: same direction vs reverse")
        figs.append(_fig_to_figure(fig, "reversal", "Reversal curse"))
    return figs


# -- HTML ---------------------------------------------------------------------------------------

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
      var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3;cursor:pointer}th[data-order=asc]::after{content:" ▲"}th[data-order=desc]::after{content:" ▼"}
.note{color:#555;font-size:.9em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""


def html_page(df, figures: Iterable[Figure]) -> str:
    df = _latest(df)
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dlmbench leaderboard</title>",
        f"<style>{_CSS}</style></head><body><h1>dlmbench leaderboard</h1>",
        "<p class='note'>Values are mean ± standard error; ≤ marks Monte Carlo upper bounds on the NLL (diffusion models), ≥ log-probabilities bounded below by them. Click a column to sort.</p>",
    ]
    if df.empty:
        parts.append("<p>No results yet.</p>")
    else:
        for task, rows in task_tables(df).items():
            metrics = _metrics_of(rows)
            parts.append(f"<h2>{e(task)}</h2><table class='sortable'><thead><tr><th>model</th><th>family</th>")
            parts += [f"<th>{e(m)}</th>" for m in metrics]
            parts.append("<th>n</th><th>settings</th></tr></thead><tbody>")
            for r in rows:
                cells = [f"<td>{e(str(r['model']))}</td><td>{e(str(r['family']))}</td>"]
                for m in metrics:
                    raw = r.get(f"_{m}")
                    dv = "" if raw is None else f" data-v='{raw}'"
                    cells.append(f"<td{dv}>{e(r.get(m, ''))}</td>")
                cells.append(f"<td data-v='{r['n']}'>{r['n']}</td><td>{e(r['settings'])}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    for fig in figures:
        b64 = base64.b64encode(fig.png).decode()
        parts.append(f"<h2>{e(fig.title)}</h2><img alt='{e(fig.title)}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "".join(parts)


def write_report(df, out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.html`` and ``plots/*.png|svg`` under ``out_dir``."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    figures = plots(df)
    written: dict[str, Path] = {}
    for fig in figures:
        (out / "plots" / f"{fig.name}.png").write_bytes(fig.png)
        (out / "plots" / f"{fig.name}.svg").write_text(fig.svg)
    md = out / "leaderboard.md"
    md.write_text(markdown(df), encoding="utf-8")
    page = out / "leaderboard.html"
    page.write_text(html_page(df, figures), encoding="utf-8")
    written["markdown"], written["html"] = md, page
    return written
