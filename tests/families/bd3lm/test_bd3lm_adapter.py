"""BD3-LM adapter on a tiny checkpoint in the published HF format, loaded through a model card and
``load_model``. Ground truth: MDLM's adapter on the same weights (one block = MDLM, same seeds), an AR pass of
the same network (block size 1, exact), and the sampler's own contract (prefix, seeds, argmax at temperature 0)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_bd3lm import make_tiny_bd3lm
from tiny_dit import write_card

from dlmbench.errors import BadSetting, CheckpointError
from dlmbench.families import load_model
from dlmbench.interface import ScoreRequest
from dlmbench.nets.dit_writer import write_mdlm_hub_folder
from dlmbench.registry import Registry


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("bd3lm-adapter")
    info = make_tiny_bd3lm(root, block_size=4, max_length=32)
    spec = Registry.default([info["specs"]]).model("tiny-bd3lm")
    return info, spec, load_model(spec)


def variant(info, name: str, **settings):
    card = {**info["card"], "name": name, "settings": {**info["card"]["settings"], **settings}}
    write_card(info["specs"], card)
    return load_model(Registry.default([info["specs"]]).model(name))


def ids(model, n=14):
    return model.tokenizer.encode("In the beginning God created the heaven and the earth.")[:n]


def test_card_loads_the_published_format(tiny):
    info, _spec, model = tiny
    assert model.family == "bd3lm" and model.bound == "upper" and model.block_size == 4
    assert model.mask_id == info["n_tokens"] == model.tokenizer.mask_id
    d = model.describe()
    assert d["format"] == "hf-bd3lm" and d["trained_block_size"] == 4 and d["block_size_used"] == 4
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["state"].items())


def test_one_block_equals_mdlm_on_the_same_weights_and_seeds(tiny, tmp_path):
    info, _spec, _model = tiny
    x = ids(_model)
    reqs = [ScoreRequest((0,) + tuple(x[:4]), tuple(x[4:11]), seed=5), ScoreRequest((), tuple(x[:9]), seed=6)]
    bd3 = variant(info, "tiny-bd3lm-one-block", block_size=32, mc_samples=6).conditional_nll(reqs)
    write_mdlm_hub_folder(tmp_path / "mdlm", info["config"].dit, info["state"])
    mdlm_card = {**info["card"], "name": "tiny-mdlm-same", "family": "mdlm", "checkpoint": {"local": str(tmp_path / "mdlm")},
                 "settings": {"mc_samples": 6, "batch_size": 4, "noise_eps": 0.0,
                              "t_estimator": "sampled"}}  # MDLM integrates t out by default; BD3-LM samples it
    write_card(info["specs"], mdlm_card)
    mdlm = load_model(Registry.default([info["specs"]]).model("tiny-mdlm-same")).conditional_nll(reqs)
    assert bd3.bound == mdlm.bound == "upper"
    np.testing.assert_allclose(bd3.nll, mdlm.nll, rtol=1e-5)
    np.testing.assert_allclose(bd3.stderr, mdlm.stderr, rtol=1e-4)


def test_block_size_one_is_exact_and_equals_an_ar_pass(tiny):
    info, _spec, base = tiny
    model = variant(info, "tiny-bd3lm-ar", block_size=1)
    x = ids(model)
    reqs = [ScoreRequest((0,) + tuple(x[:3]), tuple(x[3:10]), seed=1), ScoreRequest((0,) + tuple(x[:3]), tuple(x[3:10]), seed=99)]
    res = model.conditional_nll(reqs)
    assert res.bound == "exact" and model.bound == "exact" and (res.stderr == 0).all() and res.mc_samples == 1
    assert res.nll[0] == res.nll[1]  # no Monte Carlo: the seed does not matter
    row = [0] + x[:10]
    want = 0.0
    with torch.no_grad():
        for i in range(4, 11):
            inp = torch.tensor([row[:i] + [model.mask_id]])
            logits = model.backbone.forward_block_causal(inp, block_size=1)[0, -1].double()
            logits[model.mask_id] = -math.inf
            want -= float(torch.log_softmax(logits, -1)[row[i]])
    assert res.nll[0] == pytest.approx(want, rel=1e-5)


def test_greedy_names_its_method_and_accepts_the_decode(tiny):
    info, _spec, model = tiny
    ctx = [0] + ids(model, 5)
    out = model.sample(1, 7, prefix=ctx, temperature=0.0, seed=0)  # greedy decode, block by block
    cont = tuple(out.tokens[0])
    res = model.greedy_match([ScoreRequest(tuple(ctx), cont), ScoreRequest(tuple(ctx), cont[:-1] + ((cont[-1] + 1) % model.mask_id,))])
    assert res.method == "bd3lm_block_iterative_confidence"
    assert res.matches.tolist() == [True, False]


@pytest.mark.parametrize("sampler", ["first_hitting", "ddpm_cache"])
def test_samples_keep_the_prefix_and_are_seeded_per_row(tiny, sampler):
    _info, _spec, model = tiny
    prefix = [0] + ids(model, 4)
    a = model.sample(3, 9, prefix=prefix, seed=4, sampler=sampler, steps=8, top_p=0.9)
    assert [len(r) for r in a.tokens] == [9, 9, 9]
    assert all(0 <= t < model.mask_id for r in a.tokens for t in r)
    assert a.settings["sampler"] == sampler and a.settings["top_p"] == 0.9 and a.settings["kv_cache"] is False
    b = model.sample(2, 9, prefix=prefix, seed=4, sampler=sampler, steps=8, top_p=0.9)
    assert b.tokens == a.tokens[:2]
    if sampler == "first_hitting":
        assert a.settings["nfe_per_sample"] == 9.0  # one network call per generated token


def test_long_samples_slide_the_context_window(tiny):
    _info, _spec, model = tiny
    out = model.sample(1, 40, seed=2)  # 40 tokens through a 32-position model
    assert len(out.tokens[0]) == 40 and out.settings["window"] == 32


def test_bad_settings_and_missing_checkpoints_are_one_line(tiny, tmp_path):
    _info, _spec, model = tiny
    with pytest.raises(BadSetting, match="sampler"):
        model.sample(1, 4, sampler="analytic")
    spec = Registry.default().model("bd3lm")
    assert spec.name == "bd3lm-owt-block4" and spec.checkpoint.location == "kuleshov-group/bd3lm-owt-block_size4"
    with pytest.raises(CheckpointError) as e:
        load_model(spec)
    assert "\n" not in str(e.value)


def test_cli_runs_kjv_end_to_end(tiny, tmp_path, capsys):
    from dlmbench.cli import main

    info, _, _ = tiny
    code = main(["--specs", str(info["specs"]), "run", "--model", "tiny-bd3lm", "--task", "kjv", "--limit", "3",
                 "--out", str(tmp_path / "results"), "--json"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    ppl = next(r for r in rows if r["metric"] == "perplexity")
    assert ppl["bound"] == "upper" and ppl["family"] == "bd3lm" and ppl["n"] > 0 and 1 < ppl["value"] < math.inf


@pytest.mark.parametrize(("sampler", "temperature"), [("first_hitting", 1.0), ("ddpm_cache", 1.0), ("first_hitting", 0.0)])
def test_kv_cache_draws_the_same_samples(tiny, sampler, temperature):
    info, _spec, _model = tiny
    card = {**info["card"], "name": "tiny-bd3lm-f64", "dtype": "float64"}
    write_card(info["specs"], card)
    model = load_model(Registry.default([info["specs"]]).model("tiny-bd3lm-f64"))
    prefix = [0] + ids(model, 5)
    kw = dict(prefix=prefix, seed=8, sampler=sampler, steps=6, temperature=temperature)
    a = model.sample(3, 40, kv_cache=False, **kw)  # 46 tokens through 32 positions: the window slides too
    b = model.sample(3, 40, kv_cache=True, **kw)
    assert b.settings["kv_cache"] is True and a.settings["kv_cache"] is False
    assert a.tokens == b.tokens
