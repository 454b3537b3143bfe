"""The reversal task path with scripted models: completions end at end-of-text, both directions are scored.

A scripted "model" answers every prompt with a fixed token sequence; ground truth is the metric definitions
applied by hand (Berglund's case-insensitive prefix match and the SMDM/LLaDA substring match).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tiny_zoo import ByteTokenizer

from dlmbench.interface import NLLResult, SampleResult
from dlmbench.specs import TaskSpec
from dlmbench.tasks.reversal import run_reversal


class Scripted:
    """Answers ``completion(target)`` to every prompt; log-likelihood -1 nat per target token."""

    family = "ar"

    def __init__(self, answer):
        self.tokenizer = ByteTokenizer()
        self.answer = answer
        self.targets: dict[tuple[int, ...], str] = {}

    def sample(self, n, length, *, prefix=None, steps=None, seed=0, **settings):
        ids = self.answer(self.targets[tuple(prefix)])[:length]
        return SampleResult([ids] * n, [self.tokenizer.decode(ids)] * n, len(ids), {"sampler": "scripted"})

    def conditional_nll(self, requests):
        n = np.array([len(r.continuation) for r in requests], dtype=float)
        return NLLResult(n.copy(), n.astype(int), np.zeros_like(n), "exact")


@pytest.fixture()
def task(tmp_path):
    same = [{"prompt": "Who wrote Abyssal Melodies?", "completion": " Uriah Hawthorne"},
            {"prompt": "Who first walked on Mars?", "completion": " Ada Quill"}]
    rev = [{"prompt": "Uriah Hawthorne is known for", "completion": " composing Abyssal Melodies"}]
    for name, rows in (("same.jsonl", same), ("rev.jsonl", rev)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSpec.from_dict({"name": "rev-tiny", "type": "reversal", "dataset": {"source": "local", "path": str(tmp_path), "field": "prompt"},
                               "settings": {"same_file": "same.jsonl", "reverse_file": "rev.jsonl", "max_new_tokens": 64}}), same + rev


def _run(task, records, answer):
    spec, rows = task, records
    model = Scripted(answer)
    for r in rows:
        model.targets[tuple(model.tokenizer.encode(r["prompt"]))] = r["completion"]
    out = run_reversal(model, spec, seed=0, limit=None)
    return {m.metric: m.value for m in out.metrics}, out


def test_right_answer_then_junk_after_end_of_text_is_exact(task):
    spec, rows = task
    eos = ByteTokenizer.eos_id
    vals, out = _run(spec, rows, lambda t: ByteTokenizer().encode(t.upper()) + [eos] + ByteTokenizer().encode(" and more"))
    assert vals["same.exact_match"] == 1.0 and vals["reverse.exact_match"] == 1.0  # case-insensitive prefix
    assert vals["same.substring"] == 1.0
    assert all(not e["completion"].endswith("and more") for e in out.examples)
    assert vals["same.logprob"] == pytest.approx(-np.mean([len(ByteTokenizer().encode(r["completion"])) for r in rows[:2]]))


def test_target_after_end_of_text_does_not_count(task):
    spec, rows = task
    eos = ByteTokenizer.eos_id
    vals, _ = _run(spec, rows, lambda t: ByteTokenizer().encode(" I do not know") + [eos] + ByteTokenizer().encode(t))
    assert vals["same.exact_match"] == 0.0 and vals["same.substring"] == 0.0 and vals["reverse.substring"] == 0.0


def test_substring_counts_the_name_inside_a_longer_answer(task):
    spec, rows = task
    vals, _ = _run(spec, rows, lambda t: ByteTokenizer().encode(" It was" + t + ", of course."))
    assert vals["same.exact_match"] == 0.0 and vals["same.substring"] == 1.0


def test_until_eos():
    from dlmbench.interface import until_eos

    assert until_eos([5, 6, 9, 7, 9], 9) == [5, 6] and until_eos([5, 6], 9) == [5, 6] and until_eos([5, 9], None) == [5, 9]
    assert until_eos([9, 1], 9) == []
