"""LAMBADA-style tasks account for every loaded record (issue 19, item 4): passages without the text field,
empty passages and passages with no last word are counted by reason in the row, or an empty one is an error
naming the file and line (``dataset.on_empty: error``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dlmbench.errors import DatasetUnavailable
from dlmbench.interface import GreedyResult, LanguageModel, NLLResult
from dlmbench.specs import TaskSpec

V = 257


class Bytes:
    name, vocab_size, bos_id, eos_id, mask_id = "bytes", V, None, 256, None

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode(errors="replace")


class UniformLM(LanguageModel):
    """Every token has probability 1/V: -log p(continuation) = len(continuation) * log V, exactly."""

    family = "uniform-test"
    bound = "exact"

    def __init__(self):
        self.tokenizer = Bytes()
        self.settings = {}
        self.requests = []

    def conditional_nll(self, requests):
        self.requests.extend(requests)
        n = np.array([len(r.continuation) for r in requests])
        return NLLResult(n * math.log(V), n, np.zeros(len(requests)), "exact")

    def greedy_match(self, requests):
        return GreedyResult(np.zeros(len(requests), dtype=bool), "none")

    def sample(self, n, length, **kw):
        raise NotImplementedError


def _task(tmp_path, rows, **dataset):
    path = tmp_path / "passages.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSpec.from_dict({"name": "toy-lambada", "type": "lambada",
                               "dataset": {"source": "local", "path": str(path), **dataset}})


ROWS = [{"text": "the dog saw the fox"}, {"text": ""}, {"other": "x"}, {"text": "alone"}, {"text": "a cat sat"}]


def test_every_passage_is_counted(tmp_path):
    from dlmbench.tasks.lambada import run_lambada

    model = UniformLM()
    out = run_lambada(model, _task(tmp_path, ROWS, skip_missing=True), seed=0, limit=None)
    s = out.settings
    assert s["skipped"] == {"missing_field": 1, "empty": 1, "no_last_word": 1} and s["n_skipped"] == 3
    assert s["n_examples"] == 2 and s["n_examples"] + s["n_skipped"] == len(ROWS)
    assert [e["target"] for e in out.examples] == [" fox", " sat"]
    assert s["prefix_token"] is None and all(r.context for r in model.requests)  # contexts never empty: nothing fed


def test_on_empty_error_names_the_line(tmp_path):
    from dlmbench.tasks.lambada import run_lambada

    with pytest.raises(DatasetUnavailable, match=r"passages\.jsonl line 2: the passage is empty"):
        run_lambada(UniformLM(), _task(tmp_path, ROWS, skip_missing=True, on_empty="error"), seed=0, limit=None)
