"""MAUVE task on tiny models: featurization is deterministic and is MAUVE's own, MAUVE(P, P) = 1,
MAUVE against a very different set is lower, and the task runs end to end (AR and diffusion generator)
with every setting recorded and the small-sample flag raised."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("mauve")

from dlmbench.specs import ModelSpec, TaskSpec  # noqa: E402
from dlmbench.tasks.mauve import featurize, mauve_score, run_mauve  # noqa: E402

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a small test of things",
    "the lazy dog sleeps while the quick fox runs",
    "a small world of quick tests and lazy things",
] * 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random GPT-2 saved as a folder, with a card file, loaded through the real AR path."""
    from tiny_zoo import write_tiny_gpt2

    from dlmbench.families.ar.adapter import load_ar

    root = tmp_path_factory.mktemp("tiny_gpt2_mauve")
    write_tiny_gpt2(root, CORPUS * 5, vocab_size=300)
    card = {"name": "tiny-featurizer", "family": "ar", "checkpoint": {"local": str(root / "model")}, "settings": {"batch_size": 4}}
    (root / "tiny-featurizer.yaml").write_text(yaml.safe_dump(card))
    return load_ar(ModelSpec.from_dict(card)), str(root / "tiny-featurizer.yaml")


def test_featurization_is_deterministic_and_matches_mauve_utils(tiny):
    from mauve.utils import featurize_tokens_from_model

    model, _ = tiny
    texts = CORPUS[:4] + ["", "zz"]
    a, kept = featurize(model, texts, batch_size=3)
    b, _ = featurize(model, texts, batch_size=3)
    assert kept == [0, 1, 2, 3, 5]  # the empty text is dropped, as the package does
    assert np.array_equal(a, b)
    c, _ = featurize(model, texts[::-1], batch_size=1)
    np.testing.assert_allclose(c[::-1], a, atol=1e-5)  # order and batching do not matter
    # the package's own featurizer on the same tokens: hidden_states[-1] at the last token
    toks = [torch.tensor([model.tokenizer.encode(texts[i])]) for i in kept]
    ref = featurize_tokens_from_model(model.model, toks, batch_size=2).numpy()
    np.testing.assert_allclose(a, ref, atol=1e-5)


WORDS = ["the", "quick", "brown", "fox", "lazy", "dog", "hello", "world", "small", "test", "things", "over"]
TEXTS = [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)) + f" {WORDS[i % 7]}" for i in range(21)]


def test_mauve_of_a_set_against_itself_and_a_different_set(tiny):
    model, _ = tiny
    assert len(set(TEXTS)) == len(TEXTS)
    p, _ = featurize(model, TEXTS)
    q_same, _ = featurize(model, list(TEXTS))  # the same texts featurized again
    same = mauve_score(p, q_same, num_buckets=2)
    assert same.mauve == pytest.approx(1.0, abs=1e-6) and same.frontier_integral == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(same.p_hist, same.q_hist)
    junk = [("zq" * (3 + i % 5)) + "!" * (i % 3) for i in range(21)]
    q, _ = featurize(model, junk)
    diff = mauve_score(p, q, num_buckets=2)
    assert diff.mauve < 0.5 < same.mauve


def _task(tmp_path, featurizer_card, **settings) -> TaskSpec:
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    return TaskSpec.from_dict({
        "name": "mauve-tiny", "type": "mauve", "dataset": {"source": "local", "path": str(data)},
        "settings": {"n_samples": 6, "length": 8, "featurizer": featurizer_card, **settings},
    })


def _check_against_package(out, generator, featurizer, task, seed, n):
    """The model texts are the generator's own seeded samples, and the MAUVE row is the mauve-text package's
    ``compute_mauve`` (its defaults: auto buckets, k-means seed 25) on features from the package's own
    featurizer of the logged texts."""
    from mauve import compute_mauve
    from mauve.utils import featurize_tokens_from_model

    from dlmbench.seeding import request_seed

    model_ex = sorted((e for e in out.examples if e["kind"] == "model"), key=lambda e: e["index"])
    ref = generator.sample(n, task.settings["length"], seed=request_seed(seed, task.name, "samples"), **dict(task.settings.get("sampler") or {}))
    assert [e["tokens"] for e in model_ex] == [list(t) for t in ref.tokens] and [e["text"] for e in model_ex] == ref.texts

    def feats(kind):
        texts = [e["text"] for e in out.examples if e["kind"] == kind and e["featurized"]]
        toks = [torch.tensor([featurizer.tokenizer.encode(t)]) for t in texts]
        return featurize_tokens_from_model(featurizer.model, toks, batch_size=2).numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = compute_mauve(p_features=feats("reference"), q_features=feats("model"), verbose=False)
    rows = {r.metric: r for r in out.metrics}
    assert rows["mauve"].value == pytest.approx(want.mauve, abs=1e-6)
    assert rows["frontier_integral"].value == pytest.approx(want.frontier_integral, abs=1e-6)


def test_mauve_task_end_to_end_ar(tiny, tmp_path):
    model, card = tiny
    task = _task(tmp_path, card, sampler={"temperature": 1.0})
    with pytest.warns(UserWarning, match="biased towards optimism"):
        out = run_mauve(model, task, seed=0, limit=None)
    rows = {r.metric: r for r in out.metrics}
    assert 0.0 <= rows["mauve"].value <= 1.0 and rows["mauve"].higher_is_better
    assert rows["few_samples_flag"].value == 1.0 and rows["mauve"].n == 6
    s = out.settings
    assert s["featurizer"] == card and s["n_samples"] == 6 and s["n_reference"] == 6
    assert s["num_buckets"] == 2 and s["kmeans_seed"] == 25 and s["sampling_seed"] == 0 and s["mauve_text_version"]
    assert sum(e["kind"] == "model" for e in out.examples) == 6
    _check_against_package(out, model, model, task, 0, 6)
    # the same seed gives the same number
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run_mauve(model, task, seed=0, limit=None)
    assert again.metrics[0].value == rows["mauve"].value


@pytest.mark.slow
def test_mauve_task_diffusion_generator(tiny, tmp_path):
    from dlmbench.families.llada.writer import (
        random_state_dict, save_llada_checkpoint, tiny_llada_config, write_tiny_tokenizer,
    )
    from dlmbench.families.llada.adapter import load_llada

    _, card = tiny
    # a random LLaDA whose output head only favours byte tokens (ids < 256, the tiny tokenizer's text
    # symbols): otherwise greedy samples are reserved ids that decode to empty strings
    config = tiny_llada_config()
    sd = random_state_dict(config, seed=2)
    sd["model.transformer.ff_out.weight"][256:] = 0.0
    folder = save_llada_checkpoint(sd, config, tmp_path / "llada")
    write_tiny_tokenizer(folder)
    llada = load_llada(ModelSpec.from_dict({"name": "tiny-llada", "family": "llada", "checkpoint": {"local": str(folder)},
                                            "max_length": 64, "settings": {"steps": 4, "block_length": 8, "batch_size": 4}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_mauve(llada, _task(tmp_path, card), seed=1, limit=4)
    rows = {r.metric: r for r in out.metrics}
    assert 0.0 <= rows["mauve"].value <= 1.0 and rows["few_samples_flag"].value == 1.0
    assert out.settings["sampler.sampler"].startswith("llada") and out.settings["n_samples"] == 4
    _check_against_package(out, llada, tiny[0], _task(tmp_path, card), 1, 4)
