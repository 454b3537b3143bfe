"""MDLM adapter on tiny checkpoints written in the published formats, loaded through a model card and
``load_model`` (the real code path). Ground truth: the estimator called directly on the published SUBS
head, closed-form expectations, and direct greedy decodes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_dit import make_tiny, request_row, write_card

from dlmbench.families import load_model
from dlmbench.nets.dit import mdlm_subs_log_probs
from dlmbench.interface import ScoreRequest
from dlmbench.errors import BadSetting, CheckpointError
from dlmbench.diffusion.masked import mdlm_nelbo_integrated_mc, mdlm_nelbo_mc
from dlmbench.diffusion.schedules import LogLinearNoise
from dlmbench.registry import Registry
from dlmbench.seeding import request_seed


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    info = make_tiny(tmp_path_factory.mktemp("mdlm"), "mdlm", max_length=32)
    spec = Registry.default([info["specs"]]).model("tiny-mdlm")
    return info, spec, load_model(spec)


def _verse_ids(model, n=12):
    return model.tokenizer.encode("In the beginning God created the heaven and the earth.")[:n]


def test_card_loads_the_published_format(tiny):
    info, spec, model = tiny
    assert model.family == "mdlm" and model.bound == "upper"
    assert model.mask_id == info["n_tokens"] == model.tokenizer.mask_id  # mask appended after the tokenizer's ids
    d = model.describe()
    assert d["format"] == "hf-mdlm" and d["time_conditioning"] is False and d["mc_samples"] == 4
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["state"].items())


@pytest.mark.parametrize("t_estimator", ["auto", "sampled"])
def test_conditional_nll_equals_the_estimator_on_the_published_head(tiny, t_estimator):
    """auto on this time-agnostic checkpoint: t integrated out (mdlm_nelbo_integrated_mc); sampled: mdlm_nelbo_mc."""
    _, spec, _ = tiny
    model = load_model(spec.with_settings({"t_estimator": t_estimator}))
    ids = _verse_ids(model)
    reqs = [ScoreRequest((0,) + tuple(ids[:4]), tuple(ids[4:9]), seed=5), ScoreRequest((0,), tuple(ids[:7]), seed=6)]
    res = model.conditional_nll(reqs)
    assert res.bound == "upper" and res.mc_samples == 4 and res.n_tokens.tolist() == [5, 7]
    assert res.settings["time_sampling"] == "antithetic" and res.settings["stderr"] == "collapsed_strata"
    want = "integrated" if t_estimator == "auto" else "sampled"
    assert res.settings["t_estimator"] == want
    estimator = mdlm_nelbo_integrated_mc if want == "integrated" else mdlm_nelbo_mc

    def published(x_t, sigma):  # MDLM's SUBS parameterization, carry-over included
        return mdlm_subs_log_probs(model.backbone(x_t, sigma.float()), x_t, model.mask_id).double()

    for r, req in zip(range(2), reqs):
        x0, mask = request_row(req)
        with torch.no_grad():
            est = estimator(published, x0, mask, [request_seed(req.seed, "piece", 0)], mask_id=model.mask_id,
                            schedule=LogLinearNoise(1e-3), num_samples=4, time_sampling="antithetic", sampling_eps=1e-3)
        assert res.nll[r] == pytest.approx(est.mean[0], rel=1e-5)
        assert res.stderr[r] == pytest.approx(est.stderr[0], rel=1e-4)


def test_single_token_bound_has_the_closed_form_mean(tiny):
    """One scored token, time-agnostic model: each draw is ``1{masked} (1/t) (-log p)``, masked with probability
    ``(1 - eps) t``, so ``E = (1 - eps)(-log p(tok | ctx, tok masked))`` exactly (sampled t). With t integrated out
    (auto) every draw is that number: ``T c_1 = E[(1/t)(1 - eps) t] = 1 - eps``."""
    _, spec, model = tiny
    ctx, tok = (0, 41, 78, 261), 324
    with torch.no_grad():
        lp = model._denoiser(torch.tensor([list(ctx) + [model.mask_id]]), None)[0, -1, tok].item()
    expect = (1 - 1e-3) * -lp
    res = load_model(spec.with_settings({"t_estimator": "sampled"}), batch_size=64).conditional_nll(
        [ScoreRequest(ctx, (tok,), seed=s) for s in range(120)])
    mean, se = res.nll.mean(), res.nll.std(ddof=1) / math.sqrt(len(res.nll))
    assert abs(mean - expect) < 4 * se
    exact = load_model(spec, batch_size=64).conditional_nll([ScoreRequest(ctx, (tok,), seed=s) for s in range(3)])
    np.testing.assert_allclose(exact.nll, expect, rtol=1e-5)
    assert np.all(exact.stderr < 1e-6 * expect)


def test_numbers_do_not_depend_on_batch_size(tiny):
    _, spec, model = tiny
    ids = _verse_ids(model)
    long = tuple(range(1, 60))  # longer than max_length 32: split into chunks whose bounds add up
    reqs = [ScoreRequest((0,), tuple(ids[:5]), 1), ScoreRequest((0,) + tuple(ids[:2]), tuple(ids[2:9]), 2),
            ScoreRequest((0,), long, 3), ScoreRequest((0,), tuple(ids[:5]), 4)]
    a = model.conditional_nll(reqs)
    b = load_model(spec, batch_size=1).conditional_nll(reqs)
    c = np.concatenate([model.conditional_nll([r]).nll for r in reversed(reqs)])[::-1]
    # same draws whatever the batching; only float32 rounding of the batched forward pass may differ
    np.testing.assert_allclose(a.nll, b.nll, rtol=1e-6)
    np.testing.assert_allclose(a.nll, c, rtol=1e-6)
    assert a.n_tokens[2] == len(long) and a.nll[0] != a.nll[3]  # different seeds, different draws


def _direct_iterative(model, ctx, n):
    """Greedy decode of ``n`` tokens after ``ctx``: unmask the most confident position, one at a time."""
    x = torch.tensor([list(ctx) + [model.mask_id] * n])
    with torch.no_grad():
        for _ in range(n):
            lp = model._denoiser(x, None)[0]
            lp[:, model.mask_id] = -math.inf
            conf, pred = lp.max(-1)
            conf[x[0] != model.mask_id] = -math.inf
            pos = int(conf.argmax())
            x[0, pos] = pred[pos]
    return tuple(x[0, len(ctx):].tolist())


@pytest.mark.parametrize("variant", ["iterative_confidence", "one_shot_argmax"])
def test_greedy_variants_against_direct_decodes(tiny, variant):
    _, spec, model = tiny
    m = load_model(spec.with_settings({"greedy": variant})) if variant != "iterative_confidence" else model
    ctx = (0, 41, 78, 261)
    if variant == "iterative_confidence":
        cont = _direct_iterative(model, ctx, 4)
    else:
        with torch.no_grad():
            lp = model._denoiser(torch.tensor([list(ctx) + [model.mask_id] * 4]), None)[0, len(ctx):]
        cont = tuple(lp.argmax(-1).tolist())
    wrong = cont[:-1] + ((cont[-1] + 1) % model.mask_id,)
    res = m.greedy_match([ScoreRequest(ctx, cont), ScoreRequest(ctx, wrong)])
    assert res.matches.tolist() == [True, False] and res.method == variant
    assert m.describe()["greedy"] == variant


def test_unknown_greedy_variant_and_setting_fail_with_did_you_mean(tiny):
    _, spec, model = tiny
    with pytest.raises(BadSetting, match="unknown setting 'mc_sample' = .*; did you mean 'mc_samples'"):
        load_model(spec.with_settings({"mc_sample": 3}))
    with pytest.raises(BadSetting, match="mdlm sampling: setting 'sampler' = 'first_hiting' is not allowed: .*'first_hitting'"):
        model.sample(1, 4, sampler="first_hiting")
    with pytest.raises(BadSetting, match="mdlm sampling: unknown setting 'temprature' = .*; did you mean 'temperature'"):
        model.infill([1, None, 3], temprature=0.5)


@pytest.mark.parametrize("sampler", ["ddpm_cache", "ddpm", "first_hitting"])
def test_samples_shapes_nfe_and_seeding(tiny, sampler):
    _, spec, model = tiny
    prefix = _verse_ids(model, 3)
    out = model.sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler)
    assert len(out.tokens) == 3 and all(len(t) == 10 for t in out.tokens) and len(out.texts) == 3
    assert all(0 <= tok < model.mask_id for row in out.tokens for tok in row)
    assert out.settings["sampler"] == sampler and out.settings["precision"] == "float64"
    if sampler == "first_hitting":  # one network call per generated token, each row
        assert out.nfe == 10 and out.settings["nfe_per_sample"] == 10
    elif sampler == "ddpm":  # one call per step while a mask is left, plus the final argmax if one is left
        assert 1 <= out.nfe <= 7 and out.settings["steps"] == 6 and not out.settings["cache"]
    else:
        assert 1 <= out.nfe <= 7 and out.settings["cache"] is True
    again = model.sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler)
    assert again.tokens == out.tokens
    one_by_one = load_model(spec, batch_size=1).sample(3, 10, prefix=prefix, steps=6, seed=7, sampler=sampler)
    assert one_by_one.tokens == out.tokens  # per-row seeds: the batch size does not change a sample
    assert model.sample(3, 10, prefix=prefix, steps=6, seed=8, sampler=sampler).tokens != out.tokens


def test_sampling_settings_are_recorded_and_checked(tiny):
    _, _, model = tiny
    out = model.sample(2, 8, steps=4, seed=1, top_p=0.9, precision="float32", temperature=0.8)
    assert (out.settings["top_p"], out.settings["precision"], out.settings["temperature"]) == (0.9, "float32", 0.8)
    with pytest.raises(BadSetting, match="'precision' = 'float16' is not allowed"):
        model.sample(1, 4, precision="float16")
    with pytest.raises(BadSetting, match="'top_p' = 1.5 is not allowed"):
        model.sample(1, 4, top_p=1.5)
    with pytest.raises(BadSetting, match="'temperature' = -1 is not allowed"):
        model.sample(1, 4, temperature=-1)
    with pytest.raises(BadSetting, match="'steps' = 0 is not allowed"):
        model.sample(1, 4, steps=0)
    assert model.settings.temperature == 1.0  # a per-call override leaves the model's settings as they were


@pytest.mark.parametrize("sampler", ["ddpm", "first_hitting"])
def test_zero_temperature_unmasks_to_the_argmax(tiny, sampler):
    _, _, model = tiny
    ctx = (0, 41, 78, 261)
    with torch.no_grad():
        best = int(model._denoiser(torch.tensor([list(ctx) + [model.mask_id]]), None)[0, -1].argmax())
    for seed in range(3):
        out = model.sample(1, 1, prefix=ctx, steps=4, seed=seed, sampler=sampler, temperature=0)
        assert out.tokens == [[best]] and out.settings["temperature"] == 0


def test_long_samples_are_semi_autoregressive(tiny):
    _, _, model = tiny
    out = model.sample(2, 45, steps=3, seed=2)  # max_length 32: windows of 32 advancing by 16
    assert all(len(t) == 45 for t in out.tokens)
    assert out.settings["semi_autoregressive"] == {"window": 32, "stride": 16} and out.nfe <= 2 * 4


def test_infill_keeps_the_known_tokens(tiny):
    _, _, model = tiny
    ids = _verse_ids(model, 8)
    holes = [ids[0], None, None, ids[3], None, ids[5]]
    out = model.infill(holes, steps=5, seed=3)
    filled = out.tokens[0]
    assert len(filled) == 6 and all(f == h for f, h in zip(filled, holes) if h is not None)
    assert all(0 <= f < model.mask_id for f in filled)
    assert model.infill(holes, steps=5, seed=3).tokens == out.tokens


def test_lightning_checkpoint_loads_ema_weights(tmp_path):
    info = make_tiny(tmp_path, "mdlm", fmt="lightning")
    model = load_model(Registry.default([info["specs"]]).model("tiny-mdlm"))
    sd = model.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in info["ema"].items())
    assert model.describe()["ema"] is True and model.describe()["format"] == "lightning-ckpt"
    raw = load_model(Registry.default([info["specs"]]).model("tiny-mdlm").with_settings({"use_ema": False}))
    assert torch.equal(raw.backbone.state_dict()["vocab_embed.embedding"], info["state"]["vocab_embed.embedding"])


def test_sedd_parameterized_lightning_checkpoint_is_refused(tmp_path):
    info = make_tiny(tmp_path, "sedd", fmt="lightning")  # MDLM repo's sedd.ckpt layout
    card = {**info["card"], "name": "wrong-family", "family": "mdlm"}
    write_card(info["specs"], card)
    with pytest.raises(CheckpointError, match="family sedd"):
        load_model(Registry.default([info["specs"]]).model("wrong-family"))


def test_tokenizer_vocabulary_must_match_the_checkpoint(tmp_path, tiny):
    info, _, _ = tiny
    from dlmbench.nets.dit_writer import tiny_config, write_mdlm_hub_folder

    write_mdlm_hub_folder(tmp_path / "ckpt", tiny_config(vocab_size=info["n_tokens"] + 5, time_conditioning=False))
    card = {**info["card"], "name": "mismatch", "checkpoint": {"local": str(tmp_path / "ckpt")}}
    write_card(tmp_path / "specs", card)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_model(Registry.default([tmp_path / "specs"]).model("mismatch"))


def test_packaged_card_offline_fails_in_one_line():
    spec = Registry.default().model("mdlm")
    assert spec.name == "mdlm-owt" and spec.checkpoint.location == "kuleshov-group/mdlm-owt"
    with pytest.raises(CheckpointError) as e:
        load_model(spec)
    assert "\n" not in str(e.value) and "kuleshov-group/mdlm-owt" in str(e.value)


def test_cli_runs_kjv_end_to_end(tiny, tmp_path, capsys):
    from dlmbench.cli import main

    info, _, _ = tiny
    code = main(["--specs", str(info["specs"]), "run", "--model", "tiny-mdlm", "--task", "kjv", "--limit", "3",
                 "--out", str(tmp_path / "results"), "--json"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    ppl = next(r for r in rows if r["metric"] == "perplexity")
    assert ppl["bound"] == "upper" and ppl["family"] == "mdlm" and ppl["n"] > 0
    # a random network over 401 ids: a finite perplexity above 1 (bounded by ~e^(nll per token))
    assert 1 < ppl["value"] < math.inf


def test_tokenizer_saved_beside_the_weights_is_used(tmp_path, tiny):
    import shutil

    info, _, _ = tiny
    ckpt = tmp_path / "with-tokenizer"
    shutil.copytree(info["checkpoint"], ckpt)
    shutil.copytree(info["tokenizer"], ckpt, dirs_exist_ok=True)
    card = {k: v for k, v in info["card"].items() if k != "tokenizer"}
    write_card(tmp_path / "specs", {**card, "name": "beside", "checkpoint": {"local": str(ckpt)}})
    model = load_model(Registry.default([tmp_path / "specs"]).model("beside"))
    assert model.tokenizer.name == f"local:{ckpt}" and model.mask_id == info["n_tokens"]


def test_topk_decoding_sampler_is_the_reference_decoding(tiny):
    """``sampler: topk`` is diffusion-vs-ar's easy-first decoding on the model's own denoiser: with the
    deterministic strategy it equals a direct call of the pure sampler; the prompt never changes; one network
    call per step."""
    from dlmbench.diffusion.remasking import topk_decoding

    _, _, model = tiny
    prefix = _verse_ids(model, 5)
    out = model.sample(2, 8, prefix=prefix, steps=4, seed=0, sampler="topk", topk_strategy="deterministic-linear")
    canvas = torch.tensor([prefix + [model.mask_id] * 8] * 2)
    with torch.no_grad():
        ref = topk_decoding(lambda x: model._denoiser(x, None), canvas, mask_id=model.mask_id, steps=4, strategy="deterministic-linear")
    assert out.tokens == ref.tokens[:, len(prefix):].tolist()
    assert out.settings["sampler"] == "topk" and out.settings["topk_strategy"] == "deterministic-linear"
    assert out.settings["nfe_per_sample"] == 4 and model.mask_id not in sum(out.tokens, [])
    noisy = model.sample(2, 8, prefix=prefix, steps=4, seed=0, sampler="topk")  # stochastic0.5-linear, seeded
    assert noisy.tokens == model.sample(2, 8, prefix=prefix, steps=4, seed=0, sampler="topk").tokens


def test_t_estimator_follows_the_network_and_refuses_integrating_a_timed_one(tiny):
    """auto: integrated for a time-agnostic network, sampled for a time-conditioned one; integrated on a
    time-conditioned network is a one-line BadSpec (its output depends on t, so t cannot be integrated out)."""
    import dataclasses

    from dlmbench.errors import BadSpec

    _, spec, _ = tiny
    model = load_model(spec)
    assert model._t_estimator() == "integrated"
    model.config = dataclasses.replace(model.config, time_conditioning=True)
    assert model._t_estimator() == "sampled"
    model.settings = model.settings.model_copy(update={"t_estimator": "integrated"})
    with pytest.raises(BadSpec, match="time-conditioned"):
        model._t_estimator()
