"""Countdown (CD3 / CD4 / CD5): reach a target from k numbers with + - * / (Ye et al. 2024, arXiv 2410.14157).

Format (JSONL, one object per line), as in the reference data::

    {"input": "86,28,13,31,96", "output": "86+28=114,31-13=18,114-18=96"}

``input``: the k numbers, then the target (last). ``output``: k-1 comma-separated binary equations,
each combining two numbers still available (inputs or earlier results) and ending at the target.

Generator (the official one is not published; this follows the Stream-of-Search construction, Gandhi
et al. 2024, arXiv 2404.03683): draw k integers uniformly in ``num_range``; repeatedly pick two available numbers at
random and a random operator whose result is a positive integer (``-`` writes the larger number first;
``/`` only when it divides exactly, divisor > 1; ``+``/``*`` write the larger first), until one number
remains; that is the target. Examples whose target is outside ``target_range``, that are duplicates
(same ``input``), or that do not fit the reference's ``cutoff_len``/``max_new_tokens`` are redrawn.

Verifiers:

- :func:`verify_faithful` -- HKUNLP/diffusion-vs-ar ``src/llmtuner/tuner/core/metric.py::compute_acc``
  (``'cd'`` branch + ``check_eq``): every comma-separated piece must split into exactly ``left=right``,
  ``re.match(r'(\\d+)([+\\-*/])(\\d+)', left)`` (a *prefix* match) must succeed and ``eval(left) ==
  float(right)``; and the text after the last ``=`` must equal the label's. It does not check which
  numbers are used. ``eval`` is replaced by :func:`safe_eval`, which computes the same value for every
  string made of the tokenizer's characters (digits, ``*+-/``, ``a``-``j``; ``,``/``=`` are split
  away before): those can only form arithmetic on Python number literals (``4e2``, ``4j``, ``0b1``
  included) or fail.
- :func:`verify_strict` -- exactly k-1 equations ``a op b = r`` (ASCII non-negative integers), each
  operand taken from the multiset of numbers still available (the inputs, then results), each used
  at most once, ``r`` the exact value (``/`` only for exact integer division), the last ``r`` the target.
  k-1 equations consume every input exactly once.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlmbench.reasoning.char_tokenizer import CharTokenizer
from dlmbench.reasoning.layout import LENGTHS, TaskLengths, fits, write_jsonl

# ---------------------------------------------------------------------------------------------------
# A safe evaluator reproducing Python's eval on arithmetic expressions.

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Invert: operator.invert}
MAX_POW_BITS = 100_000
"""``a ** b`` whose result would exceed this many bits is refused (``eval`` would grind on it)."""


class UnsafeExpression(ValueError):
    """The expression is not plain arithmetic on number literals (or is too large to compute)."""


def safe_eval(expr: str) -> int | float | complex:
    """Value of an arithmetic Python expression, as ``eval`` would compute it, without executing code.

    The string is parsed by Python's own parser (``ast.parse(mode="eval")``, which executes nothing),
    so syntax and number literals are exactly Python's; the tree is then evaluated with the same
    Python operators. Only number constants, ``+ - * / // % **`` and unary ``+ - ~`` are allowed; any
    other node raises :class:`UnsafeExpression`. Errors eval would raise (``ZeroDivisionError``,
    ``OverflowError``, ``SyntaxError``) are raised too.
    """
    tree = ast.parse(expr, mode="eval")
    return _eval_node(tree.body)


def _eval_node(node: ast.AST) -> int | float | complex:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        return node.value
    if isinstance(node, ast.BinOp):
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                if max(abs(left), 2).bit_length() * right > MAX_POW_BITS:
                    raise UnsafeExpression("power too large to compute")
            return left**right
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise UnsafeExpression(f"operator {type(node.op).__name__} not allowed")
        return op(left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand))
    raise UnsafeExpression(f"{type(node).__name__} not allowed in an arithmetic expression")


# ---------------------------------------------------------------------------------------------------
# Parsing and verification.

_PAPER_LEFT = re.compile(r"(\d+)([+\-*/])(\d+)")  # used with re.match, i.e. a prefix match, as in check_eq
_STRICT_EQ = re.compile(r"([0-9]+)([+\-*/])([0-9]+)=([0-9]+)")


def parse_input(text: str) -> tuple[list[int], int]:
    """``"a,b,c,T"`` -> ``([a, b, c], T)``."""
    values = [int(v) for v in text.split(",")]
    if len(values) < 2:
        raise ValueError(f"countdown input needs numbers and a target: {text!r}")
    return values[:-1], values[-1]


def _paper_check_eq(left: str, right: str) -> bool:
    """``check_eq`` of the reference: prefix regex, then ``eval(left) == float(right)``."""
    if not _PAPER_LEFT.match(left):
        return False
    return safe_eval(left) == float(right)


def verify_faithful(pred: str, example: dict) -> bool:
    """The paper's Countdown accuracy (``compute_acc``, ``'cd'`` branch), weaknesses included."""
    label: str = example["output"]
    ok = True
    for subeq in pred.split(","):
        try:
            left, right = subeq.split("=")
            ok = ok and _paper_check_eq(left, right)
        except Exception:  # the reference's bare ``except: match = False``
            ok = False
        if not ok:
            break
    return ok and label.split("=")[-1] == pred.split("=")[-1]


