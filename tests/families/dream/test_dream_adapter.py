"""Dream adapter on a tiny checkpoint in the published format, loaded through a model card and ``load_model``.
Ground truth: the bound recomputed from the raw backbone's full logits shifted by hand (float64), the one-shot
greedy answer read off those logits, and the published cards' validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_dit import write_card

from dlmbench.diffusion.masked import mdlm_nelbo_mc
from dlmbench.families import load_model
from dlmbench.families.dream.estimator import LINEAR
from dlmbench.families.dream.writer import TINY_SPECIALS, write_tiny_dream
from dlmbench.interface import ScoreRequest
from dlmbench.registry import Registry


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("dream-adapter")
    folder = write_tiny_dream(root / "ckpt", seed=6)
    specs = root / "specs"
    card = {"name": "tiny-dream", "family": "dream", "checkpoint": {"local": str(folder)}, "max_length": 64,
            "settings": {"mc_samples": 6, "batch_size": 4, "score_precision": "float64"}}
    write_card(specs, card)
    return specs, card, load_model(Registry.default([specs]).model("tiny-dream"))


def variant(specs, card, name, **settings):
    write_card(specs, {**card, "name": name, "settings": {**card["settings"], **settings}})
    return load_model(Registry.default([specs]).model(name))


def test_card_loads_with_the_checkpoints_special_ids(tiny):
    _specs, _card, model = tiny
    assert model.family == "dream" and model.bound == "upper"
    assert model.mask_id == model.tokenizer.mask_id == TINY_SPECIALS["<|mask|>"]
    assert model.tokenizer.bos_id == TINY_SPECIALS["<|beginoftext|>"]
    assert model.tokenizer.eos_id == TINY_SPECIALS["<|endoftext|>"]
    assert model.describe()["logits"] == "shifted"


def test_bound_equals_the_hand_shifted_full_logits(tiny):
    _specs, _card, model = tiny
    text = model.tokenizer.encode("In the beginning God created the heaven")
    reqs = [ScoreRequest(tuple(text[:5]), tuple(text[5:20]), seed=3), ScoreRequest((), tuple(text[:12]), seed=4)]
    res = model.conditional_nll(reqs)
    assert res.bound == "upper" and np.all(res.stderr > 0) and res.mc_samples == 6
    assert res.settings["empty_context_prefix"] == TINY_SPECIALS["<|beginoftext|>"]
    net = model.backbone

    def by_hand(x_t, _sigma):  # full logits, shifted by indexing, float64
        raw = net(x_t).double()
        return torch.log_softmax(torch.cat([raw[:, :1], raw[:, :-1]], 1), -1)

    from dlmbench.seeding import request_seed

    for r, (ctx, cont) in enumerate([(tuple(text[:5]), tuple(text[5:20])), ((TINY_SPECIALS["<|beginoftext|>"],), tuple(text[:12]))]):
        x0 = torch.tensor([list(ctx) + list(cont)])
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[0, len(ctx):] = True
        seed = request_seed(reqs[r].seed, "piece", 0)
        want = mdlm_nelbo_mc(by_hand, x0, mask, [seed], mask_id=model.mask_id, schedule=LINEAR, num_samples=6,
                             time_sampling="stratified", sampling_eps=1e-3)
        # the network runs in float32 on different row subsets (head on the scored rows only vs full logits), so
        # the two agree to float32 rounding, which depends on the thread count (CI saw 1.7e-9 relative)
        assert res.nll[r] == pytest.approx(float(want.mean[0]), rel=1e-6)
        assert res.stderr[r] == pytest.approx(float(want.stderr[0]), rel=1e-6)


def test_one_shot_greedy_matches_the_argmax_of_the_shifted_logits(tiny):
    specs, card, _model = tiny
    model = variant(specs, card, "tiny-dream-oneshot", greedy="one_shot_argmax")
    ctx = model.tokenizer.encode("And God said")
    x = torch.tensor([ctx + [model.mask_id] * 6])
    raw = model.backbone(x)
    raw[..., model.mask_id] = float("-inf")
    pred = raw[0, len(ctx) - 1:-1].argmax(-1).tolist()  # position i read from i - 1
    wrong = list(pred)
    wrong[2] = (wrong[2] + 1) % 256
    got = model.greedy_match([ScoreRequest(tuple(ctx), tuple(pred)), ScoreRequest(tuple(ctx), tuple(wrong))])
    assert got.matches.tolist() == [True, False]


def test_sample_and_infill(tiny):
    _specs, _card, model = tiny
    prefix = model.tokenizer.encode("Let there be")
    out = model.sample(3, 10, prefix=prefix, steps=5, seed=1, temperature=1.0, alg="origin")
    assert [len(t) for t in out.tokens] == [10] * 3 and out.nfe <= 5
    assert model.mask_id not in sum(out.tokens, [])
    assert out.settings["sampler"] == "dream_origin" and out.settings["temperature"] == 1.0
    greedy = [model.sample(2, 8, prefix=prefix, steps=8, seed=s).tokens for s in (0, 9)]  # entropy, temperature 0
    assert greedy[0] == greedy[1] and greedy[0][0] == greedy[0][1]
    filled = model.infill([prefix[0], None, None, prefix[1], None], steps=3, seed=2)
    assert filled.tokens[0][0] == prefix[0] and filled.tokens[0][3] == prefix[1]


def test_published_cards_validate():
    reg = Registry.default()
    base = reg.model("dream")
    assert base.name == "dream-7b-base" and (base.checkpoint.source, base.checkpoint.location) == ("hub", "Dream-org/Dream-v0-Base-7B")
    assert reg.model("dream-7b-instruct").checkpoint.location == "Dream-org/Dream-v0-Instruct-7B"
    from dlmbench.families.dream.settings import DreamSettings

    st = DreamSettings(**base.settings)
    assert (st.mc_samples, st.alg, st.steps, st.temperature) == (128, "entropy", 128, 0.0)


def test_empty_prefix_starts_after_bos_when_the_window_has_room(tiny):
    _specs, _card, model = tiny
    short = model.sample(2, 10, steps=2, seed=0)
    full = model.sample(2, model.max_length, steps=2, seed=0)  # fills the window: no room for BOS
    assert short.settings["bos_lead"] is True and full.settings["bos_lead"] is False
    assert [len(t) for t in full.tokens] == [model.max_length] * 2
    with pytest.raises(Exception, match="window"):
        model.sample(1, model.max_length + 1, steps=2)
