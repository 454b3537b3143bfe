"""A toy model family defined only in the test folder: a character bigram language model.

It is registered through the public surface a third-party package uses (``dlmbench.plugins.Family``, by
:func:`dlmbench.plugins.register` in-process or the ``dlmbench.families`` entry-point group in a subprocess),
never by editing the package. Its numbers are exact and small enough to recompute by hand in the tests:

* checkpoint: a JSON file ``{"alphabet": "...", "counts": [[...]]}`` with bigram counts over the alphabet plus
  one end-of-text id (``V = len(alphabet) + 1``, EOS = BOS = the last id, as GPT-2 uses one id for both);
* ``p(b | a) = (counts[a][b] + smoothing) / (sum_b' counts[a][b'] + V * smoothing)``;
* ``-log p(continuation | context)`` = the sum over continuation tokens of ``-log p(x_i | x_{i-1})``, the first
  one conditioned on the last context token, or on BOS when the context is empty (exact: ``bound = "exact"``);
* ``greedy_match``: every continuation token is the argmax after its predecessor;
* ``sample``: ancestral, one token at a time from the left, stopping at EOS (kept in the output, as Hugging
  Face ``generate`` keeps it); temperature 0 = argmax; draws from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from dlmbench.interface import GreedyResult, LanguageModel, NLLResult, SampleResult, ScoreRequest
from dlmbench.plugins import Family
from dlmbench.specs.settings import Settings, validate_settings

EOS_TEXT = "<eos>"


class BigramSettings(Settings):
    batch_size: int = Field(8, ge=1, description="requests per batch (the toy ignores it)")
    smoothing: float = Field(1.0, gt=0, description="additive smoothing of the bigram counts")
    temperature: float = Field(1.0, ge=0, description="sampling temperature; 0 = argmax")


class CharTokenizer:
    """One id per character of ``alphabet``; unknown characters map to ``?``; EOS (= BOS) is the last id."""

    name = "toy-char"
    mask_id = None

    def __init__(self, alphabet: str):
        self.alphabet = alphabet
        self.vocab_size = len(alphabet) + 1
        self.eos_id = self.bos_id = len(alphabet)
        self._ids = {c: i for i, c in enumerate(alphabet)}

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(c, self._ids["?"]) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(EOS_TEXT if int(i) == self.eos_id else self.alphabet[int(i)] for i in ids)


def bigram_log_probs(counts: np.ndarray, smoothing: float) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64) + smoothing
    return np.log(c / c.sum(axis=1, keepdims=True))


class BigramLM(LanguageModel):
    family = "bigram"
    bound = "exact"

    def __init__(self, alphabet: str, counts: np.ndarray, settings: BigramSettings):
        self.tokenizer = CharTokenizer(alphabet)
        self.settings = settings.model_dump()
        self.logp = bigram_log_probs(counts, settings.smoothing)
        self.max_length = 4096
        self.batch_size = settings.batch_size

    def _prev(self, context: Sequence[int]) -> int:
        return int(context[-1]) if context else self.tokenizer.bos_id

    def conditional_nll(self, requests: Sequence[ScoreRequest]) -> NLLResult:
        nll = []
        for r in requests:
            prev, total = self._prev(r.context), 0.0
            for t in r.continuation:
                total -= self.logp[prev, t]
                prev = t
            nll.append(total)
        n = np.array([len(r.continuation) for r in requests], dtype=np.int64)
        return NLLResult(np.array(nll, dtype=np.float64), n, np.zeros(len(requests)), "exact", 1, {"smoothing": self.settings["smoothing"]})

    def greedy_match(self, requests: Sequence[ScoreRequest]) -> GreedyResult:
        out = []
        for r in requests:
            prev, ok = self._prev(r.context), True
            for t in r.continuation:
                ok &= int(np.argmax(self.logp[prev])) == t
                prev = t
            out.append(ok)
        return GreedyResult(np.array(out, dtype=bool), "bigram_argmax")

    def sample(self, n: int, length: int, *, prefix=None, steps=None, seed: int = 0, **settings: Any) -> SampleResult:
        temperature = float(settings.get("temperature", self.settings["temperature"]))
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n):
            prev, row = self._prev(list(prefix or ())), []
            for _ in range(length):
                if temperature == 0:
                    t = int(np.argmax(self.logp[prev]))
                else:
                    p = np.exp(self.logp[prev] / temperature)
                    t = int(rng.choice(len(p), p=p / p.sum()))
                row.append(t)
                if t == self.tokenizer.eos_id:
                    break
                prev = t
            rows.append(row)
        return SampleResult(rows, [self.tokenizer.decode(r) for r in rows], sum(map(len, rows)), {"temperature": temperature})


def load_bigram(spec, *, device: str = "cpu", batch_size: int | None = None) -> BigramLM:
    settings = validate_settings(BigramSettings, {**spec.settings, **({"batch_size": batch_size} if batch_size else {})},
                                 f"model {spec.name}")
    data = json.loads(Path(spec.checkpoint.location).read_text())
    return BigramLM(data["alphabet"], np.array(data["counts"]), settings)


FAMILY = Family(
    "bigram",
    loader="toyfam:load_bigram",
    settings="toyfam:BigramSettings",
    capabilities=frozenset({"nll", "exact_likelihood", "greedy_match", "sample", "left_to_right"}),
    description="toy character bigram LM (tests/plugins)",
)
