"""Countdown: generator, paper-faithful verifier (vs. the reference logic run with eval), strict verifier."""

import random
import re
from collections import Counter

import pytest

from dlmbench.reasoning import countdown as cd
from dlmbench.reasoning.char_tokenizer import CharTokenizer
from dlmbench.reasoning.layout import LENGTHS, fits, read_jsonl

EX = {"input": "86,28,13,31,96", "output": "86+28=114,31-13=18,114-18=96"}


def paper_compute_acc_cd(pred: str, label: str) -> bool:
    """The reference's 'cd' branch, re-typed for the test, using Python's real eval on test-made strings."""

    def check_eq(left, right):
        if re.match(r"(\d+)([+\-*/])(\d+)", left):
            return eval(left, {"__builtins__": {}}, {}) == float(right)  # noqa: S307 -- trusted test input
        return False

    match = True
    for subeq in pred.split(","):
        try:
            left, right = subeq.split("=")
            match &= check_eq(left, right)
        except Exception:
            match = False
        if not match:
            break
    return bool(match and label.split("=")[-1] == pred.split("=")[-1])


@pytest.mark.parametrize(
    "pred, faithful, strict",
    [
        ("86+28=114,31-13=18,114-18=96", True, True),  # the gold solution
        ("86+13=99,31-28=3,99-3=96", True, True),  # another correct solution
        ("90+6=96", True, False),  # numbers not from the input, too few steps
        ("86+86=172,172-76=96", True, False),  # 86 used twice, 76 invented
        ("3*4*8=96", True, False),  # regex is a prefix match; eval computes the chain
        ("96*1=96", True, False),
        ("86+28=114,31-13=18,114-18=96,96*1=96", True, False),  # extra step with an invented operand
        ("28+86=114,13-31=-18,114+-18=96", False, False),  # "13-31=-18" passes; "114+-18" fails the regex
        ("86+28=115,31-13=18,115-19=96", False, False),  # wrong arithmetic
        ("86+28=114,31-13=18,114-18=96=96", False, False),  # three '=' in a piece
        ("86+28=114,31-13=18,114+18=132", False, False),  # wrong final value
        ("", False, False),
        ("86+28=114 ,31-13=18,114-18=96", True, False),  # float(" 114 ") tolerates spaces
    ],
)
def test_verifiers_on_hand_made_predictions(pred, faithful, strict):
    assert cd.verify_faithful(pred, EX) is faithful
    assert cd.verify_faithful(pred, EX) == paper_compute_acc_cd(pred, EX["output"])
    assert cd.verify_strict(pred, EX) is strict


def test_faithful_accepts_negative_intermediate_strict_does_not():
    ex = {"input": "13,31,5,23", "output": "31-13=18,18+5=23"}
    pred = "13-31=-18,5-18=-13,36-13=23"
    assert paper_compute_acc_cd(pred, ex["output"])
    assert cd.verify_faithful(pred, ex)
    assert not cd.verify_strict(pred, ex)


def test_strict_division_must_be_exact_and_operands_available():
    ex = {"input": "7,2,4,14", "output": "7*4=28,28/2=14"}
    assert cd.verify_strict("7*4=28,28/2=14", ex)
    assert cd.verify_strict("7*2=14,14*4=56", {"input": "7,2,4,56", "output": ""})
    assert not cd.verify_strict("7/2=3,3*4=12,12+2=14", ex)  # inexact division, 2 reused
    assert not cd.verify_strict("7*4=28,28/4=7", {"input": "7,2,4,7", "output": ""})  # 4 used twice
    assert cd.verify_strict("2+2=4,4*4=16", {"input": "2,2,4,16", "output": ""})  # duplicate inputs
    assert not cd.verify_strict("2+2=4,4*4=16", {"input": "2,3,4,16", "output": ""})


