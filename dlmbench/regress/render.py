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


def markdown(report: Report, baseline: str = "baseline", candidate: str = "candidate") -> str:
    """The job-summary table with a one-line verdict, the cannot-compare list, and a legend."""
    st = report.stat
    n_reg = len(report.regressions)
    blocking = report.blocking_problems
    if blocking:
        head = f"⚠️ cannot compare: {len(blocking)} problem{'s' * (len(blocking) != 1)}"
    elif n_reg:
        head = f"❌ {n_reg} regression{'s' * (n_reg != 1)} in {_n(len(report.results), 'metric')}"
    else:
        head = f"✅ no regression in {_n(len(report.results), 'metric')}"
    lines = [
        f"### dlmbench regress: {head}",
        "",
        f"baseline `{baseline}` · candidate `{candidate}` · one-sided tests (candidate worse) at α = {st.alpha:g}, "
        f"{CORRECTION_NAME[st.correction]} correction over {report.n_tests} tested metric{'s' * (report.n_tests != 1)}",
        "",
    ]
    if report.results:
        lines += [
            "| model | task | metric | settings | baseline | candidate | Δ (cand − base) | test | p | p adj. | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report.results:
            verdict = f"{VERDICT[r.verdict]} {VERDICT_WORD[r.verdict]}"
            test = r.test.test if r.test else "not tested"
            if r.note:
                verdict += f" ({r.note})"
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        r.model,
                        r.task,
                        r.metric + (" ↑" if r.higher_is_better else " ↓"),
                        r.settings_label,
                        fmt_value(r.base_value, r.base_se, r.bound, r.higher_is_better),
                        fmt_value(r.cand_value, r.cand_se, r.bound, r.higher_is_better),
                        fmt_diff(r),
                        test,
                        fmt_p(r.test.p if r.test else None),
                        fmt_p(r.p_adj),
                        verdict,
                    )
                )
                + " |"
            )
        lines.append("")
    if report.problems:
        lines.append("**Cannot compare:**" if blocking else "**Not compared (allowed by --allow-missing):**")
        lines.append("")
        for p in report.problems:
            lines.append(f"- {p.kind}: {_cell(p.line())}")
        lines.append("")
    for n in report.notes:
        lines.append(f"_note: {n}_")
    legend = "↓ lower is better, ↑ higher is better. ✅ no significant worsening; ❌ significantly worse and beyond tolerance; ⚠️ not tested or within tolerance."
    if any(r.bound == "upper" for r in report.results):
        legend += " ≤: diffusion likelihoods are Monte Carlo upper bounds (stderr includes the Monte Carlo error)."
    lines.append(legend)
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
