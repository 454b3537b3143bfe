"""How to recompute a metric from the per-request values in ``examples.jsonl`` (pure functions).

A recipe says which per-example columns a metric is made of, how it is aggregated (the same formulas as
:mod:`dlmbench.metrics`), and which fields must agree example by example for a paired comparison to be
meaningful (same request = same text):

===================  ====================  ==========================================  ==========================
task type            metric                formula                                     examples must agree on
===================  ====================  ==========================================  ==========================
perplexity           ``nll_per_token``     ``Σ nll / Σ n_tokens``                      index, doc_index, n_tokens, n_bytes
perplexity           ``perplexity``        ``exp(Σ nll / Σ n_tokens)``                 index, doc_index, n_tokens, n_bytes
perplexity           ``bits_per_byte``     ``Σ nll / (ln 2 · Σ n_bytes)``              index, doc_index, n_tokens, n_bytes
lambada              ``acc``               McNemar on ``correct`` (mean of 0/1)        index, doc_index, target
lambada              ``perplexity``        ``exp(mean nll)`` (lm-eval, per example)    index, doc_index, target
===================  ====================  ==========================================  ==========================

(``word_perplexity`` needs per-request word counts, which examples.jsonl does not keep; genppl and
reversal rows are compared from their stderr.) For LAMBADA the continuation's tokens may differ
between tokenizers but the target string is the same, so pairing is on the passage and its target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Recipe:
    """``kind``: ``ratio`` (Σ num / Σ den, then ``transform``), ``mean`` (mean of num, then ``transform``)
    or ``accuracy`` (McNemar on the 0/1 column ``num``)."""

    kind: str
    num: str
    den: str | None
    transform: str  # "identity" | "exp" | "per_ln2"
    identity: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.num,) if self.den is None else (self.num, self.den)

    def statistic(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """The metric over the last axis of the columns (1-D: one value; 2-D: one per replicate)."""
        num = np.asarray(cols[self.num], dtype=np.float64)
        if self.kind == "ratio":
            r = num.sum(axis=-1) / np.asarray(cols[self.den], dtype=np.float64).sum(axis=-1)
        else:  # mean, accuracy
            r = num.mean(axis=-1)
        if self.transform == "exp":
            return np.exp(r)
        if self.transform == "per_ln2":
            return r / LN2
        return r


_PPL_ID = ("doc_index", "n_tokens", "n_bytes")
_LAMBADA_ID = ("doc_index", "target")

RECIPES: dict[tuple[str, str], Recipe] = {
    ("perplexity", "nll_per_token"): Recipe("ratio", "nll", "n_tokens", "identity", _PPL_ID),
    ("perplexity", "perplexity"): Recipe("ratio", "nll", "n_tokens", "exp", _PPL_ID),
    ("perplexity", "bits_per_byte"): Recipe("ratio", "nll", "n_bytes", "per_ln2", _PPL_ID),
    ("lambada", "acc"): Recipe("accuracy", "correct", None, "identity", _LAMBADA_ID),
    ("lambada", "perplexity"): Recipe("mean", "nll", None, "exp", _LAMBADA_ID),
}


def recipe_for(task_type: str | None, metric: str) -> Recipe | None:
    if task_type is None:
        return None
    return RECIPES.get((task_type, metric))


def align(
    recipe: Recipe, base: Sequence[Mapping[str, Any]], cand: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | str:
    """Paired columns ordered by ``index``, or a reason (str) why the two runs are not paired.

    Runs are paired when they hold the same set of request indices and agree, index by index, on every
    identity field the recipe lists that both sides record.
    """
    if not base or not cand:
        return "no per-example values"
    try:
        bi = {int(e["index"]): e for e in base}
        ci = {int(e["index"]): e for e in cand}
    except (KeyError, TypeError, ValueError):
        return "examples without an integer 'index'"
    if len(bi) != len(base) or len(ci) != len(cand):
        return "repeated example indices"
    if set(bi) != set(ci):
        return f"different example sets ({len(bi)} vs {len(ci)} examples, {len(set(bi) ^ set(ci))} not shared)"
    keys = sorted(bi)
    for field in recipe.identity:
        for k in keys:
            eb, ec = bi[k], ci[k]
            if field in eb and field in ec and eb[field] != ec[field]:
                return f"examples differ in {field!r} (first at index {k}: {eb[field]!r} vs {ec[field]!r})"
    out = []
    for side in (bi, ci):
        cols = {}
        for col in recipe.columns:
            vals = [side[k].get(col) for k in keys]
            if any(v is None for v in vals):
                return f"examples lack {col!r}"
            cols[col] = np.asarray(vals, dtype=np.float64)
            if not np.all(np.isfinite(cols[col])):
                return f"non-finite {col!r} in examples"
        out.append(cols)
    return out[0], out[1]


def reproduces(recipe: Recipe, cols: Mapping[str, np.ndarray], value: float, rtol: float = 1e-6) -> bool:
    """Whether the examples give back the row's value (guards against examples of another metric)."""
    got = float(recipe.statistic(cols))
    return math.isfinite(got) and math.isclose(got, float(value), rel_tol=rtol, abs_tol=1e-12)
