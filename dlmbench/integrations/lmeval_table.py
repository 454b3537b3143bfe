"""Which lm-eval numbers of a dlmbench model are bounds, and lm-eval's console table with them marked.

For a diffusion model the bridge answers ``loglikelihood`` with ``-(Monte Carlo upper bound on the NLL)``,
a **lower** bound on ``log p``. What that makes of each lm-eval metric (:func:`metric_bound`):

- ``perplexity``, ``word_perplexity``, ``byte_perplexity`` (``exp(-sum ll / count)``) and ``bits_per_byte``
  (``-sum ll / bytes / ln 2``) decrease as the log-likelihood grows, so from a lower bound on ``ll`` they are
  **upper bounds** on the model's true value: the table shows ``<= 12.3456`` (the true value is at most
  that, up to the Monte Carlo error of the bound's estimate). An average of upper bounds (a group's aggregate) is an upper bound too.
- No lm-eval metric is a lower bound (``>=``): that would take a metric that grows with the
  log-likelihood (the log-likelihood itself), and lm-eval reports none.
- An accuracy of choices ranked by their bounds (``acc``, ``acc_norm`` of a multiple-choice task) is
  *not* a bound in either direction: the true-likelihood ranking can be right or wrong on any item where
  the bound ranking is the other. It is the exact accuracy of the bound-ranked decision rule; the table
  marks it with ``*``. Accuracies from the greedy check (LAMBADA ``acc``) and generations
  (``exact_match``) are exact numbers of the family's documented greedy check / sampler: ``= 0.5000``.

The legend under the table says so; for every dlmbench model the table is followed by the prefix rule
(:mod:`dlmbench.integrations.lmeval_protocol`). An AR model's numbers are exact and unmarked.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

LIKELIHOOD_METRICS = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")
UPPER_MARK = "<= "
EXACT_MARK = "= "
RANKED_MARK = " *"
LEGEND_UPPER = ("<= : upper bound: computed from Monte Carlo estimates of an upper bound on the NLL (a lower bound on "
                "log p);\n     the model's exact value is at most this, up to Monte Carlo error")
LEGEND_EXACT = "=  : exact (the greedy check or generations of the model's family); no bound involved"
LEGEND_RANKED = ("*  : accuracy of choices ranked by their likelihood bounds: exact for that decision rule, not a "
                 "bound\n     on the exact-likelihood accuracy (in either direction)")


def metric_bound(model_bound: str, output_type: str | None, metric: str) -> tuple[str, str]:
    """``(bound, score_basis)`` of an lm-eval metric for a model whose NLLs are ``model_bound``.

    ``bound``: ``upper`` (the value is an upper bound on the model's true value) or ``exact``;
    ``score_basis``: what the number is computed from."""
    if output_type == "generate_until":
        return "exact", "generation"
    if output_type == "loglikelihood" and metric in ("acc", "exact_match"):
        return "exact", "greedy_check"
    if model_bound == "exact":
        return "exact", "exact_loglikelihood"
    if metric in LIKELIHOOD_METRICS:  # a perplexity from NLL upper bounds is itself an upper bound
        return "upper", "nll_upper_bound"
    # an accuracy of choices ranked by their NLL bounds is an exact accuracy of that decision rule, not a
    # bound: labelled exact, with the basis recorded so it is never mistaken for an exact-likelihood ranking
    return "exact", "nll_upper_bound"


def leaf_names(results: Mapping[str, Any], key: str) -> list[str]:
    """The tasks under ``key`` (itself when it is a task), from lm-eval's ``group_subtasks``."""
    subs = (results.get("group_subtasks") or {}).get(key)
    if not subs:
        return [key]
    out: list[str] = []
    for s in subs:
        out += leaf_names(results, s)
    return out


def output_type_of(results: Mapping[str, Any], key: str) -> str | None:
    """The output type shared by every task under ``key`` (None when they differ or are unknown)."""
    configs = results.get("configs") or {}
    types = {(configs.get(t) or {}).get("output_type") for t in leaf_names(results, key)}
    return types.pop() if len(types) == 1 else None


def marked_results(results: Mapping[str, Any], model_bound: str) -> tuple[dict[str, Any], set[str]]:
    """A copy of lm-eval's ``results`` whose values are strings with their marker (``<= 12.3456``, ``0.4000 *``,
    ``= 0.5000``), formatted as lm-eval formats floats (4 decimals); and the markers used. Every value of a
    bound model is marked: the table writer re-formats a number-like cell (``0.5000`` as ``0.5``) depending
    on the other cells of its column, so a column mixing marked and bare numbers would not line up."""
    out = copy.deepcopy(dict(results))
    used: set[str] = set()
    if model_bound == "exact":
        return out, used
    for part in ("results", "groups"):
        for key, vals in (out.get(part) or {}).items():
            otype = output_type_of(out, key)
            for full, value in list(vals.items()):
                metric, sep, _ = full.partition(",")
                if not sep or metric.endswith("_stderr") or not isinstance(value, float):
                    continue
                bound, basis = metric_bound(model_bound, otype, metric)
                if bound == "upper":
                    vals[full] = f"{UPPER_MARK}{value:.4f}"
                    used.add("upper")
                elif basis == "nll_upper_bound":
                    vals[full] = f"{value:.4f}{RANKED_MARK}"
                    used.add("ranked")
                else:
                    vals[full] = f"{EXACT_MARK}{value:.4f}"
                    used.add("exact")
    return out, used


def lm_eval_make_table():
    """lm-eval's own ``make_table`` (while ``dlmbench lm-eval`` runs, ``lm_eval.utils.make_table`` is a wrapper
    that keeps the original as ``lm_eval_original``). Imported here, not at module level: this module is read
    by the ``lmeval`` task type, which must import without lm-eval installed."""
    import lm_eval.utils

    current = lm_eval.utils.make_table
    return getattr(current, "lm_eval_original", current)


def make_table(results: Mapping[str, Any], column: str = "results", sort_results: bool = False) -> str:
    """lm-eval's ``make_table`` with a dlmbench model's bounds marked and a legend; for other models it is
    lm-eval's table unchanged. ``dlmbench lm-eval`` prints this one."""
    base = lm_eval_make_table()
    cfg = results.get("config") or {}
    bound = cfg.get("dlmbench_bound")
    if bound is None:  # not a dlmbench model
        return base(results, column, sort_results)
    marked, used = marked_results(results, bound)
    table = base(marked, column, sort_results)
    if column != "results":
        return table
    notes = []
    if "upper" in used:
        notes.append(LEGEND_UPPER)
    if "ranked" in used:
        notes.append(LEGEND_RANKED)
    if "exact" in used:
        notes.append(LEGEND_EXACT)
    if cfg.get("dlmbench_prefix"):
        notes.append(f"dlmbench {cfg['dlmbench_prefix']}")
    return table + "".join(f"{n}\n" for n in notes)


__all__ = ["LIKELIHOOD_METRICS", "leaf_names", "make_table", "marked_results", "metric_bound", "output_type_of"]
