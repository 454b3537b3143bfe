"""Deciding, metric by metric, whether the candidate regressed (no file I/O here).

For every matched pair of rows (:mod:`.matching`):

1. choose the test: paired when both rows come from run folders whose ``examples.jsonl`` hold the same
   examples and reproduce the rows' values (:mod:`.recipes`) — McNemar exact for accuracies, paired
   bootstrap of the recomputed metric otherwise; else the z-test from the rows' stderr; else (no stderr,
   no examples) the metric is shown but not tested (⚠️);
2. adjust the one-sided p-values for the number of tested metrics (Holm by default, or Bonferroni);
3. a metric regressed (❌) when its adjusted p-value is ≤ α **and** its worsening is larger than the
   tolerance ``max(abs, rel · |baseline|)``; significantly worse but within tolerance is ⚠️.

A broken candidate is always a regression, without a test: a candidate value that is null (how the store
writes NaN), NaN or infinite, and a baseline metric that the candidate's run (same model, task and seed) lacks.
Each is its own row in the table and a failing JUnit testcase, so ``regress`` exits 1 for them.

Tolerances: per metric from the row's ``settings.task_settings.regress.tolerance.<metric>`` (the task
card's ``settings: {regress: {tolerance: {perplexity: {rel: 0.01}}}}``; the candidate's card first, then
the baseline's), else the global ``abs_tol``/``rel_tol``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlmbench.regress import stats
from dlmbench.regress.inputs import Entry
from dlmbench.regress.matching import Options, Pair, Problem, compared_settings, match, select, varying_keys
from dlmbench.regress.recipes import align, recipe_for, reproduces

CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class StatOptions:
    alpha: float = 0.01
    correction: str = "holm"
    abs_tol: float | None = None
    rel_tol: float | None = None
    n_boot: int = 10_000
    max_boot: int = 100_000
    seed: int = 0
    paired: bool = True


@dataclass
class Result:
    """The comparison of one metric."""

    model: str
    task: str
    metric: str
    settings_label: str
    bound: str
    higher_is_better: bool
    base_value: float | None
    base_se: float | None
    cand_value: float | None
    cand_se: float | None
    test: stats.TestResult | None = None
    p_adj: float | None = None
    allowed: float = 0.0
    verdict: str = "warn"  # pass | regression | warn
    note: str = ""

    @property
    def diff(self) -> float | None:
        if self.test is not None:
            return self.test.diff
        if self.base_value is None or self.cand_value is None:
            return None
        return self.cand_value - self.base_value


@dataclass
class Report:
    results: list[Result]
    problems: list[Problem]
    stat: StatOptions
    match: Options
    n_tests: int = 0
    n_boot: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Result]:
        return [r for r in self.results if r.verdict == "regression"]

    @property
    def blocking_problems(self) -> list[Problem]:
        if self.match.allow_missing:
            return [p for p in self.problems if p.kind != "missing"]
        return list(self.problems)

    @property
    def exit_code(self) -> int:
        """2: cannot compare (takes precedence), 1: at least one regression, 0: none."""
        if self.blocking_problems:
            return 2
        return 1 if self.regressions else 0


def compare(baseline: Sequence[Entry], candidate: Sequence[Entry], opts: Options, stat: StatOptions) -> Report:
    """Match rows and decide every metric (module docstring)."""
    if stat.correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}")
    base = select(baseline, opts, "baseline")
    cand = select(candidate, opts, "candidate")
    pairs, problems = match(base, cand, opts)
    lacking = [p for p in problems if p.kind == "lacking"]
    problems = [p for p in problems if p.kind != "lacking"]
    varying = varying_keys(pairs, opts.ignored)
    planned = [_plan(p, stat) for p in pairs]
    n_tests = sum(1 for kind, *_ in planned if kind != "none")
    n_boot = _n_boot(stat, n_tests)
    notes = []
    if n_tests and 1.0 / (n_boot + 1) > _smallest_threshold(stat, n_tests):
        notes.append(
            f"the paired bootstrap's smallest p-value 1/(B+1) with B={n_boot} is above the corrected level; "
            "raise --bootstrap for full power"
        )
    results = []
    for pair, plan in zip(pairs, planned):
        results.append(_decide(pair, plan, stat, n_boot, _label(pair, varying, opts)))
    for p in lacking:
        results.append(_lacking(p))
    tested = [r for r in results if r.test is not None]
    adj = stats.adjust([r.test.p for r in tested], stat.correction)
    for r, pa in zip(tested, adj):
        r.p_adj = pa
        worsening = (1 if not r.higher_is_better else -1) * r.test.diff
        if pa <= stat.alpha:
            if worsening > r.allowed:
                r.verdict = "regression"
            else:
                r.verdict = "warn"
                r.note = _join(r.note, f"significantly worse but within tolerance {r.allowed:.3g}")
        else:
            r.verdict = "pass"
    return Report(results, problems, stat, opts, n_tests, n_boot if any(p[0] == "bootstrap" for p in planned) else 0, notes)


def _smallest_threshold(stat: StatOptions, n_tests: int) -> float:
    return stat.alpha / n_tests if stat.correction != "none" else stat.alpha


def _n_boot(stat: StatOptions, n_tests: int) -> int:
    """Enough resamples that p = 1/(B+1) can pass the smallest corrected threshold five times over."""
    need = math.ceil(5.0 / _smallest_threshold(stat, max(n_tests, 1)))
    return int(min(max(stat.n_boot, need), max(stat.max_boot, stat.n_boot)))


def _plan(pair: Pair, stat: StatOptions) -> tuple[str, Any, Any, Any, str]:
    """``(kind, recipe, base_cols, cand_cols, note)`` with kind mcnemar | bootstrap | z | none."""
    b, c = pair.base.row, pair.cand.row
    note = ""
    if _num(b.get("value")) is None or _num(c.get("value")) is None:
        return ("none", None, None, None, "no value")
    recipe = recipe_for(pair.base.task_type or pair.cand.task_type, str(b.get("metric")))
    if stat.paired and recipe is not None and pair.base.load_examples and pair.cand.load_examples:
        aligned = align(recipe, pair.base.load_examples(), pair.cand.load_examples())
        if isinstance(aligned, str):
            note = f"not paired: {aligned}"
        else:
            cb, cc = aligned
            if not (reproduces(recipe, cb, b["value"]) and reproduces(recipe, cc, c["value"])):
                note = "not paired: examples do not reproduce the row values"
            elif len(next(iter(cb.values()))) < 2:
                note = "not paired: fewer than two examples"
            else:
                return ("mcnemar" if recipe.kind == "accuracy" else "bootstrap", recipe, cb, cc, "")
    se_b, se_c = _num(b.get("stderr")), _num(c.get("stderr"))
    if se_b is not None and se_c is not None:
        return ("z", None, None, None, note)
    return ("none", None, None, None, _join(note, "no stderr: not tested"))


def _decide(pair: Pair, plan: tuple, stat: StatOptions, n_boot: int, label: str) -> Result:
    b, c = pair.base.row, pair.cand.row
    kind, recipe, cb, cc, note = plan
    hib = bool(b.get("higher_is_better"))
    s = -1 if hib else 1
    metric = str(b.get("metric"))
    tol = _tolerance(pair, metric)
    abs_tol = tol.get("abs", stat.abs_tol)
    rel_tol = tol.get("rel", stat.rel_tol)
    bv = _num(b.get("value"))
    res = Result(
        model=_model_label(b, c),
        task=str(b.get("task")),
        metric=metric,
        settings_label=label,
        bound=str(b.get("bound") or "exact"),
        higher_is_better=hib,
        base_value=bv,
        base_se=_num(b.get("stderr")),
        cand_value=_num(c.get("value")),
        cand_se=_num(c.get("stderr")),
        allowed=stats.allowed_worsening(bv, abs_tol, rel_tol) if bv is not None else 0.0,
        note=note,
    )
    if res.cand_value is None:
        raw = c.get("value")
        what = "null (not a finite number; NaN is stored as null)" if raw is None else f"{raw!r} (not a finite number)"
        res.verdict = "regression"
        res.note = _join(note if note != "no value" else "", f"candidate value is {what}")
        return res
    if kind == "mcnemar":
        res.test = stats.mcnemar_exact_worse(cb[recipe.num] > 0.5, cc[recipe.num] > 0.5, s)
        res.test = stats.TestResult(
            f"McNemar exact (n={len(cb[recipe.num])})", res.test.diff, res.test.se, res.test.p, None, res.test.detail
        )
    elif kind == "bootstrap":
        rng = np.random.default_rng([stat.seed, zlib.crc32(f"{b.get('run_id')}|{c.get('run_id')}".encode())])
        bs = stats.paired_bootstrap(recipe.statistic, cb, cc, worse_sign=s, n_boot=n_boot, rng=rng, ci_level=1 - stat.alpha)
        res.test = stats.TestResult(
            f"paired bootstrap (n={len(cb[recipe.num])})", bs.diff, bs.se, bs.p, bs.ci, f"B={bs.n_boot}"
        )
    elif kind == "z":
        res.test = stats.z_test_worse(res.base_value, res.base_se, res.cand_value, res.cand_se, s)
    return res


def _lacking(problem: Problem) -> Result:
    """A baseline metric the candidate's run does not report: a regression (module docstring)."""
    b = problem.entry.row
    return Result(
        model=str(b.get("model")),
        task=str(b.get("task")),
        metric=str(b.get("metric")),
        settings_label="",
        bound=str(b.get("bound") or "exact"),
        higher_is_better=bool(b.get("higher_is_better")),
        base_value=_num(b.get("value")),
        base_se=_num(b.get("stderr")),
        cand_value=None,
        cand_se=None,
        verdict="regression",
        note=f"missing from the candidate: {problem.message}",
    )


def _tolerance(pair: Pair, metric: str) -> dict[str, float]:
    """``task_settings.regress.tolerance.<metric>`` of the candidate row, else of the baseline row."""
    for row in (pair.cand.row, pair.base.row):
        ts = (row.get("settings") or {}).get("task_settings") or {}
        tol = ((ts.get("regress") or {}).get("tolerance") or {}).get(metric)
        if isinstance(tol, Mapping):
            return {k: float(v) for k, v in tol.items() if k in ("abs", "rel") and v is not None}
    return {}


def _label(pair: Pair, varying: Mapping[tuple[str, str], list[str]], opts: Options) -> str:
    keys = varying.get((str(pair.base.row.get("model")), str(pair.base.row.get("task"))), [])
    if not keys:
        return ""
    s = compared_settings(pair.base.row, opts.ignored)
    return ", ".join(f"{k}={s.get(k, '(absent)')}" for k in keys)


def _model_label(b: Mapping[str, Any], c: Mapping[str, Any]) -> str:
    mb, mc = str(b.get("model")), str(c.get("model"))
    return mb if mb == mc else f"{mc} vs {mb}"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
