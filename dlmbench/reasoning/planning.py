"""The two-chain path-finding ("minimal planning") task of Ye et al. 2024 (arXiv 2410.14157).

Generator: the reference's ``data/synthetic_graph.py`` (HKUNLP/diffusion-vs-ar README; the file is
absent from the repo's HEAD; a copy is in the fork diego-arapovic/diffusion-vs-ar),
reproduced step for step so that the same seed gives the same files. With ``STREAM=2``,
``NODE_PER_STREAM=7`` and one RNG ``random.Random(seed)`` (== the script's ``random.seed(SEED)``):

1. ``numbers = [0..13]`` (reset at the start of the test draws and again of the train draws); per
   draw: ``sep = randint(0, 6)``, then ``shuffle(numbers)`` (cumulative, in place); a permutation
   already seen (the seen-set is shared by both splits) is skipped, ``sep`` still consumed;
   ``chains = [numbers[0:7], numbers[7:14]]``; ``chains[1][sep] = chains[0][sep]`` (the shared node).
   All test draws come first, then all train draws.
2. Only then, for the test set and then the train set, each example is written as::

       input    = shuffle(edges "u,v" of both chains) joined by "/"  + "-{source},{goal}"
       output   = "a0,a1/a1,a2/.../a5,a6"       (chain 0 in order)
       reversed = the same for chain 0 reversed

   so the edge order of the test inputs depends on the RNG state after all train draws.

:func:`generate` ``(n, seed)`` is the script with ``NUM_TEST=n, NUM_TRAIN=0``;
:func:`reference_splits` reproduces both files (``seed=1, 1000, 1_000_000`` are the paper's values).

Verifiers:

- :func:`verify_faithful` -- ``compute_acc``'s ``'path'`` branch / ``scripts/path/cal_path_acc.py``:
  ``pred == gold``, or reversing the predicted edge list and each edge (only the first two fields of
  each comma-split edge are read) gives ``gold``.
- :func:`verify_strict` -- ``pred`` is a simple path of input edges ``u,v`` from the source to the
  goal; since the paper counts the reversed listing (goal to source, each edge written ``v,u``) as
  the same answer, that orientation is accepted too (``allow_reversed``), but parsed just as strictly.

:func:`planning_distance` -- ``cal_path_acc.py``'s breakdown key: the index of the first gold edge
whose source node has out-degree 2 among the input edges, or the number of gold edges if none.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

from dlmbench.reasoning.layout import write_jsonl

STREAM = 2
NODE_PER_STREAM = 7
REFERENCE_SEED = 1
REFERENCE_NUM_TEST = 1000
REFERENCE_NUM_TRAIN = 1_000_000

Chains = list[list[int]]


def _draw_chains(rng: random.Random, seen: set[str], num: int) -> list[Chains]:
    """``generate_streams`` of the reference: ``num`` new two-chain graphs (adds to ``seen``).

    As in the script, ``numbers`` restarts from ``[0..13]`` at every call, then is shuffled in place.
    """
    numbers = list(range(NODE_PER_STREAM * STREAM))
    data: list[Chains] = []
    while len(data) < num:
        sep = rng.randint(0, NODE_PER_STREAM - 1)
        rng.shuffle(numbers)
        key = str(numbers)
        if key in seen:
            continue
        seen.add(key)
        chains = [numbers[NODE_PER_STREAM * i : NODE_PER_STREAM * (i + 1)] for i in range(STREAM)]
        for other in chains[1:]:
            other[sep] = chains[0][sep]
        data.append(chains)
    return data


def _edges(chain: list[int]) -> list[str]:
    return [f"{chain[i]},{chain[i + 1]}" for i in range(len(chain) - 1)]


def _to_example(chains: Chains, rng: random.Random) -> dict[str, str]:
    """``convert_to_jsonline`` of the reference for one graph (consumes one shuffle)."""
    answer = chains[0]
    all_edges = [e for chain in chains for e in _edges(chain)]
    rng.shuffle(all_edges)
    return {
        "input": "/".join(all_edges) + f"-{answer[0]},{answer[-1]}",
        "output": "/".join(_edges(answer)),
        "reversed": "/".join(_edges(answer[::-1])),
    }


def reference_splits(
    seed: int = REFERENCE_SEED, num_test: int = REFERENCE_NUM_TEST, num_train: int = REFERENCE_NUM_TRAIN
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(test, train) exactly as ``synthetic_graph.py`` would write them for these settings."""
    rng = random.Random(seed)
    seen: set[str] = set()
    test_graphs = _draw_chains(rng, seen, num_test)
    train_graphs = _draw_chains(rng, seen, num_train)
    test = [_to_example(g, rng) for g in test_graphs]
    train = [_to_example(g, rng) for g in train_graphs]
    return test, train


