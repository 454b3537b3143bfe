"""Perplexity protocols through the real perplexity task on a tiny random GPT-2 whose tokenizer's BOS
(``<|im_start|>``, id 1) is not the model's prefix token (``<|endoftext|>``, id 0), like SmolLM2's GGUF:

* one prefix rule: the token fed before each document is the model's prefix token, and the row records the
  token that was fed (the ids the network receives are intercepted);
* "join documents with \\n, non-overlapping C-token chunks, every token scored" through the ``mdlm-wrap`` preset
  with explicit overrides equals a second implementation written here with plain loops over token ids and the
  network's logits;
* the ``lmeval-rolling`` preset equals lm-eval's own rolling windows (``lm_eval.utils.get_rolling_token_windows``
  and ``make_disjoint_window``, the independent reference) scored with the network's logits, token and word
  perplexity;
* every loaded record is accounted for in the row (``n_skipped``, ``skipped``).
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from dlmbench.metrics import names
from dlmbench.specs import CheckpointRef, ModelSpec, TaskSpec

CTX = 32  # n_positions of the tiny model
PREFIX, CHAT_BOS = 0, 1  # <|endoftext|>, <|im_start|>
TEXTS = [
    "the quick brown fox jumps over the lazy dog and the small world",
    "hello world, this is a small test of things",
    "a lazy dog sleeps while the quick fox runs over the hill and the dog wakes up to see the fox far away",
    "things",
    "the small fox and the lazy dog are friends in a small world of quick things",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    root = tmp_path_factory.mktemp("tiny_chat_gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS * 30, trainer)
    (root / "bpe").mkdir()
    tok.model.save(str(root / "bpe"))
    hf_tok = GPT2Tokenizer.from_pretrained(
        str(root / "bpe"), bos_token="<|im_start|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id) == (CHAT_BOS, PREFIX)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(hf_tok), n_positions=CTX, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=CHAT_BOS, eos_token_id=PREFIX, initializer_range=0.3)
    GPT2LMHeadModel(config).eval().save_pretrained(str(root / "model"))
    hf_tok.save_pretrained(str(root / "model"))
    return root / "model"


def _load(folder, **settings):
    from dlmbench.families.ar.adapter import load_ar

    spec = ModelSpec(name="tiny-chat", family="ar", checkpoint=CheckpointRef("local", str(folder)), settings=settings)
    return load_ar(spec, batch_size=4)


@pytest.fixture(scope="module")
def model(folder):
    return _load(folder, prefix_token_id=PREFIX)  # as the smollm2-135m card: plain text after <|endoftext|>


@pytest.fixture(scope="module")
def net(folder):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(str(folder)).eval()


def _data(tmp_path, texts) -> str:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def _task(path: str, packing: dict, **dataset) -> TaskSpec:
    return TaskSpec.from_dict(
        {"name": "toy", "type": "perplexity", "dataset": {"source": "local", "path": path, **dataset}, "packing": packing}
    )


def _run(model, task):
    from dlmbench.tasks.perplexity import run_perplexity

    out = run_perplexity(model, task, seed=0, limit=None)
    return {m.metric: m for m in out.metrics}, out.settings


@torch.no_grad()
def _logp(net, ids: list[int]) -> torch.Tensor:
    """log-softmax (float64) of the network's logits at every position of ``ids``."""
    return torch.log_softmax(net(input_ids=torch.tensor([ids])).logits[0].double(), -1)


def _fed_ids(model, monkeypatch) -> list[list[int]]:
    """Record the rows of input ids every forward pass of ``model`` receives (padding cut by the mask)."""
    fed: list[list[int]] = []
    original = type(model)._hidden_and_logits

    def spy(self, ids, mask, rows, cols):
        for r in range(ids.shape[0]):
            fed.append([int(t) for t, m in zip(ids[r].tolist(), mask[r].tolist()) if m])
        yield from original(self, ids, mask, rows, cols)

    monkeypatch.setattr(type(model), "_hidden_and_logits", spy)
    return fed


