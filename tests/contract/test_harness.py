"""The contract harness itself: a toy family that is correct by construction passes every check, and each
deliberately planted bug is caught by exactly the check written for it (so a green contract suite means
something). Also the declaration rules: stale or misspelt expected failures are errors, and the pytest
parametrization gives one id per (family, check) with the declared marks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlmbench.diffusion.categorical import sample_from_logits
from dlmbench.errors import UnknownName
from dlmbench.interface import (
    GreedyResult,
    LanguageModel,
    NLLResult,
    SampleResult,
    require_finite,
)
from dlmbench.plugins import Family, register, unregister
from dlmbench.seeding import generator, request_seed
from dlmbench.testing.contract import CHECK_NAMES, check_family, parametrize_with_checks

NAME = "contract-toy"
V = 257  # one id per byte, 256 = end of text


class ByteTokenizer:
    name = "bytes"
    vocab_size = V
    bos_id = None
    eos_id = 256
    mask_id = None

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode(errors="replace")


class UnigramLM(LanguageModel):
    """``p(x) = prod_i softmax(w)[x_i]``: exact likelihoods, greedy = every token is the argmax, ancestral samples
    with one generator per row. ``bug`` plants one contract violation."""

    family = NAME
    bound = "exact"

    def __init__(self, *, bug=None, batch_size=None, device="cpu", dtype=None):
        self.bug = bug
        self.batch_size = batch_size or 4
        self.device = torch.device(device)
        self.tokenizer = ByteTokenizer()
        self.settings = {"batch_size": self.batch_size}
        torch.manual_seed(0)
        self.net = torch.nn.Embedding(1, V).to(self.device, {"float64": torch.float64}.get(dtype or "", torch.float32))

    def _log_probs(self):
        logits = require_finite(self.net.weight[0].detach(), "toy: logits")
        return torch.log_softmax(logits.double(), -1).cpu().numpy()

    def conditional_nll(self, requests):
        lp = self._log_probs()
        nll = np.array([-lp[list(r.continuation)].sum() for r in requests])
        if self.bug == "seed_dependent":
            nll = nll + np.array([r.seed % 7 for r in requests]) * 1e-3
        if self.bug == "batch_dependent":
            nll = nll + 1e-3 * self.batch_size
        if self.bug == "float32":
            nll = nll.astype(np.float32)
        n = np.array([len(r.continuation) for r in requests])
        return NLLResult(nll, n, np.zeros(len(requests)), "upper" if self.bug == "mislabelled" else "exact")

    def greedy_match(self, requests):
        best = int(self._log_probs().argmax())
        return GreedyResult(np.array([all(t == best for t in r.continuation) for r in requests]), "unigram_argmax")

    def sample(self, n, length, *, prefix=None, steps=None, seed=0, **settings):
        logits = self.net.weight[0].detach().float()
        if self.bug != "unguarded_sample":
            require_finite(logits, "toy: logits")
        if self.bug == "shared_rng":  # one generator per call, drawn position by position as a batched sampler
            g = generator(seed)  # does: every row then depends on how many rows are drawn
            rows = [[0] * length for _ in range(n)]
            for t in range(length):
                for i in range(n):
                    rows[i][t] = int(sample_from_logits(logits[None], g)[0])
        else:
            rows = []
            for i in range(n):
                g = generator(request_seed(seed, "toy", i))
                if self.bug == "unseeded":  # ignores the seed: global RNG state
                    g = generator(int(torch.randint(0, 2**31, ()).item()))
                rows.append([int(sample_from_logits(logits[None], g)[0]) for _ in range(length)])
        return SampleResult(rows, [self.tokenizer.decode(r) for r in rows], length * n, {"sampler": "unigram"})


def factory(bug=None):
    def make_model(*, batch_size=None, device="cpu", dtype=None):
        return UnigramLM(bug=bug, batch_size=batch_size, device=device, dtype=dtype)

    return make_model


@pytest.fixture
def toy_family():
    fam = register(Family(NAME, loader="tests.contract.test_harness:factory",
                          capabilities=frozenset({"nll", "exact_likelihood", "greedy_match", "sample"})))
    yield fam
    unregister(NAME)


def test_a_correct_family_passes_every_applicable_check(toy_family):
    report = check_family(NAME, factory())
    want = {"nll_shapes", "bound_label", "nll_seeding", "nll_batch_invariance", "greedy_match", "sample_shapes",
            "sample_vocabulary", "sample_seeding", "device_cpu", "dtype_float64", "device_cuda", "non_finite"}
    assert set(report) == {f"{NAME}-{c}" for c in want}  # no infill: the family does not declare it
    for cid, outcome in report.items():
        if cid.endswith("device_cuda") and not torch.cuda.is_available():
            assert outcome.startswith("not run: needs a CUDA device")
        else:
            assert outcome == "passed", (cid, outcome)


@pytest.mark.parametrize(
    "bug, caught_by",
    [
        ("float32", {"nll_shapes"}),
        ("mislabelled", {"bound_label"}),
        ("seed_dependent", {"nll_seeding"}),
        ("batch_dependent", {"nll_batch_invariance"}),
        ("unseeded", {"sample_seeding"}),
        ("shared_rng", {"sample_seeding"}),
        ("unguarded_sample", {"non_finite"}),
    ],
)
def test_each_planted_bug_is_caught_by_its_check(toy_family, bug, caught_by):
    with pytest.raises(AssertionError) as info:
        check_family(NAME, factory(bug))
    lines = str(info.value).splitlines()
    assert lines[0] == f"family {NAME} breaks the model contract:"
    assert {line.split(":")[0] for line in lines[1:]} == {f"{NAME}-{c}" for c in caught_by}


def test_a_declared_failure_is_reported_and_a_stale_one_is_an_error(toy_family):
    report = check_family(NAME, factory("batch_dependent"), expected_failures={"nll_batch_invariance": "known"})
    assert report[f"{NAME}-nll_batch_invariance"] == "expected failure: known"
    with pytest.raises(AssertionError, match="declared an expected failure .*remove the declaration"):
        check_family(NAME, factory(), expected_failures={"nll_batch_invariance": "fixed since"})


def test_misspelt_or_inapplicable_declarations_are_refused(toy_family):
    with pytest.raises(UnknownName, match="did you mean 'nll_seeding'"):
        check_family(NAME, factory(), expected_failures={"nll_seeing": "typo"})
    with pytest.raises(UnknownName, match="lacks \\['infill'\\]"):
        check_family(NAME, factory(), expected_failures={"infill": "the toy has no infill"})


def test_parametrize_gives_one_id_per_family_check_with_declared_marks(toy_family):
    mark = parametrize_with_checks({NAME: factory()}, expected_failures={NAME: {"dtype_float64": "float32 only"}}).mark
    argname, params = mark.args
    assert argname == "family_check"
    ids = [p.id for p in params]
    assert ids == [f"{NAME}-{c}" for c in CHECK_NAMES if c != "infill"]
    marks = {p.id: p.marks for p in params}
    (xfail,) = marks[f"{NAME}-dtype_float64"]
    assert xfail.name == "xfail" and xfail.kwargs == {"strict": True, "reason": "float32 only"}
    assert not marks[f"{NAME}-nll_shapes"]
    if torch.cuda.is_available():
        assert not marks[f"{NAME}-device_cuda"]
    else:
        (cuda,) = marks[f"{NAME}-device_cuda"]
        assert cuda.name == "xfail" and cuda.kwargs["run"] is False and "CUDA" in cuda.kwargs["reason"]
