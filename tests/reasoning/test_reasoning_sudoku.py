"""Sudoku: unique-solution generator (checked by an independent exact-cover solver), both verifiers."""

import random

import pytest

from dlmbench.reasoning import sudoku as sd
from dlmbench.reasoning.layout import read_jsonl


def exact_cover_count(quiz: str, limit: int = 2) -> int:
    """Independent solution counter: Knuth's Algorithm X on the 324-constraint exact-cover matrix."""
    rows = {}
    for r in range(9):
        for c in range(9):
            for d in range(1, 10):
                b = (r // 3) * 3 + c // 3
                rows[(r, c, d)] = [("cell", r, c), ("row", r, d), ("col", c, d), ("box", b, d)]
    cols = {}
    for key, cs in rows.items():
        for col in cs:
            cols.setdefault(col, set()).add(key)

    def select(key):
        removed = []
        for j in rows[key]:
            for i in cols[j]:
                for k in rows[i]:
                    if k != j:
                        cols[k].remove(i)
            removed.append(cols.pop(j))
        return removed

    def deselect(key, removed):
        for j in reversed(rows[key]):
            cols[j] = removed.pop()
            for i in cols[j]:
                for k in rows[i]:
                    if k != j:
                        cols[k].add(i)

    for idx, ch in enumerate(quiz):
        if ch != "0":
            key = (idx // 9, idx % 9, int(ch))
            if any(j not in cols for j in rows[key]):
                return 0  # conflicting clues
            select(key)

    count = 0

    def search():
        nonlocal count
        if not cols:
            count += 1
            return
        col = min(cols, key=lambda j: len(cols[j]))
        for key in list(cols[col]):
            removed = select(key)
            search()
            deselect(key, removed)
            if count >= limit:
                return

    search()
    return count


@pytest.fixture(scope="module")
def puzzles():
    return sd.generate(4, seed=2024)


def test_generated_puzzles_have_exactly_one_solution(puzzles):
    for ex in puzzles:
        q, s = ex["quizzes"], ex["solutions"]
        assert len(q) == len(s) == 81
        assert sd.count_solutions(q) == 1
        assert exact_cover_count(q) == 1
        assert all(a == "0" or a == b for a, b in zip(q, s))
        assert sd.verify_strict(s, ex) and sd.verify_faithful(s, ex)
        assert 17 <= 81 - q.count("0") <= 35  # minimal puzzles are sparse


def test_removal_is_greedy_minimal(puzzles):
    # with min_clues=17 every remaining clue is needed: removing any one gives >= 2 solutions
    q = puzzles[0]["quizzes"]
    for i, ch in enumerate(q):
        if ch != "0":
            assert exact_cover_count(q[:i] + "0" + q[i + 1 :]) == 2


def test_solver_counts_on_known_cases(puzzles):
    full = puzzles[0]["solutions"]
    assert sd.count_solutions(full) == 1 == exact_cover_count(full)
    assert sd.count_solutions("0" * 81) == 2  # counted up to the limit
    conflict = "11" + "0" * 79
    assert sd.count_solutions(conflict) == 0 == exact_cover_count(conflict)
    assert sd.solutions(puzzles[1]["quizzes"])[0] == [int(c) for c in puzzles[1]["solutions"]]


def test_clue_floor_and_determinism(tmp_path):
    a = sd.generate(3, seed=5, min_clues=40)
    assert a == sd.generate(3, seed=5, min_clues=40)
    assert a != sd.generate(3, seed=6, min_clues=40)
    for ex in a:
        assert 81 - ex["quizzes"].count("0") == 40
        assert exact_cover_count(ex["quizzes"]) == 1
    p = sd.write_split(tmp_path / "sudoku_test.jsonl", 3, 5, min_clues=40)
    assert read_jsonl(p) == a


def _relabel(grid: str, perm: dict) -> str:
    return "".join(perm.get(c, c) for c in grid)


def test_verifiers_on_hand_made_predictions(puzzles):
    ex = puzzles[0]
    sol = ex["solutions"]
    # correct
    assert sd.verify_faithful(sol, ex) and sd.verify_strict(sol, ex)
    # trailing text after a space: the paper's word-split check ignores it (wrongly accepts)
    assert sd.verify_faithful(sol + " 123", ex)
    assert not sd.verify_strict(sol + " 123", ex)
    # two cells of a row swapped: invalid columns
    bad = sol[1] + sol[0] + sol[2:]
    assert not sd.verify_faithful(bad, ex) and not sd.verify_strict(bad, ex)
    # a valid grid that contradicts the clues (digits 1 and 2 exchanged everywhere)
    other = _relabel(sol, {"1": "2", "2": "1"})
    assert sd.is_valid_solution([int(c) for c in other])
    assert not sd.verify_faithful(other, ex) and not sd.verify_strict(other, ex)
    # wrong length / characters
    assert not sd.verify_strict(sol[:80], ex) and not sd.verify_strict(sol[:80] + "0", ex)


def test_strict_accepts_any_valid_completion_of_an_ambiguous_quiz(puzzles):
    # With no clues every valid grid is a solution; the paper's exact match rejects all but the label.
    ex = {"quizzes": "0" * 81, "solutions": puzzles[0]["solutions"]}
    rng = random.Random(0)
    digits = list("123456789")
    rng.shuffle(digits)
    other = _relabel(ex["solutions"], dict(zip("123456789", digits)))
    assert other != ex["solutions"]
    assert sd.verify_strict(other, ex)
    assert not sd.verify_faithful(other, ex)