def apply_op(a: int, op: str, b: int) -> int | None:
    """Exact integer result of ``a op b``, or ``None`` if it is not a non-negative integer."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a >= b else None
    if op == "/":
        return a // b if b != 0 and a % b == 0 else None
    raise ValueError(f"unknown operator {op!r}")


def verify_strict(pred: str, example: dict) -> bool:
    """Operands are exactly the inputs (each once) plus reused intermediates; exact arithmetic; final = target."""
    numbers, target = parse_input(example["input"])
    equations = pred.split(",")
    if len(equations) != len(numbers) - 1:
        return False
    available = Counter(numbers)
    result = None
    for eq in equations:
        m = _STRICT_EQ.fullmatch(eq)
        if m is None:
            return False
        a, op, b, r = int(m[1]), m[2], int(m[3]), int(m[4])
        for operand in (a, b):
            if available[operand] <= 0:
                return False
            available[operand] -= 1
        result = apply_op(a, op, b)
        if result is None or result != r:
            return False
        available[r] += 1
    return result == target


# ---------------------------------------------------------------------------------------------------
# Generation.


def _random_step(rng: random.Random, pool: list[int]) -> tuple[str, int]:
    """Combine two random numbers of ``pool`` in place; return the equation text and the result."""
    i, j = rng.sample(range(len(pool)), 2)
    x, y = pool[i], pool[j]
    hi, lo = max(x, y), min(x, y)
    ops = ["+", "*"]
    if hi != lo:
        ops.append("-")
    if lo > 1 and hi % lo == 0:
        ops.append("/")
    op = rng.choice(ops)
    r = apply_op(hi, op, lo)
    assert r is not None and r > 0
    for idx in sorted((i, j), reverse=True):
        pool.pop(idx)
    pool.append(r)
    return f"{hi}{op}{lo}={r}", r


def generate_one(
    rng: random.Random, k: int, num_range: tuple[int, int] = (1, 100)
) -> dict[str, str]:
    """One CDk example (no target-range or length filtering)."""
    numbers = [rng.randint(*num_range) for _ in range(k)]
    pool = list(numbers)
    equations = []
    result = numbers[0]
    while len(pool) > 1:
        eq, result = _random_step(rng, pool)
        equations.append(eq)
    return {"input": ",".join(map(str, numbers + [result])), "output": ",".join(equations)}


def lengths_for(k: int) -> TaskLengths:
    return LENGTHS[f"cd{k}"]


def generate(
    n: int,
    seed: int,
    *,
    k: int = 4,
    num_range: tuple[int, int] = (1, 100),
    target_range: tuple[int, int] = (10, 100),
    fit_lengths: bool = True,
    exclude_inputs: frozenset[str] | set[str] = frozenset(),
) -> list[dict[str, str]]:
    """``n`` distinct CDk examples from ``random.Random(seed)`` (see the module docstring).

    ``exclude_inputs``: inputs that must not appear (e.g. the test split when drawing train).
    """
    if k < 2:
        raise ValueError("countdown needs k >= 2 numbers")
    rng = random.Random(seed)
    tok = CharTokenizer()
    lengths = LENGTHS.get(f"cd{k}")
    seen: set[str] = set(exclude_inputs)
    out: list[dict[str, str]] = []
    while len(out) < n:
        ex = generate_one(rng, k, num_range)
        target = int(ex["input"].rsplit(",", 1)[1])
        if not target_range[0] <= target <= target_range[1] or ex["input"] in seen:
            continue
        if fit_lengths and lengths is not None and not fits(tok, ex["input"], ex["output"], lengths):
            continue
        seen.add(ex["input"])
        out.append(ex)
    return out


def write_split(path: str | Path, n: int, seed: int, **kwargs: Any) -> Path:
    """Write :func:`generate` ``(n, seed, **kwargs)`` to ``path`` as JSONL."""
    return write_jsonl(path, generate(n, seed, **kwargs))
