"""DUO adapter on a tiny checkpoint in the published HF format, loaded through a model card and ``load_model``.
Ground truth: the estimator applied to the loaded network by hand (same seeds), the network's own argmax for the
greedy check, and the sampler's contract (prefix, per-row seeds, NFE)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_duo import make_tiny_duo

from dlmbench.errors import BadSetting, CheckpointError
from dlmbench.families import load_model
from dlmbench.interface import ScoreRequest
from dlmbench.registry import Registry
from dlmbench.seeding import request_seed


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("duo-adapter")
    info = make_tiny_duo(root, max_length=32)
    spec = Registry.default([info["specs"]]).model("tiny-duo")
    return info, spec, load_model(spec)


def ids(model, n=14):
    return model.tokenizer.encode("In the beginning God created the heaven and the earth.")[:n]


def test_card_loads_the_published_format(tiny):
    info, _spec, model = tiny
    assert model.family == "duo" and model.vocab_size == info["n_tokens"] + 1
    d = model.describe()
    assert d["format"] == "hf-duo" and d["time_conditioning"] is True
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["state"].items())


def test_conditional_bound_is_the_estimator_on_the_network(tiny):
    from dlmbench.families.duo.estimator import UniformLogLinear, duo_nelbo_mc

    _info, _spec, model = tiny
    ctx, cont = (0, *ids(model, 4)), tuple(ids(model, 12)[4:])
    res = model.conditional_nll([ScoreRequest(ctx, cont, seed=3)])
    x0 = torch.tensor([list(ctx) + list(cont)])
    mask = torch.zeros_like(x0, dtype=torch.bool)
    mask[0, len(ctx):] = True

    def den(x_t, sigma):
        with torch.no_grad():
            return torch.log_softmax(model.backbone(x_t, sigma.float()).float(), -1)

    want = duo_nelbo_mc(den, x0, mask, [request_seed(3, "piece", 0)], vocab_size=model.vocab_size,
                        schedule=UniformLogLinear(1e-3), num_samples=4)
    assert res.bound == "upper" and res.n_tokens.tolist() == [len(cont)]
    assert res.nll[0] == pytest.approx(float(want.mean[0]), rel=1e-6)
    assert res.stderr[0] == pytest.approx(float(want.stderr[0]), rel=1e-6)
    assert res.settings["estimator"] == "duo_uniform_nelbo"


def test_greedy_accepts_the_networks_argmax_and_rejects_a_change(tiny):
    _info, _spec, model = tiny
    ctx = (0, *ids(model, 5))
    n = 4
    noise = torch.randint(0, model.vocab_size, (len(ctx) + n,), generator=torch.Generator().manual_seed(
        request_seed(0, "duo-greedy")))
    x_t = torch.cat([torch.tensor(ctx), noise[len(ctx):]])[None]  # the context, then the prior noise at the targets
    with torch.no_grad():
        pred = model._denoiser(x_t, None).argmax(-1)[0, len(ctx):].tolist()
    good = tuple(pred)
    bad = good[:-1] + ((good[-1] + 1) % model.vocab_size,)
    res = model.greedy_match([ScoreRequest(ctx, good, seed=0), ScoreRequest(ctx, bad, seed=0)])
    assert res.matches.tolist() == [True, False] and "one_shot_argmax" in res.method


def test_samples_keep_the_prefix_are_seeded_per_row_and_count_nfe(tiny):
    _info, _spec, model = tiny
    prefix = [0] + ids(model, 4)
    a = model.sample(3, 9, prefix=prefix, seed=4, steps=6, top_p=0.9)
    assert [len(r) for r in a.tokens] == [9, 9, 9]
    assert a.nfe == 7 and a.settings["nfe_per_sample"] == 7.0 and a.settings["top_p"] == 0.9
    b = model.sample(2, 9, prefix=prefix, seed=4, steps=6, top_p=0.9, batch_size=1)
    assert b.tokens == a.tokens[:2]
    few = model.sample(2, 9, prefix=prefix, seed=4, steps=8, noise_removal="greedy")
    assert few.settings["noise_removal"] == "greedy" and few.nfe == 9
    assert all(isinstance(t, str) for t in few.texts)


def test_bad_settings_and_missing_checkpoints_are_one_line(tiny):
    _info, _spec, model = tiny
    with pytest.raises(BadSetting, match="noise_removal"):
        model.sample(1, 4, noise_removal="analytic")
    spec = Registry.default().model("duo")
    assert spec.name == "duo-owt" and spec.checkpoint.location == "s-sahoo/duo"
    assert Registry.default().model("duo-distilled").checkpoint.location == "s-sahoo/duo-distilled"
    with pytest.raises(CheckpointError) as e:
        load_model(spec)
    assert "\n" not in str(e.value)


def test_cli_runs_kjv_end_to_end(tiny, tmp_path, capsys):
    from dlmbench.cli import main

    info, _, _ = tiny
    code = main(["--specs", str(info["specs"]), "run", "--model", "tiny-duo", "--task", "kjv", "--limit", "3",
                 "--out", str(tmp_path / "results"), "--json"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    ppl = next(r for r in rows if r["metric"] == "perplexity")
    assert ppl["bound"] == "upper" and ppl["family"] == "duo" and ppl["n"] > 0 and 1 < ppl["value"] < math.inf
    assert np.isfinite(ppl["stderr"])


def test_long_samples_slide_the_window_over_the_clean_past(tiny):
    _info, _spec, model = tiny
    prefix = [0] + ids(model, 4)
    out = model.sample(2, 50, prefix=prefix, seed=2, steps=3)  # 55 tokens through a 32-position model
    assert [len(r) for r in out.tokens] == [50, 50]
    semi = out.settings["semi_autoregressive"]
    assert semi["window"] == 32 and semi["stride"] == 16 and semi["windows"] == 3  # 27 new, then 16, then 7
    assert out.nfe == 3 * 4 and out.settings["nfe_per_sample"] == 12.0
    short = model.sample(2, 27, prefix=prefix, seed=2, steps=3)  # the first window alone: the same tokens
    assert [r[:27] for r in out.tokens] == short.tokens
