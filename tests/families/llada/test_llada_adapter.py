"""LLaDA adapter on a tiny checkpoint in the published format, through the real loading path."""

import math

import numpy as np
import pytest
import torch

from dlmbench.families.llada.backbone import MASK_ID
from dlmbench.families.llada.writer import write_tiny_llada
from dlmbench.interface import ScoreRequest
from dlmbench.families.llada.adapter import load_llada
from dlmbench.errors import BadSetting, BadSpec
from dlmbench.specs import ModelSpec


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_llada(tmp_path_factory.mktemp("llada"), seed=3)
    spec = ModelSpec.from_dict({"name": "tiny-llada", "family": "llada", "checkpoint": {"local": str(folder)},
                                "max_length": 64, "settings": {"mc_samples": 16, "batch_size": 4}})
    return spec, load_llada(spec)


def _direct_log_prob(model, ctx, tok):
    """log p(tok | ctx) with the single target position masked: one plain forward pass."""
    x = torch.tensor([list(ctx) + [MASK_ID]])
    with torch.no_grad():
        logits = model.backbone(x)[0, -1].double()
    return float(torch.log_softmax(logits, -1)[tok])


def test_single_token_continuation_is_exact(tiny):
    _, model = tiny
    ctx, tok = (5, 17, 300, 42), 1234
    res = model.conditional_nll([ScoreRequest(ctx, (tok,), seed=1)])
    assert res.bound == "upper"
    # with L = 1 every draw masks exactly that token with weight 1: the bound is the exact conditional
    assert res.nll[0] == pytest.approx(-_direct_log_prob(model, ctx, tok), rel=1e-6)
    assert res.stderr[0] == pytest.approx(0.0, abs=1e-9)


def test_mc_bound_matches_enumeration_over_mask_subsets(tiny):
    _, model = tiny
    ctx, cont = (7, 8, 9), (100, 200, 300)
    L = len(cont)
    # exact value of LLaDA's estimator: E_l~U{1..L} E_{|S|=l} (L/l) Σ_{i∈S} -log p(x_i | x_{¬S})
    import itertools

    total = 0.0
    for l in range(1, L + 1):
        subsets = list(itertools.combinations(range(L), l))
        acc = 0.0
        for S in subsets:
            x = torch.tensor([list(ctx) + [MASK_ID if j in S else c for j, c in enumerate(cont)]])
            with torch.no_grad():
                lp = torch.log_softmax(model.backbone(x)[0].double(), -1)
            acc += (L / l) * sum(-float(lp[len(ctx) + j, cont[j]]) for j in S)
        total += acc / len(subsets) / L
    res = model.conditional_nll([ScoreRequest(ctx, cont, seed=s) for s in range(40)])
    mean, se = res.nll.mean(), res.nll.std(ddof=1) / math.sqrt(len(res.nll))
    assert abs(mean - total) < 4 * se + 1e-9


def test_results_do_not_depend_on_batching(tiny):
    spec, model = tiny
    reqs = [ScoreRequest((1, 2, 3), (4, 5), seed=10), ScoreRequest((6,), (7, 8, 9, 10), seed=11), ScoreRequest((1, 2, 3), (11, 12), seed=12)]
    a = model.conditional_nll(reqs).nll
    b = np.concatenate([model.conditional_nll([r]).nll for r in reqs])
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_greedy_check_agrees_with_direct_argmax_for_one_token(tiny):
    _, model = tiny
    ctx = (5, 6, 7)
    x = torch.tensor([list(ctx) + [MASK_ID]])
    with torch.no_grad():
        lp = model.backbone(x)[0, -1].double()
    lp[MASK_ID] = -math.inf
    best = int(lp.argmax())
    other = (best + 1) % 1000
    res = model.greedy_match([ScoreRequest(ctx, (best,)), ScoreRequest(ctx, (other,))])
    assert res.matches.tolist() == [True, False] and res.method == "iterative_confidence"


def test_unknown_setting_is_did_you_mean(tiny):
    spec, _ = tiny
    with pytest.raises(BadSetting, match="unknown setting 'mc_sample' = .*; did you mean 'mc_samples'"):
        load_llada(spec.with_settings({"mc_sample": 3}))


def test_float32_scoring_agrees_with_float64_on_the_same_draws(tiny):
    """``score_precision: float32`` (in-place log-softmax, the default) vs the float64 copy: same seeds give the
    same masks, so the two bounds differ only by rounding, far below the Monte Carlo stderr."""
    spec, model64 = tiny
    model64 = load_llada(spec.with_settings({"score_precision": "float64"}))
    model32 = load_llada(spec.with_settings({"score_precision": "float32"}))
    reqs = [ScoreRequest((1, 2, 3, 4), (50, 60, 70, 80, 90), seed=s) for s in range(3)]
    a, b = model64.conditional_nll(reqs), model32.conditional_nll(reqs)
    np.testing.assert_allclose(b.nll, a.nll, atol=1e-4 * 5, rtol=0)  # 5 tokens, float32 rounding of ~1e-5 each at most
    assert (np.abs(b.nll - a.nll) < 0.01 * a.stderr).all()
    assert b.settings["score_precision"] == "float32" and a.settings["score_precision"] == "float64"


def test_bad_score_precision_is_one_line(tiny):
    spec, _ = tiny
    with pytest.raises(BadSetting, match="'score_precision' = 'float16' is not allowed"):
        load_llada(spec.with_settings({"score_precision": "float16"}))


def test_sampling_shorter_than_one_block_and_bad_steps(tiny):
    _, model = tiny
    out = model.sample(2, 8, steps=4, seed=0)  # block_length 32 > 8: one block of 8
    assert out.settings["block_length"] == 8 and all(len(g) == 8 for g in out.tokens)
    with pytest.raises(BadSpec, match="block_length 32; set block_length to a divisor of 40"):
        model.sample(1, 40, steps=8, seed=0)
    with pytest.raises(BadSpec, match=r"steps 5 is not a multiple of the number of blocks 2 .*use steps=6|use steps=4"):
        model.sample(1, 64, steps=5, seed=0)
