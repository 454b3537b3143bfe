"""The ``genppl`` task end to end with an AR generator and a diffusion (MDLM) generator, scored by a tiny
GPT-2 evaluation model.

Ground truth is computed here, independently of the task's scoring code: the samples are the generator's own
``sample`` call with the task's seed; gen-PPL from a direct forward of the evaluator's Hugging Face network on
the (retokenized) samples, first token unscored; unigram entropies and the reference entropy counted by hand.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
import yaml

from dlmbench.seeding import request_seed
from dlmbench.specs import ModelSpec, TaskSpec
from dlmbench.tasks.genppl import run_genppl

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a small test of things",
    "the lazy dog sleeps while the quick fox runs",
    "a small world of quick tests and lazy things",
] * 5
LENGTH = 12
N = 4


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    """A tiny random GPT-2 (context 64) and its card file: the evaluation model, and the AR generator."""
    from tiny_zoo import write_tiny_gpt2

    from dlmbench.families.ar.adapter import load_ar

    root = tmp_path_factory.mktemp("genppl_gpt2")
    write_tiny_gpt2(root, CORPUS * 5, vocab_size=300)
    card = {"name": "tiny-genppl-eval", "family": "ar", "checkpoint": {"local": str(root / "model")}, "settings": {"batch_size": 4}}
    path = root / "tiny-genppl-eval.yaml"
    path.write_text(yaml.safe_dump(card))
    return load_ar(ModelSpec.from_dict(card)), str(path)


def _task(tmp_path, eval_card, **settings) -> TaskSpec:
    data = tmp_path / "reference.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    return TaskSpec.from_dict({
        "name": "genppl-tiny", "type": "genppl", "dataset": {"source": "local", "path": str(data)},
        "settings": {"n_samples": N, "length": LENGTH, "eval_model": eval_card, **settings},
    })


def _hand_entropy(ids) -> float:
    counts = np.array(list(Counter(ids).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _evaluator_nll(ev, toks: list[int], *, first_scored_after: int | None = None) -> tuple[float, int]:
    """Summed NLL of ``toks[1:]`` given the earlier tokens (or of all of ``toks`` after a BOS id), straight from
    the HF network's logits."""
    ids = ([first_scored_after] if first_scored_after is not None else []) + list(toks)
    with torch.no_grad():
        logits = ev.model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    nll = -sum(float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1))
    return nll, len(ids) - 1


def _check_common(out, gen, task, seed):
    rows = {r.metric: r for r in out.metrics}
    # the samples are the generator's own, from the task's seed, of the asked length
    ref_sample = gen.sample(N, LENGTH, seed=request_seed(seed, task.name, "samples"), **dict(task.settings.get("sampler") or {}))
    samples = [e["tokens"] for e in sorted(out.examples, key=lambda e: e["index"])]
    assert samples == [list(s) for s in ref_sample.tokens] and all(len(s) == LENGTH for s in samples)
    # NFE per sample: an AR sample takes one call per token; a diffusion sample the calls its rows took part in,
    # whatever the batch size (the batched calls summed over chunks are recorded beside it)
    assert rows["nfe"].value == ref_sample.settings.get("nfe_per_sample", ref_sample.nfe)
    assert rows["nfe"].settings["batched_calls"] == ref_sample.nfe
    # entropy: by hand on the generator's own ids, averaged over samples (s.e. with ddof 1)
    ent = np.array([_hand_entropy(s) for s in samples])
    assert rows["entropy"].value == pytest.approx(ent.mean(), abs=1e-12)
    assert rows["entropy"].stderr == pytest.approx(ent.std(ddof=1) / math.sqrt(N), abs=1e-12)
    # reference: the corpus tokenized by the generator's tokenizer, consecutive chunks of LENGTH tokens
    stream = [t for text in CORPUS for t in gen.tokenizer.encode(text)]
    chunks = [stream[i * LENGTH : (i + 1) * LENGTH] for i in range(max(N, 8))]
    ref = np.mean([_hand_entropy(c) for c in chunks])
    assert rows["reference_entropy"].value == pytest.approx(ref, abs=1e-12) and rows["reference_entropy"].n == max(N, 8)
    margin = task.settings.get("entropy_margin", 0.2)
    assert rows["low_entropy_flag"].value == float(ent.mean() < ref - margin)
    # cost: generated tokens per second is the same wall time as seconds per sample, per token
    assert rows["tokens_per_second"].value * rows["seconds_per_sample"].value == pytest.approx(LENGTH, rel=1e-9)
    assert rows["tokens_per_second"].higher_is_better and rows["tokens_per_second"].settings["tokens"] == N * LENGTH
    return rows, samples


