"""Two-chain path planning: exact reproduction of synthetic_graph.py, planning distance, verifiers."""

import random
from collections import Counter, defaultdict

import pytest

from dlmbench.reasoning import planning as pl
from dlmbench.reasoning.layout import read_jsonl


def reference_script(seed: int, num_test: int, num_train: int):
    """The reference generator re-typed with the *global* random module, as the script runs it."""
    state = random.getstate()
    try:
        random.seed(seed)
        cache = set()

        def generate_streams(num):
            data = []
            numbers = list(range(14))  # note: the script re-creates `numbers` per call
            while len(data) < num:
                sep_position = random.randint(0, 6)
                random.shuffle(numbers)
                if str(numbers) in cache:
                    continue
                cache.add(str(numbers))
                streams = [numbers[7 * i : 7 * (i + 1)] for i in range(2)]
                answer = streams[0]
                for s in streams[1:]:
                    s[sep_position] = answer[sep_position]
                data.append(streams)
            return data

        def stringify(lst):
            return "/".join(f"{lst[i]},{lst[i + 1]}" for i in range(len(lst) - 1))

        def convert(data):
            res = []
            for d in data:
                edges = [f"{l[i]},{l[i + 1]}" for l in d for i in range(len(l) - 1)]
                random.shuffle(edges)
                res.append(
                    {
                        "input": "/".join(edges) + f"-{d[0][0]},{d[0][-1]}",
                        "output": stringify(d[0]),
                        "reversed": stringify(d[0][::-1]),
                    }
                )
            return res

        test = generate_streams(num_test)
        train = generate_streams(num_train)
        return convert(test), convert(train)
    finally:
        random.setstate(state)


def test_generate_reproduces_the_reference_script():
    assert pl.generate(200, seed=1) == reference_script(1, 200, 0)[0]
    assert pl.generate(50, seed=7) == reference_script(7, 50, 0)[0]


def test_reference_splits_reproduce_test_then_train_order():
    test, train = pl.reference_splits(1, 30, 300)
    ref_test, ref_train = reference_script(1, 30, 300)
    assert test == ref_test and train == ref_train
    # the test inputs' edge order depends on the train draws (shuffles happen after all draws)
    assert test != pl.generate(30, seed=1)
    assert [t["output"] for t in test] == [t["output"] for t in pl.generate(30, seed=1)]
    assert not {t["input"] for t in test} & {t["input"] for t in train}


def _independent_distance(ex):
    """Walk the gold path in an adjacency map built from the input; first node with two successors."""
    edges_text, query = ex["input"].rsplit("-", 1)
    succ = defaultdict(set)
    for e in edges_text.split("/"):
        u, v = e.split(",")
        succ[u].add(v)
    node, goal = query.split(",")
    steps = 0
    while node != goal:
        if len(succ[node]) == 2:
            return steps
        (node,) = succ[node]
        steps += 1
    return steps


def test_structure_and_planning_distance():
    exs = pl.generate(500, seed=1)
    dist = Counter()
    for ex in exs:
        edges, s, g = pl.parse_input(ex["input"])
        assert len(edges) == 12 and len(set(edges)) == 12
        gold = ex["output"].split("/")
        assert len(gold) == 6 and gold[0].split(",")[0] == s and gold[-1].split(",")[1] == g
        assert pl.verify_strict(ex["output"], ex) and pl.verify_faithful(ex["output"], ex)
        d = pl.planning_distance(ex)
        assert d == _independent_distance(ex)
        dist[d] += 1
    assert set(dist) == set(range(7))  # branch point anywhere on the chain, or none (shared goal)


def test_planning_distance_hand_made():
    # chain 0: 0-1-2-3, chain 1: 5-6-2-7 (shared node 2 at index 2)
    ex = {"input": "0,1/5,6/1,2/6,2/2,3/2,7-0,3", "output": "0,1/1,2/2,3"}
    assert pl.planning_distance(ex) == 2
    ex_goal = {"input": "0,1/5,6/1,3/6,3-0,3", "output": "0,1/1,3"}
    assert pl.planning_distance(ex_goal) == 2  # no branching: the number of gold edges


HAND = {"input": "0,1/5,6/1,2/6,2/2,3/2,7-0,3", "output": "0,1/1,2/2,3", "reversed": "3,2/2,1/1,0"}


@pytest.mark.parametrize(
    "pred, faithful, strict",
    [
        ("0,1/1,2/2,3", True, True),
        ("3,2/2,1/1,0", True, True),  # reversed listing, accepted by the paper
        ("3,2,9/2,1/1,0", True, False),  # reverse_check reads only two fields per edge
        ("3,2/2,1/1,0,0", True, False),
        ("0,1/1,2/2,7", False, False),  # wrong branch
        ("0,1/1,3", False, False),  # edge 1,3 does not exist
        ("0,1/1,2/2,3/", False, False),
        ("0,1/1,2/2,3 ", False, False),
        ("", False, False),
    ],
)
def test_verifiers_on_hand_made_predictions(pred, faithful, strict):
    assert pl.verify_faithful(pred, HAND) is faithful
    assert pl.verify_strict(pred, HAND) is strict


def test_strict_rejects_walks_and_optionally_the_reversed_listing():
    ex = {"input": "0,1/1,2/2,1/2,3-0,3", "output": "0,1/1,2/2,3"}  # a 2-cycle 1<->2
    assert pl.verify_strict("0,1/1,2/2,3", ex)
    assert not pl.verify_strict("0,1/1,2/2,1/1,2/2,3", ex)  # repeats nodes
    assert not pl.verify_strict("3,2/2,1/1,0", HAND, allow_reversed=False)


def test_write_split(tmp_path):
    p = pl.write_split(tmp_path / "path_test.jsonl", 20, 1)
    assert read_jsonl(p) == pl.generate(20, 1)
    t, tr = pl.write_reference_splits(tmp_path, seed=1, num_test=5, num_train=10)
    assert t.name == "path_test-2-7.jsonl" and tr.name == "path_train-2-7.jsonl"
    assert (read_jsonl(t), read_jsonl(tr)) == pl.reference_splits(1, 5, 10)