# ---------------------------------------------------------------------------------------- one prefix rule


@pytest.mark.parametrize("packing", [
    {"mode": "document", "first_token": "prefixed", "add_eos": False},
    {"mode": "document", "add_bos": True, "add_eos": False},  # the former spelling
    {"preset": "lmeval-rolling"},
    {"preset": "mdlm-wrap", "block_size": 16},
    {"preset": "gpt2-sliding", "block_size": 16, "stride": 8},
])
def test_the_token_fed_is_the_models_prefix_and_is_recorded(model, tmp_path, monkeypatch, packing):
    fed = _fed_ids(model, monkeypatch)
    _, settings = _run(model, _task(_data(tmp_path, TEXTS), packing))
    assert settings["prefix_token"] == {"id": PREFIX, "text": "<|endoftext|>"}
    assert CHAT_BOS not in {t for row in fed for t in row}  # the tokenizer's BOS is never fed
    starts = sum(row[0] == PREFIX for row in fed)  # text never encodes to the special id 0
    if packing.get("mode") == "document" or packing.get("preset") == "mdlm-wrap":
        assert starts == settings["n_requests"]  # every document / block starts with it (later windows of a long one do not)
    else:
        assert starts >= 1


def test_auto_prefix_feeds_and_records_the_tokenizers_bos(folder, tmp_path, monkeypatch):
    auto = _load(folder)  # prefix_token_id: auto = the tokenizer's BOS
    fed = _fed_ids(auto, monkeypatch)
    _, settings = _run(auto, _task(_data(tmp_path, TEXTS), {"mode": "document", "add_eos": False}))
    assert settings["prefix_token"] == {"id": CHAT_BOS, "text": "<|im_start|>"}
    assert sum(row[0] == CHAT_BOS for row in fed) == settings["n_requests"] and PREFIX not in {t for row in fed for t in row}


def test_unscored_first_token_feeds_no_prefix(model, net, tmp_path, monkeypatch):
    texts = [t for t in TEXTS if len(model.tokenizer.encode(t)) <= CTX]  # one forward pass each below
    assert len(texts) >= 3
    fed = _fed_ids(model, monkeypatch)
    metrics, settings = _run(model, _task(_data(tmp_path, texts), {"mode": "document", "first_token": "unscored", "add_eos": False}))
    assert settings["prefix_token"] is None and PREFIX not in {t for row in fed for t in row}
    docs = [model.tokenizer.encode(t) for t in texts]
    assert settings["n_tokens"] == sum(len(d) - 1 for d in docs)
    total = sum(-float(_logp(net, d[:-1])[j - 1, d[j]]) for d in docs for j in range(1, len(d)))  # target j after d[:j]
    assert metrics[names.NLL_PER_TOKEN].value == pytest.approx(total / settings["n_tokens"], rel=1e-6)


# ------------------------------------------------------------------ join with \n, C-token chunks, all scored


