"""Rendering a :class:`~.compare.Report`: a markdown table (GitHub job summary) and JUnit XML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from dlmbench.regress.compare import Report, Result

VERDICT = {"pass": "✅", "regression": "❌", "warn": "⚠️"}
VERDICT_WORD = {"pass": "pass", "regression": "regression", "warn": "warning"}
CORRECTION_NAME = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "no"}


def fmt_value(v: float | None, se: float | None, bound: str, higher_is_better: bool = False) -> str:
    """``≤ 35.12 ± 0.21`` for an upper bound (``≥`` for a log-probability from one), ``0.4599 ± 0.0069`` for
    an exact value."""
    if v is None:
        return "—"
    s = f"{v:.4g}"
    if se is not None and math.isfinite(se):
        s += f" ± {se:.2g}"
    from dlmbench.report.table import bound_marker

    return bound_marker(bound, higher_is_better) + s


def fmt_diff(r: Result) -> str:
    d = r.diff
    if d is None:
        return "—"
    s = f"{d:+.3g}"
    se = r.test.se if r.test is not None else None
    if se is not None and math.isfinite(se):
        s += f" ± {se:.2g}"
    return s


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'s' * (k != 1)}"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


#: the widest line :func:`markdown` aims for (a PR comment, a job summary)
MARKDOWN_WIDTH = 100

_COLUMNS = ["model", "task", "metric", "setting", "baseline", "candidate", "Δ", "p adj.", "verdict"]


def _row(r: Result) -> list[str]:
    note = r.note.replace("no stderr: not tested", "no stderr")  # "—" under p adj. says it was not tested
    if r.verdict == "regression":  # always said in words, with why where there is a note
        verdict = f"{VERDICT[r.verdict]} regression" + (f": {note}" if note else "")
    else:
        verdict = VERDICT[r.verdict] + (f" {note}" if note else ("" if r.verdict == "pass" else f" {VERDICT_WORD[r.verdict]}"))
    return [
        r.model,
        r.task,
        r.metric + (" ↑" if r.higher_is_better else " ↓"),
        r.settings_label or "",
        fmt_value(r.base_value, r.base_se, r.bound, r.higher_is_better),
        fmt_value(r.cand_value, r.cand_se, r.bound, r.higher_is_better),
        "—" if r.diff is None else f"{r.diff:+.3g}",  # its stderr is in the test behind p adj.
        fmt_p(r.p_adj) if r.test is not None else "—",
        verdict,
    ]


def _table(results: list[Result]) -> list[str]:
    """Markdown tables of ``results``, one per task (its name above it, so rows need no task column); the
    ``setting`` column only where some row needs it."""
    out: list[str] = []
    tasks = list(dict.fromkeys(r.task for r in results))
    for task in tasks:
        rows = [_row(r) for r in results if r.task == task]
        keep = [i for i, c in enumerate(_COLUMNS) if c != "task" and (c != "setting" or any(row[i] for row in rows))]
        out += [f"task `{_cell(task)}`", ""]
        out += ["| " + " | ".join(_COLUMNS[i] for i in keep) + " |", "|" + "---|" * len(keep)]
        out += ["| " + " | ".join(_cell(row[i]) for i in keep) + " |" for row in rows]
        tests: dict[str, list[str]] = {}
        for r in results:
            if r.task == task and r.test is not None:
                tests.setdefault(r.test.test, [])
                if r.metric not in tests[r.test.test]:
                    tests[r.test.test].append(r.metric)
        if tests:
            out += ["", "tests: " + "; ".join(f"{', '.join(ms)}: {t}" for t, ms in tests.items())]
        out.append("")
    return out[:-1]


def markdown(report: Report, baseline: str = "baseline", candidate: str = "candidate") -> str:
    """A PR comment / job summary: a one-line verdict, the regressions first (their own table), every compared
    metric in a collapsed ``<details>`` section, the cannot-compare list, and a legend.

    Lines stay within :data:`MARKDOWN_WIDTH` columns where the names allow: a row shows only the settings
    that tell it apart from the other rows of its model and task (e.g. ``steps=64``), never the full settings."""
    st = report.stat
    regressions = [r for r in report.results if r.verdict == "regression"]
    blocking = report.blocking_problems
    if blocking:
        head = f"⚠️ cannot compare: {len(blocking)} problem{'s' * (len(blocking) != 1)}"
    elif regressions:
        head = f"❌ {_n(len(regressions), 'regression')} in {_n(len(report.results), 'metric')}"
    else:
        head = f"✅ no regression in {_n(len(report.results), 'metric')}"
    lines = [
        f"### dlmbench regress: {head}",
        "",
        f"baseline `{baseline}`  ",
        f"candidate `{candidate}`  ",
        f"one-sided tests (candidate worse), α = {st.alpha:g}, {CORRECTION_NAME[st.correction]} correction over "
        f"{_n(report.n_tests, 'tested metric')}",
        "",
    ]
    if regressions:
        lines += ["**Regressions**", ""] + _table(regressions) + [""]
    if report.results:
        lines += [f"<details><summary>All {_n(len(report.results), 'compared metric')}</summary>", ""]
        lines += _table(report.results) + ["", "</details>", ""]
    if report.problems:
        lines.append("**Cannot compare:**" if blocking else "**Not compared (allowed by --allow-missing):**")
        lines.append("")
        for p in report.problems:
            lines.append(f"- {p.kind}: {_cell(p.line())}")
        lines.append("")
    for n in report.notes:
        lines.append(f"_note: {n}_")
    legend = ["↓ lower is better, ↑ higher is better. ✅ no significant worsening; ❌ significantly worse and",
              "beyond tolerance; ⚠️ not tested or within tolerance. Δ = candidate − baseline."]
    if any(r.bound == "upper" for r in report.results):
        legend.append("≤: diffusion likelihoods are Monte Carlo upper bounds (stderr includes the Monte Carlo error).")
    lines += legend
    return "\n".join(lines) + "\n"


def junit_xml(report: Report, suite_name: str = "dlmbench regress") -> str:
    """JUnit XML: one testcase per compared metric (failure = regression, skipped = not tested) and one
    errored testcase per cannot-compare problem."""
    blocking = {id(p) for p in report.blocking_problems}
    n_fail = len(report.regressions)
    n_err = len(blocking)
    n_skip = sum(1 for r in report.results if r.test is None and r.verdict != "regression") + len(report.problems) - n_err
    suites = ET.Element("testsuites", name=suite_name)
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        tests=str(len(report.results) + len(report.problems)),
        failures=str(n_fail),
        errors=str(n_err),
        skipped=str(n_skip),
    )
    for r in report.results:
        name = r.metric + (f" [{r.settings_label}]" if r.settings_label else "")
        tc = ET.SubElement(suite, "testcase", classname=f"regress.{r.model}.{r.task}", name=name)
        detail = (
            f"baseline {fmt_value(r.base_value, r.base_se, r.bound, r.higher_is_better)}, candidate {fmt_value(r.cand_value, r.cand_se, r.bound, r.higher_is_better)}, "
            f"diff {fmt_diff(r)}, {r.test.test if r.test else 'not tested'}, p {fmt_p(r.test.p if r.test else None)}, "
            f"adjusted p {fmt_p(r.p_adj)}, tolerance {r.allowed:.3g}" + (f"; {r.note}" if r.note else "")
        )
        if r.verdict == "regression":
            ET.SubElement(tc, "failure", message=f"{r.metric} regressed", type="regression").text = detail
        elif r.test is None:
            ET.SubElement(tc, "skipped", message=r.note or "not tested")
        else:
            ET.SubElement(tc, "system-out").text = detail
    for p in report.problems:
        tc = ET.SubElement(suite, "testcase", classname="regress.compare", name=p.where)
        if id(p) in blocking:
            ET.SubElement(tc, "error", message=p.message, type=p.kind).text = p.line()
        else:
            ET.SubElement(tc, "skipped", message=p.message)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