def generate(n: int, seed: int = REFERENCE_SEED) -> list[dict[str, str]]:
    """``n`` examples: the reference script with ``NUM_TEST=n``, ``NUM_TRAIN=0``."""
    return reference_splits(seed, n, 0)[0]


def write_split(path: str | Path, n: int, seed: int = REFERENCE_SEED) -> Path:
    """Write :func:`generate` ``(n, seed)`` to ``path`` as JSONL (``input``, ``output``, ``reversed``)."""
    return write_jsonl(path, generate(n, seed))


def write_reference_splits(
    directory: str | Path,
    seed: int = REFERENCE_SEED,
    num_test: int = REFERENCE_NUM_TEST,
    num_train: int = REFERENCE_NUM_TRAIN,
) -> tuple[Path, Path]:
    """``path_test-2-7.jsonl`` and ``path_train-2-7.jsonl`` as the reference script names them."""
    test, train = reference_splits(seed, num_test, num_train)
    d = Path(directory)
    return (
        write_jsonl(d / f"path_test-{STREAM}-{NODE_PER_STREAM}.jsonl", test),
        write_jsonl(d / f"path_train-{STREAM}-{NODE_PER_STREAM}.jsonl", train),
    )


# ---------------------------------------------------------------------------------------------------
# Verification and breakdown.


def parse_input(text: str) -> tuple[list[tuple[str, str]], str, str]:
    """``"u,v/u,v/...-s,g"`` -> (edges, source, goal), node names kept as strings."""
    edges_text, sep, query = text.rpartition("-")
    if not sep:
        raise ValueError(f"no '-source,goal' query in {text!r}")
    source, goal = query.split(",")
    edges = []
    for item in edges_text.split("/"):
        u, v = item.split(",")
        edges.append((u, v))
    return edges, source, goal


def planning_distance(example: dict) -> int:
    """Index of the first gold edge leaving a node of out-degree 2 (``cal_path_acc.py``), else #edges."""
    out_degree = Counter(item.split(",")[0] for item in example["input"].split("/"))
    gold_edges = example["output"].split("/")
    for i, item in enumerate(gold_edges):
        if out_degree[item.split(",")[0]] == 2:
            return i
    return len(gold_edges)


def _reverse_check(gold: str, pred: str) -> bool:
    """The reference's ``reverse_check`` (reads only fields 0 and 1 of each edge; errors -> False)."""
    try:
        items = pred.split("/")
        flipped = "/".join(f"{i.split(',')[1]},{i.split(',')[0]}" for i in items[::-1])
        return flipped == gold
    except Exception:
        return False


def verify_faithful(pred: str, example: dict) -> bool:
    """``pred == gold`` or the reversed listing of ``pred`` equals ``gold`` (paper's ``compute_acc``)."""
    gold = example["output"]
    return pred == gold or _reverse_check(gold, pred)


_EDGE = re.compile(r"([0-9]+),([0-9]+)")


def _is_path(steps: list[tuple[str, str]], edges: set[tuple[str, str]], start: str, end: str) -> bool:
    if not steps or steps[0][0] != start or steps[-1][1] != end:
        return False
    if any(a[1] != b[0] for a, b in zip(steps, steps[1:])):
        return False
    nodes = [steps[0][0]] + [v for _, v in steps]
    return len(set(nodes)) == len(nodes) and all(s in edges for s in steps)


def verify_strict(pred: str, example: dict, *, allow_reversed: bool = True) -> bool:
    """``pred`` lists a simple path of input edges from source to goal (or, if allowed, its reversal)."""
    edges, source, goal = parse_input(example["input"])
    edge_set = set(edges)
    steps = []
    for item in pred.split("/"):
        m = _EDGE.fullmatch(item)
        if m is None:
            return False
        steps.append((m[1], m[2]))
    if _is_path(steps, edge_set, source, goal):
        return True
    if allow_reversed:
        flipped = [(v, u) for u, v in reversed(steps)]
        return _is_path(flipped, edge_set, source, goal)
    return False
