"""Leaderboard reports from the tidy table: ``leaderboard.md``, a self-contained ``leaderboard.html``,
and PNG/SVG charts beside them (``plots/``).

The report reads only the tidy table (docs/architecture.md). Which run stands for a (model, task, settings,
checkpoint) is decided once, by :func:`dlmbench.report.selection.select_runs` (largest ``n``, a full run over a
limited one, then the newest); every table row shows its ``n`` and ``limit``, and the runs not used are listed
at the end. Bounds are shown with ``≤`` (``≥`` for log-probabilities bounded by them) and every value with its
standard error. The charts are those of :mod:`dlmbench.report.charts`.

The HTML page is static (no server, no network): columns sort on a click on their header, a filter box hides
the rows that do not contain its text, each value's provenance (run, checkpoint, when, code version, data,
settings) is its hover title, and each row links to its run folder by a relative link.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dlmbench.report.charts import Figure, all_charts
from dlmbench.report.selection import select_runs
from dlmbench.report.table import format_value
from dlmbench.store import checkpoint_identity, run_folder

__all__ = ["Figure", "markdown", "html_page", "plots", "write_report", "task_tables"]

_SKIP_SETTING_KEYS = {"limit", "task_settings", "n_requests", "n_tokens", "n_bytes", "n_examples", "n_params"}


def _prepare(df, policy: str = "largest_n"):
    """(rows of the chosen runs with a ``_settings_key`` column, the unused runs)."""
    chosen, unused = select_runs(df, policy)
    if not chosen.empty:
        chosen = chosen.copy()
        chosen["_settings_key"] = chosen["settings"].map(lambda s: json.dumps(_flat_settings(s), sort_keys=True, default=str))
    return chosen, unused


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


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _short_settings(skey: str) -> str:
    """The settings a reader needs to compare rows; a task's own sampler settings (``sampler.KEY``, e.g. the
    reasoning tasks' greedy decoding) take precedence over the model card's defaults of the same name."""
    s = json.loads(skey)
    keep = {}
    for k in ("steps", "sampler", "mc_samples", "precision", "stride", "time_sampling", "t_estimator", "greedy_method", "top_p", "temperature",
              "topk_strategy", "threshold", "factor", "cache"):
        if f"sampler.{k}" in s:
            keep[k] = s[f"sampler.{k}"]
        elif k in s:
            keep[k] = s[k]
    if keep.get("sampler") != "topk":
        keep.pop("topk_strategy", None)  # the top-k decoding's option, a default everywhere else
    if keep.get("cache") in ("none", False, True):
        keep.pop("cache")  # Fast-dLLM's key/value cache names itself; "none" and MDLM's exact ddpm_cache flag are defaults
    return ", ".join(f"{k}={v}" for k, v in sorted(keep.items()) if v is not None)


def _metrics_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if not k.startswith("_") and k not in ("model", "family", "seed", "settings", "n", "limit"):
                seen[k] = None
    return list(seen)


def _limit_text(v) -> str:
    """``full`` for a run without ``--limit``, else the limit."""
    if v is None or str(v) in ("<NA>", "nan", "None"):
        return "full"
    return str(int(v))


def _provenance(r: dict[str, Any]) -> str:
    """The hover text of one value: where the number comes from."""
    dur = _nan_none(r.get("duration_s"))
    extra = {k: v for k, v in (r.get("settings") or {}).items() if k in ("verifier", "direction", "file", "planning_distance")}
    lim = _limit_text(r.get("limit"))
    parts = [
        f"{r['metric']} = {r['value']!r} ± {_nan_none(r['stderr'])!r} (bound: {r['bound']}), n={r['n']}, "
        + ("full run" if lim == "full" else f"--limit {lim}"),
        f"run {r['run_id']} · seed {r['seed']}",
        f"checkpoint {checkpoint_identity(r)}",
        f"data {r.get('dataset')} · split {r.get('split')}",
        f"started {r.get('started_at')}" + (f" · {dur:.1f} s" if dur is not None else "") + f" · {r.get('device')}",
        f"dlmbench {r.get('dlmbench_version')} · git {str(r.get('git_commit'))[:12]} · torch {r.get('torch_version')}",
    ]
    if extra:
        parts.append(", ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(parts)


def task_tables(df) -> dict[str, list[dict[str, Any]]]:
    """Per task: rows of ``{model, family, <metric>: formatted value, n, limit, settings, ...}`` (keys starting
    with ``_`` hold raw values, the run id and each value's provenance), best first by the task's first metric.
    ``df`` holds the chosen runs with their ``_settings_key`` (see :func:`_prepare`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for task, tdf in df.groupby("task", sort=True):
        metrics = list(dict.fromkeys(tdf["metric"]))
        rows = []
        # one table row per run: metrics of one run may carry their own settings (e.g. the reversal task's
        # direction and file), which must not split the run over several rows
        for (model, family, run_id, seed), mdf in tdf.groupby(["model", "family", "run_id", "seed"], sort=False):
            first = mdf.iloc[0]
            row: dict[str, Any] = {"model": model, "family": family, "seed": seed,
                                   "settings": _short_settings(first["_settings_key"]), "_run_id": run_id, "_task": task}
            for rec in mdf.to_dict("records"):
                m = rec["metric"]
                row[m] = format_value(rec["value"], _nan_none(rec["stderr"]), rec["bound"], bool(rec["higher_is_better"]))
                row[f"_{m}"] = rec["value"]
                row["_hib_" + m] = bool(rec["higher_is_better"])
                row["_prov_" + m] = _provenance(rec)
            row["n"] = int(mdf["n"].max())
            row["limit"] = _limit_text(first.get("limit"))
            rows.append(row)
        primary = metrics[0]
        hib = bool(tdf[tdf["metric"] == primary]["higher_is_better"].iloc[0])
        rows.sort(key=lambda r: (r.get(f"_{primary}") is None, -(r.get(f"_{primary}") or 0) if hib else (r.get(f"_{primary}") or 0)))
        out[str(task)] = rows
    return out


def _unused_lines(unused) -> list[tuple[dict[str, Any], str]]:
    out = []
    for u in unused.sort_values(["model", "task", "started_at"]).to_dict("records"):
        out.append((u, f"{u['model']} · {u['task']} · run {u['run_id']} (n={u['n']}, limit {_limit_text(u['limit'])}, "
                       f"started {u['started_at']}): shown instead run {u['used_run_id']} (n={u['used_n']}, "
                       f"limit {_limit_text(u['used_limit'])})"))
    return out


def markdown(df, policy: str = "largest_n") -> str:
    """The leaderboard as Markdown: one table per task (the chosen runs, with n and limit), then the runs not
    shown."""
    df, unused = _prepare(df, policy)
    lines = ["# dlmbench leaderboard", ""]
    if df.empty:
        return "\n".join(lines + ["No results yet."]) + "\n"
    lines.append(_NOTE_MD)
    lines.append("")
    for task, rows in task_tables(df).items():
        metrics = _metrics_of(rows)
        lines += [f"## {task}", "", "| model | family | " + " | ".join(metrics) + " | n | limit | settings |",
                  "|" + "---|" * (len(metrics) + 5)]
        for r in rows:
            lines.append(f"| {r['model']} | {r['family']} | " + " | ".join(r.get(m, "") for m in metrics)
                         + f" | {r['n']} | {r['limit']} | {r['settings']} |")
        lines.append("")
    if not unused.empty:
        lines += ["## Runs not shown", "", "Each superseded by a run of the same model, task, settings and checkpoint "
                  "with a larger n (at equal n: a full run, then the newest).", ""]
        lines += [f"- {text}" for _, text in _unused_lines(unused)]
        lines.append("")
    commits = sorted(set(df["git_commit"]))
    lines.append(f"_Generated from {len(df)} rows; dlmbench git {', '.join(c[:12] for c in commits)}._")
    return "\n".join(lines) + "\n"


_NOTE_MD = ("Values are mean ± standard error; `≤` marks Monte Carlo upper bounds on the NLL (diffusion models), `≥` "
            "log-probabilities bounded below by them. One row per run: for each model, task, settings and checkpoint, "
            "the run with the largest n (at equal n a full run over a `--limit` one, then the newest).")


def _settings_labeller(df):
    keys = dict(zip(df["run_id"], df["_settings_key"]))
    return lambda run_id: _short_settings(keys.get(run_id, "{}"))


def plots(df, policy: str = "largest_n") -> list[Figure]:
    """The charts of :mod:`dlmbench.report.charts` for the chosen runs of ``df``."""
    chosen, _ = _prepare(df, policy)
    if chosen.empty:
        return []
    return all_charts(chosen, _settings_labeller(chosen))


# -- HTML ---------------------------------------------------------------------------------------

_JS = """
function cellValue(row, col) {
  var c = row.cells[col];
  return c.getAttribute('data-v') !== null ? c.getAttribute('data-v') : c.textContent;
}
function sortBy(th) {
  var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  var rows = Array.prototype.slice.call(body.rows);
  var asc = th.getAttribute('data-order') !== 'asc';
  table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
  th.setAttribute('data-order', asc ? 'asc' : 'desc');
  rows.sort(function (a, b) {
    var x = cellValue(a, col), y = cellValue(b, col);
    var nx = parseFloat(x), ny = parseFloat(y);
    var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
}
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () { sortBy(th); });
});
function applyFilter(text) {
  var words = text.toLowerCase().split(/\\s+/).filter(function (w) { return w; });
  document.querySelectorAll('table.sortable tbody tr').forEach(function (tr) {
    var t = tr.textContent.toLowerCase();
    tr.style.display = words.every(function (w) { return t.indexOf(w) >= 0; }) ? '' : 'none';
  });
}
var box = document.getElementById('filter');
box.addEventListener('input', function () { applyFilter(box.value); });
document.querySelectorAll('td.v').forEach(function (td) {
  td.addEventListener('click', function () {
    var p = document.getElementById('prov');
    p.textContent = td.getAttribute('title');
    p.style.display = 'block';
  });
});
// test hook and shareable views: #sort=COLUMN[:desc] clicks that header of every table; #filter=TEXT filters
(function () {
  var h = decodeURIComponent(location.hash.replace(/^#/, ''));
  h.split('&').forEach(function (kv) {
    var i = kv.indexOf('='), k = kv.slice(0, i), v = kv.slice(i + 1);
    if (k === 'sort') {
      var parts = v.split(':');
      document.querySelectorAll('table.sortable th[data-col]').forEach(function (th) {
        if (th.getAttribute('data-col') === parts[0]) {
          th.click();
          if (parts[1] === 'desc') { th.click(); }
        }
      });
    } else if (k === 'filter') { box.value = v; applyFilter(v); }
  });
})();
"""

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}
td:first-child{white-space:nowrap}td.s{font-size:.8em;color:#444;max-width:28em}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:.92em}
th{background:#f3f3f3;cursor:pointer;user-select:none}th[data-order=asc]::after{content:" ▲"}th[data-order=desc]::after{content:" ▼"}
td.v{cursor:help;white-space:nowrap}td.v.bound{color:#a04000}
.note{color:#555;font-size:.9em}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
#filter{font-size:1em;padding:4px 8px;width:22em}
#prov{display:none;white-space:pre-wrap;background:#fffbe6;border:1px solid #e6d9a0;padding:.5em;font-size:.85em;position:sticky;top:0}
.toc a{margin-right:1em}
"""


def _rel(target: Path, start: Path) -> str:
    """A relative URL from the folder ``start`` to ``target`` (forward slashes)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def html_page(df, figures: Iterable[Figure], *, results_root: str | Path | None = None, dest: str | Path | None = None,
              policy: str = "largest_n") -> str:
    """The leaderboard as one static HTML page (charts embedded as PNG, linked as SVG under ``plots/``).

    With ``results_root`` and ``dest`` (the folder the page is written to) each row links to its run folder
    by a relative URL, so the page works wherever the two folders are moved together."""
    df, unused = _prepare(df, policy)
    figures = list(figures)
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dlmbench leaderboard</title>",
        f"<style>{_CSS}</style></head><body><h1>dlmbench leaderboard</h1>",
        "<p class='note'>Values are mean ± standard error; <b>≤</b> marks Monte Carlo upper bounds on the NLL (diffusion "
        "models), <b>≥</b> log-probabilities bounded below by them. One row per run: for each model, task, settings and "
        "checkpoint, the run with the largest n (at equal n a full run, then the newest); runs not shown are listed "
        "at the end. Click a column header to sort; hover a value (or click it) for its provenance.</p>",
        "<p><input id='filter' type='search' placeholder='filter rows (model, family, settings…)' aria-label='filter'></p>",
        "<div id='prov'></div>",
    ]
    if df.empty:
        parts.append("<p>No results yet.</p>")
    else:
        tables = task_tables(df)
        parts.append("<p class='toc'>" + "".join(f"<a href='#task-{e(t)}'>{e(t)}</a>" for t in tables)
                     + ("<a href='#charts'>charts</a>" if figures else "") + "</p>")
        for task, rows in tables.items():
            metrics = _metrics_of(rows)
            cols = ["model", "family", *metrics, "n", "limit", "settings", "run"]
            parts.append(f"<h2 id='task-{e(task)}'>{e(task)}</h2><table class='sortable'><thead><tr>")
            parts += [f"<th data-col='{e(c)}'>{e(c)}</th>" for c in cols]
            parts.append("</tr></thead><tbody>")
            for r in rows:
                cells = [f"<td>{e(str(r['model']))}</td><td>{e(str(r['family']))}</td>"]
                for m in metrics:
                    raw = r.get(f"_{m}")
                    if raw is None:
                        cells.append("<td data-v=''></td>")
                        continue
                    cls = "v bound" if r.get(m, "")[:1] in "≤≥" else "v"
                    cells.append(f"<td class='{cls}' data-v='{raw}' title='{e(r['_prov_' + m])}'>{e(r.get(m, ''))}</td>")
                lim = r["limit"]
                cells.append(f"<td data-v='{r['n']}'>{r['n']}</td><td data-v='{'' if lim == 'full' else lim}'>{e(lim)}</td>"
                             f"<td class='s'>{e(r['settings'])}</td>")
                if results_root is not None and dest is not None:
                    href = _rel(run_folder(Path(results_root), str(r["model"]), str(r["_task"]), str(r["_run_id"])), Path(dest))
                    cells.append(f"<td><a href='{e(href)}/' title='{e(str(r['_run_id']))}'>{e(str(r['_run_id'])[:8])}</a></td>")
                else:
                    cells.append(f"<td>{e(str(r['_run_id']))}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    if figures:
        parts.append("<h2 id='charts'>Charts</h2>")
    for fig in figures:
        b64 = base64.b64encode(fig.png).decode()
        parts.append(f"<h3>{e(fig.title)}</h3><img alt='{e(fig.title)}' src='data:image/png;base64,{b64}'>"
                     f"<p class='note'><a href='plots/{e(fig.name)}.svg'>SVG</a> · <a href='plots/{e(fig.name)}.png'>PNG</a></p>")
    if not unused.empty:
        parts.append("<h2 id='unused'>Runs not shown</h2><p class='note'>Each superseded by a run of the same model, task, "
                     "settings and checkpoint with a larger n (at equal n: a full run, then the newest).</p><ul>")
        for u, text in _unused_lines(unused):
            if results_root is not None and dest is not None:
                href = _rel(run_folder(Path(results_root), str(u["model"]), str(u["task"]), str(u["run_id"])), Path(dest))
                parts.append(f"<li><a href='{e(href)}/'>{e(text)}</a></li>")
            else:
                parts.append(f"<li>{e(text)}</li>")
        parts.append("</ul>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "".join(parts)


def write_report(df, out_dir: str | Path, results_root: str | Path | None = None, policy: str = "largest_n") -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.html`` and ``plots/*.png|svg`` under ``out_dir`` (PNG/SVG files
    there that are not charts of this report are removed, so no stale chart survives); with
    ``results_root`` the HTML rows link to their run folders. Returns ``{"markdown": path, "html": path}``."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    figures = plots(df, policy)
    for old in (out / "plots").iterdir():  # charts of an earlier report that this table no longer has
        if old.suffix in (".png", ".svg") and old.stem not in {f.name for f in figures}:
            old.unlink()
    for fig in figures:
        (out / "plots" / f"{fig.name}.png").write_bytes(fig.png)
        (out / "plots" / f"{fig.name}.svg").write_text(fig.svg, encoding="utf-8")
    md = out / "leaderboard.md"
    md.write_text(markdown(df, policy), encoding="utf-8")
    page = out / "leaderboard.html"
    page.write_text(html_page(df, figures, results_root=results_root, dest=out, policy=policy), encoding="utf-8")
    return {"markdown": md, "html": page}
