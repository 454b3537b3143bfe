"""Random 3-SAT with n in {5, 7, 9} variables near the threshold (Ye et al. 2024, arXiv 2410.14157).

The reference's data files and string format are not published, so this module defines its own,
written in the 31-token character vocabulary (:mod:`.char_tokenizer`):

- variables x1..x10 are the letters ``a``..``j``; a literal is a letter, negated by a leading ``-``;
- a clause is its three literals concatenated (``"a-cd"`` = x1 OR NOT x3 OR x4); clauses are joined
  by ``,``;
- the target is the assignment of x1..xn as comma-separated bits (``"1,0,1,1,0"``).

The target is ``2n - 1`` characters, so ``target + [EOS]`` is exactly the reference's AR
``max_new_tokens`` (10 / 14 / 18), and every instance fits its ``cutoff_len`` (258 / 285 / 325).

Generator: m = round(4.258 n) clauses, each over 3 distinct variables drawn uniformly, each literal
negated with probability 1/2; redraw until satisfiable, and -- by default (``unique=True``) -- until
the satisfying assignment is unique, because the paper scores SAT by exact match against one target.
With ``unique=False`` the target is the smallest satisfying assignment read as a binary number
(x1 most significant). Satisfiability is decided by enumerating all 2^n assignments.

Verifiers:

- :func:`verify_faithful` -- ``compute_acc``'s generic branch (exact match of the space-split words).
- :func:`verify_strict` -- ``pred`` is n comma-separated bits that satisfy every clause.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from dlmbench.reasoning.layout import write_jsonl

VARIABLES = "abcdefghij"
THRESHOLD_RATIO = 4.258

Clause = tuple[int, int, int]
"""Three signed 1-based variable indices (DIMACS style): ``-3`` = NOT x3."""

_LITERAL = re.compile(r"(-?)([a-j])")


def num_clauses(n: int) -> int:
    """``round(4.258 n)`` (Python's round; 21 / 30 / 38 for n = 5 / 7 / 9)."""
    return round(THRESHOLD_RATIO * n)


def format_clauses(clauses: list[Clause]) -> str:
    return ",".join("".join(("-" if lit < 0 else "") + VARIABLES[abs(lit) - 1] for lit in c) for c in clauses)


def parse_clauses(text: str) -> list[tuple[int, ...]]:
    """Inverse of :func:`format_clauses` (clauses of any width)."""
    clauses = []
    for part in text.split(","):
        lits = _LITERAL.findall(part)
        if not lits or "".join(s + v for s, v in lits) != part:
            raise ValueError(f"not a clause: {part!r}")
        clauses.append(tuple((-1 if s else 1) * (VARIABLES.index(v) + 1) for s, v in lits))
    return clauses


def format_assignment(bits: list[int] | tuple[int, ...]) -> str:
    return ",".join(str(int(b)) for b in bits)


def all_assignments(n: int) -> np.ndarray:
    """``(2^n, n)`` 0/1 matrix; row r is r in binary with x1 the most significant bit."""
    r = np.arange(2**n)[:, None]
    return (r >> np.arange(n - 1, -1, -1)[None, :]) & 1


def satisfying_assignments(clauses: list[Clause], n: int) -> np.ndarray:
    """All satisfying rows of :func:`all_assignments`, in increasing binary order."""
    a = all_assignments(n).astype(bool)
    ok = np.ones(len(a), dtype=bool)
    for clause in clauses:
        sat = np.zeros(len(a), dtype=bool)
        for lit in clause:
            col = a[:, abs(lit) - 1]
            sat |= col if lit > 0 else ~col
        ok &= sat
    return a[ok].astype(np.int64)


def satisfies(clauses: list[tuple[int, ...]], bits: list[int] | tuple[int, ...]) -> bool:
    """Every clause has a true literal under ``bits`` (``bits[i]`` = value of x(i+1))."""
    return all(any((bits[abs(l) - 1] == 1) == (l > 0) for l in c) for c in clauses)


def random_clauses(rng: random.Random, n: int, m: int) -> list[Clause]:
    out = []
    for _ in range(m):
        vars_ = rng.sample(range(1, n + 1), 3)
        out.append(tuple(v if rng.random() < 0.5 else -v for v in vars_))
    return out


def generate(n: int, seed: int, *, variables: int = 9, unique: bool = True) -> list[dict[str, str]]:
    """``n`` distinct satisfiable instances with ``variables`` in {3..10} variables from ``Random(seed)``."""
    if not 3 <= variables <= len(VARIABLES):
        raise ValueError(f"variables must be in 3..{len(VARIABLES)}")
    rng = random.Random(seed)
    m = num_clauses(variables)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < n:
        clauses = random_clauses(rng, variables, m)
        sols = satisfying_assignments(clauses, variables)
        if len(sols) == 0 or (unique and len(sols) != 1):
            continue
        text = format_clauses(clauses)
        if text in seen:
            continue
        seen.add(text)
        out.append({"input": text, "output": format_assignment(sols[0].tolist())})
    return out


def write_split(path: str | Path, n: int, seed: int, **kwargs: Any) -> Path:
    """Write :func:`generate` ``(n, seed, **kwargs)`` to ``path`` as JSONL (``input``, ``output``)."""
    return write_jsonl(path, generate(n, seed, **kwargs))


def verify_faithful(pred: str, example: dict) -> bool:
    """``compute_acc``'s generic branch: space-split word lists, truncated to the label's length."""
    label = example["output"].strip().split(" ")
    return pred.strip().split(" ")[: len(label)] == label


def verify_strict(pred: str, example: dict) -> bool:
    """``pred`` is exactly n comma-separated 0/1 values satisfying every clause of the instance."""
    n = len(example["output"].split(","))
    parts = pred.strip().split(",")
    if len(parts) != n or any(p not in ("0", "1") for p in parts):
        return False
    return satisfies(parse_clauses(example["input"]), [int(p) for p in parts])
