"""Sudoku: 9x9 grids as 81-character row-major digit strings, ``0`` = blank (Ye et al. 2024, arXiv 2410.14157).

Format (CSV in the reference; JSONL rows here with the same column names)::

    {"quizzes": "0043002090050...", "solutions": "8643712593258..."}

Generator: a random complete grid (randomised backtracking), then clues are removed one at a time
in random order, keeping a removal only if the puzzle still has exactly one solution
(:func:`count_solutions` with limit 2), until ``min_clues`` clues remain or no clue can be removed.
The default ``min_clues=17`` therefore yields *minimal* puzzles (typically 22-27 clues).

Verifiers:

- :func:`verify_faithful` -- ``compute_acc``'s generic branch of HKUNLP/diffusion-vs-ar
  (``metric.py``): ``pred.strip().split(' ')[:len(label_words)] == label.strip().split(' ')``, i.e.
  whole-string equality for unspaced strings, but anything after a space in ``pred`` is ignored.
- :func:`verify_strict` -- ``pred`` (surrounding whitespace stripped) is 81 digits 1-9 forming a valid
  grid (every row, column and 3x3 box a permutation of 1..9) that agrees with every clue.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from dlmbench.reasoning.layout import write_jsonl

ALL = 0x3FE  # bits 1..9


def _box(i: int) -> int:
    return (i // 27) * 3 + (i % 9) // 3


def parse_grid(s: str) -> list[int]:
    """81-char digit string -> list of 81 ints (0 = blank)."""
    if len(s) != 81 or not all(c in "0123456789" for c in s):
        raise ValueError("a sudoku grid is 81 characters 0-9")
    return [int(c) for c in s]


def grid_to_str(grid: list[int]) -> str:
    return "".join(str(v) for v in grid)


class _State:
    """Row/column/box digit masks of a partially filled grid (bit d set = digit d used)."""

    def __init__(self, grid: list[int]):
        self.grid = list(grid)
        self.rows = [0] * 9
        self.cols = [0] * 9
        self.boxes = [0] * 9
        self.consistent = True
        for i, v in enumerate(self.grid):
            if v:
                bit = 1 << v
                r, c, b = i // 9, i % 9, _box(i)
                if (self.rows[r] | self.cols[c] | self.boxes[b]) & bit:
                    self.consistent = False
                self.rows[r] |= bit
                self.cols[c] |= bit
                self.boxes[b] |= bit

    def candidates(self, i: int) -> int:
        return ALL & ~(self.rows[i // 9] | self.cols[i % 9] | self.boxes[_box(i)])

    def place(self, i: int, v: int) -> None:
        bit = 1 << v
        self.grid[i] = v
        self.rows[i // 9] |= bit
        self.cols[i % 9] |= bit
        self.boxes[_box(i)] |= bit

    def unplace(self, i: int, v: int) -> None:
        bit = ~(1 << v)
        self.grid[i] = 0
        self.rows[i // 9] &= bit
        self.cols[i % 9] &= bit
        self.boxes[_box(i)] &= bit

    def most_constrained(self) -> tuple[int, int]:
        """(cell, candidate mask) of the empty cell with fewest candidates; (-1, 0) when full."""
        best, best_mask, best_n = -1, 0, 10
        for i, v in enumerate(self.grid):
            if v == 0:
                m = self.candidates(i)
                n = bin(m).count("1")
                if n < best_n:
                    best, best_mask, best_n = i, m, n
                    if n <= 1:
                        break
        return best, best_mask


def _search(st: _State, limit: int, found: list[list[int]], rng: random.Random | None) -> None:
    """Depth-first search with the most-constrained-cell heuristic; stops after ``limit`` solutions."""
    i, mask = st.most_constrained()
    if i < 0:
        found.append(list(st.grid))
        return
    digits = [d for d in range(1, 10) if mask >> d & 1]
    if rng is not None:
        rng.shuffle(digits)
    for d in digits:
        st.place(i, d)
        _search(st, limit, found, rng)
        st.unplace(i, d)
        if len(found) >= limit:
            return


def solutions(grid: list[int] | str, limit: int = 2, rng: random.Random | None = None) -> list[list[int]]:
    """Up to ``limit`` solutions of ``grid`` (empty if the clues already conflict)."""
    g = parse_grid(grid) if isinstance(grid, str) else list(grid)
    st = _State(g)
    if not st.consistent:
        return []
    found: list[list[int]] = []
    _search(st, limit, found, rng)
    return found


def count_solutions(grid: list[int] | str, limit: int = 2) -> int:
    """Number of solutions, counted up to ``limit`` (``limit=2`` decides uniqueness)."""
    return len(solutions(grid, limit))


def random_full_grid(rng: random.Random) -> list[int]:
    """A random complete grid: the empty grid's first solution, digits tried in random order.

    Not uniform over all grids (nothing in the protocol asks for that).
    """
    return solutions([0] * 81, limit=1, rng=rng)[0]


def make_puzzle(rng: random.Random, min_clues: int = 17) -> tuple[str, str]:
    """(quiz, solution) strings with a unique solution (see the module docstring)."""
    solution = random_full_grid(rng)
    quiz = list(solution)
    cells = list(range(81))
    rng.shuffle(cells)
    clues = 81
    for i in cells:
        if clues <= min_clues:
            break
        v, quiz[i] = quiz[i], 0
        if count_solutions(quiz, 2) == 1:
            clues -= 1
        else:
            quiz[i] = v
    return grid_to_str(quiz), grid_to_str(solution)


def generate(n: int, seed: int, *, min_clues: int = 17) -> list[dict[str, str]]:
    """``n`` distinct unique-solution puzzles from ``random.Random(seed)``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < n:
        quiz, sol = make_puzzle(rng, min_clues)
        if quiz in seen:
            continue
        seen.add(quiz)
        out.append({"quizzes": quiz, "solutions": sol})
    return out


def write_split(path: str | Path, n: int, seed: int, **kwargs: Any) -> Path:
    """Write :func:`generate` ``(n, seed, **kwargs)`` to ``path`` as JSONL (``quizzes``, ``solutions``)."""
    return write_jsonl(path, generate(n, seed, **kwargs))


def verify_faithful(pred: str, example: dict) -> bool:
    """``compute_acc``'s generic (Sudoku/SAT) branch: space-split word lists, truncated to the label's length."""
    label = example["solutions"].strip().split(" ")
    return pred.strip().split(" ")[: len(label)] == label


def is_valid_solution(grid: list[int]) -> bool:
    """Every row, column and box holds the digits 1..9 exactly once."""
    full = set(range(1, 10))
    for k in range(9):
        row = {grid[9 * k + c] for c in range(9)}
        col = {grid[9 * r + k] for r in range(9)}
        box = {grid[9 * (3 * (k // 3) + r) + 3 * (k % 3) + c] for r in range(3) for c in range(3)}
        if row != full or col != full or box != full:
            return False
    return True


def verify_strict(pred: str, example: dict) -> bool:
    """A valid complete grid that keeps every clue of ``example["quizzes"]``."""
    p = pred.strip()
    if len(p) != 81 or not all(c in "123456789" for c in p):
        return False
    grid = [int(c) for c in p]
    quiz = example["quizzes"]
    if any(q != "0" and q != c for q, c in zip(quiz, p)):
        return False
    return is_valid_solution(grid)