def test_genppl_ar_generator_all_conventions(evaluator, tmp_path):
    ev, card = evaluator
    gen = ev  # the same tiny GPT-2 generates (temperature 1, its card's sampler) and evaluates
    for convention in ("mdlm", "sedd", "bos"):
        task = _task(tmp_path, card, convention=convention)
        out = run_genppl(gen, task, seed=3, limit=None)
        rows, samples = _check_common(out, gen, task, 3)
        per = []
        for ids in samples:
            if convention == "sedd":  # the generator's ids as they are (same tokenizer), first token unscored
                per.append(_evaluator_nll(ev, ids))
            elif convention == "mdlm":  # decode, retokenize, first token unscored
                per.append(_evaluator_nll(ev, ev.tokenizer.encode(gen.tokenizer.decode(ids))))
            else:  # retokenize, BOS (id 0 in this tokenizer) prepended so every token is scored
                per.append(_evaluator_nll(ev, ev.tokenizer.encode(gen.tokenizer.decode(ids)), first_scored_after=0))
        nll, ntok = np.array([p[0] for p in per]), np.array([p[1] for p in per])
        want = math.exp(nll.sum() / ntok.sum()) if convention == "mdlm" else float(np.mean(np.exp(nll / ntok)))
        assert rows["gen_ppl"].value == pytest.approx(want, rel=1e-6), convention  # float32 network, other batch shapes
        assert [e["n_tokens"] for e in sorted(out.examples, key=lambda e: e["index"])] == ntok.tolist()
        assert out.settings["convention"] == convention and out.settings["eval_model"] == card


@pytest.mark.slow
def test_genppl_diffusion_generator(evaluator, tmp_path):
    """A tiny MDLM (its own BPE, different from the evaluator's): samples decoded and retokenized (``mdlm``
    convention, token-weighted); the ``sedd`` convention refuses the different tokenizer."""
    from tiny_dit import make_tiny

    from dlmbench.families import load_model
    from dlmbench.errors import BadSpec

    ev, card = evaluator
    gen = load_model(ModelSpec.from_dict(make_tiny(tmp_path / "mdlm", "mdlm", max_length=32, seed=1, steps=16)["card"]))
    assert gen.tokenizer.vocab_size != ev.tokenizer.vocab_size
    task = _task(tmp_path, card, sampler={"temperature": 1.0})
    out = run_genppl(gen, task, seed=7, limit=None)
    rows, samples = _check_common(out, gen, task, 7)
    per = [_evaluator_nll(ev, ev.tokenizer.encode(gen.tokenizer.decode(ids))) for ids in samples]
    nll, ntok = np.array([p[0] for p in per]), np.array([p[1] for p in per])
    assert rows["gen_ppl"].value == pytest.approx(math.exp(nll.sum() / ntok.sum()), rel=1e-6)
    assert out.settings["sampler.sampler"] and out.settings["sampler.temperature"] == 1.0
    with pytest.raises(BadSpec, match="same tokenizer"):
        run_genppl(gen, _task(tmp_path, card, convention="sedd"), seed=7, limit=None)


def test_eval_model_from_a_specs_folder_and_typos_fail_before_any_work(tmp_path):
    """The evaluator card is resolved with the run's registry (``--specs`` folders included) and travels in
    the task spec; a misspelt evaluator is a did-you-mean error at resolve time, not after sampling."""
    from tiny_zoo import make_zoo

    from dlmbench import api
    from dlmbench.errors import UnknownName
    from dlmbench.registry import Registry

    specs = make_zoo(tmp_path / "zoo", llada=False)
    card = {"name": "tiny-genppl", "type": "genppl", "dataset": {"source": "local", "path": str(tmp_path / "zoo" / "docs.jsonl"), "field": "text"},
            "settings": {"n_samples": 2, "length": 8, "eval_model": "tiny-gpt2"}}
    (specs / "tasks" / "tiny-genppl.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(UnknownName, match="did you mean 'tiny-gpt2'"):
        api.resolve("tiny-gpt2", "tiny-genppl", settings={"eval_model": "tiny-gtp2"}, specs=[specs])
    assert "tiny-gpt2" not in Registry.default().models  # only the specs folder knows it
    run = api.resolve("tiny-gpt2", "tiny-genppl", specs=[specs])
    assert run.task.settings["eval_model_card"]["name"] == "tiny-gpt2"
    rec = api.execute(run, out=tmp_path / "results")
    rows = {r.metric: r for r in rec.rows}
    assert rows["gen_ppl"].value > 1 and rows["gen_ppl"].settings["eval_model"] == "tiny-gpt2"