@pytest.mark.parametrize("chunk", [8, 10, CTX])
def test_joined_chunks_every_token_scored_equals_plain_loops(model, net, tmp_path, chunk):
    tok = model.tokenizer
    newline = tok.encode("\n")
    stream: list[int] = []
    for k, text in enumerate(TEXTS):
        stream += (newline if k else []) + tok.encode(text)
    assert len(stream) % chunk  # a partial last chunk, which must be scored too
    total, count = 0.0, 0
    for s in range(0, len(stream), chunk):
        piece = stream[s : s + chunk]
        logp = _logp(net, [PREFIX] + piece[:-1])  # the chunk scored from its own start, after the prefix token
        for j, t in enumerate(piece):
            total -= float(logp[j, t])
            count += 1
    packing = {"preset": "mdlm-wrap", "separator": "\n", "add_eos": False, "partial_last_block": "keep", "block_size": chunk + 1}
    metrics, settings = _run(model, _task(_data(tmp_path, TEXTS), packing))
    assert settings["n_tokens"] == count == len(stream)
    assert metrics[names.PERPLEXITY].value == pytest.approx(math.exp(total / count), rel=1e-6)
    assert settings["packing"] == {
        "preset": "mdlm-wrap", "mode": "wrap", "block_size": chunk + 1, "stride": None, "first_token": "prefixed",
        "add_eos": False, "separator": "\n", "partial_last_block": "keep", "separator_ids": newline,
    }
    # the preset alone drops the partial block (MDLM): fewer tokens scored
    _, dropped = _run(model, _task(_data(tmp_path, TEXTS), {**packing, "partial_last_block": "drop"}))
    assert dropped["n_tokens"] == (len(stream) // chunk) * chunk


# ------------------------------------------------------------------------------- lm-eval rolling windows


def test_rolling_pieces_equal_lm_evals_windows():
    import random

    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from dlmbench.data.packing import rolling_pieces

    rng = random.Random(0)
    for _ in range(300):
        tokens = [rng.randrange(2, 50) for _ in range(rng.randrange(1, 40))]
        length = rng.randrange(1, 12)
        expect = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, prefix_token=PREFIX, max_seq_len=length, context_len=1)]
        got = rolling_pieces(tokens, (PREFIX,), length)
        assert got == [(tuple(c), tuple(p)) for c, p in expect]


def test_lmeval_rolling_preset_equals_lm_eval_windows_scored_by_the_network(model, net, tmp_path):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    texts = [" ".join(TEXTS[i:] + TEXTS[:i]) for i in range(3)] + [TEXTS[3]]  # long documents: several windows each
    total, count, words = 0.0, 0, 0
    for text in texts:
        ids = model.tokenizer.encode(text)
        windows = [make_disjoint_window(w) for w in get_rolling_token_windows(ids, prefix_token=PREFIX, max_seq_len=CTX, context_len=1)]
        assert len(windows) >= (2 if len(ids) > CTX else 1)
        for ctx, cont in windows:
            inp = (ctx + cont)[-(CTX + 1):][:-1]  # as lm-eval's HFLM feeds it
            logp = _logp(net, inp)
            for k, t in enumerate(cont):
                total -= float(logp[len(inp) - len(cont) + k, t])
            count += len(cont)
        words += len(re.split(r"\s+", text))  # lm-eval's word count (the texts have no outer whitespace)
    metrics, settings = _run(model, _task(_data(tmp_path, texts), {"preset": "lmeval-rolling"}))
    assert settings["n_tokens"] == count
    assert settings["packing"]["mode"] == "rolling" and settings["packing"]["block_size"] == CTX
    assert metrics[names.PERPLEXITY].value == pytest.approx(math.exp(total / count), rel=1e-6)
    assert metrics[names.WORD_PERPLEXITY].value == pytest.approx(math.exp(total / words), rel=1e-6)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)  # lm-eval's byte count: the document's UTF-8 bytes
    assert metrics[names.BITS_PER_BYTE].value == pytest.approx(total / (math.log(2) * n_bytes), rel=1e-6)


# --------------------------------------------------------------------------------- every row accounted for


def test_skipped_documents_are_counted_in_the_row(model, tmp_path):
    path = tmp_path / "docs.jsonl"
    rows = [{"text": TEXTS[0]}, {"text": ""}, {"title": "no text"}, {"text": TEXTS[1]}, {"text": ""}, {"text": "   "}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = _task(str(path), {"mode": "document", "add_eos": False}, skip_missing=True)
    metrics, settings = _run(model, task)
    assert settings["skipped"] == {"missing_field": 1, "empty": 2, "nothing_to_score": 0} and settings["n_skipped"] == 3
    # whitespace is text (it has tokens): scored, not skipped
    assert settings["n_requests"] == 3 and settings["n_requests"] + settings["n_skipped"] == len(rows)
    assert metrics[names.PERPLEXITY].n == 3