def test_safe_eval_agrees_with_eval_on_hand_picked_expressions():
    for expr in ["3+4e2", "3+0b1", "3+4j", "3*4*2", "7//2", "2**10", "3--4", "3+-+4", "1e-3+1", "7/2", "00+1"]:
        assert cd.safe_eval(expr) == eval(expr, {"__builtins__": {}}, {})  # noqa: S307
    for expr in ["08+1", "3/0", "3+a", "3+id", "3+4a", "3+"]:
        with pytest.raises(Exception):  # noqa: B017 - whatever eval raises, safe_eval must raise too
            eval(expr, {"__builtins__": {}}, {})  # noqa: S307
        with pytest.raises(Exception):  # noqa: B017
            cd.safe_eval(expr)
    with pytest.raises(cd.UnsafeExpression):
        cd.safe_eval("9**9**9")  # eval would not return in reasonable time


def test_faithful_matches_reference_logic_on_random_predictions():
    # Random strings over the tokenizer's characters and mutated gold answers; the reference logic is
    # run with real eval (strings made by the test; '**' excluded so eval cannot blow up).
    rng = random.Random(0)
    chars = "0123456789*+-/=,abcdefghij"
    examples = cd.generate(40, seed=3, k=4)
    n_true = 0
    for i in range(3000):
        ex = examples[i % len(examples)]
        gold = ex["output"]
        if i % 3 == 0:
            pred = "".join(rng.choice(chars) for _ in range(rng.randint(1, 30)))
        else:
            p = list(gold)
            for _ in range(rng.randint(0, 2)):
                p[rng.randrange(len(p))] = rng.choice(chars)
            pred = "".join(p)
        if "**" in pred:
            continue
        want = paper_compute_acc_cd(pred, gold)
        assert cd.verify_faithful(pred, ex) == want, pred
        n_true += want
    assert n_true > 100  # the comparison covered accepted predictions too


@pytest.mark.parametrize("k", [3, 4, 5])
def test_generated_examples_are_solved_by_their_own_answer(k):
    exs = cd.generate(60, seed=11, k=k)
    tok = CharTokenizer()
    assert len({e["input"] for e in exs}) == 60
    for e in exs:
        numbers, target = cd.parse_input(e["input"])
        assert len(numbers) == k and all(1 <= x <= 100 for x in numbers)
        assert 10 <= target <= 100
        assert len(e["output"].split(",")) == k - 1
        assert cd.verify_strict(e["output"], e) and cd.verify_faithful(e["output"], e)
        assert fits(tok, e["input"], e["output"], LENGTHS[f"cd{k}"])


def test_generated_solution_checked_independently():
    # Recompute every equation from the text with plain integer arithmetic and a multiset of available numbers.
    for e in cd.generate(30, seed=5, k=5):
        nums, avail = e["input"].split(","), None
        avail = Counter(int(x) for x in nums[:-1])
        last = None
        for eq in e["output"].split(","):
            lhs, rhs = eq.split("=")
            op = next(c for c in "+-*/" if c in lhs)
            a, b = (int(x) for x in lhs.split(op))
            val = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
            assert val == int(rhs) and val > 0
            avail[a] -= 1
            avail[b] -= 1
            assert avail[a] >= 0 and avail[b] >= 0
            avail[int(rhs)] += 1
            last = int(rhs)
        assert last == int(nums[-1])
        assert sum(v for v in avail.values()) == 1


def test_generator_is_deterministic_and_seed_dependent(tmp_path):
    a = cd.generate(20, seed=7, k=4)
    assert a == cd.generate(20, seed=7, k=4)
    assert a != cd.generate(20, seed=8, k=4)
    test_inputs = {e["input"] for e in a}
    b = cd.generate(50, seed=9, k=4, exclude_inputs=test_inputs)
    assert not test_inputs & {e["input"] for e in b}
    p = cd.write_split(tmp_path / "cd4_test.jsonl", 20, 7, k=4)
    assert read_jsonl(p) == a
    assert p.read_text().splitlines()[0].startswith('{"input": ')
