"""Corpora, rows and cards of the zoo's findings 2 (reversal curse) and 3 (Countdown CD3), AR vs MDLM.

Fast: the ``test`` config with a couple of steps; the cd3 split is generated into a temporary cache.

* the reversal corpus is exactly Berglund's ``all_prompts_train.jsonl`` (prompt + completion, no BOS) and the
  ``reversal-*`` task cards read the separate ``*_test.jsonl`` files, none of whose examples is a training text;
* the cd3 corpus is the reasoning generator's train split: no test input of the ``countdown-cd3`` task in it;
  rows are ``tokens(src=) + answer + EOS`` padded to the task's 24 answer tokens and only the answer is scored;
* the character tokenizer loads through the adapters' tokenizer loader and encodes prompts as the task does;
* tiny models trained on both corpora load through ``load_model`` and run the reversal and reasoning tasks;
* the packaged cards ``zoo-{ar,mdlm}-{reversal,cd3}`` load through ``load_model`` (when built).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from dlmbench.zoo.build import ZOO, ZooEntry, train_entry
from dlmbench.zoo.configs import get_config
from dlmbench.zoo.corpus import (BOS, CD3_ANSWER_LEN, CD3_DATA_SEED, CD3_TEST_N, REVERSAL_PACKAGE_DIR, cd3_corpus,
                                 char_tokenizer, corpus_rows, load_corpus)
from dlmbench.zoo.train import LossContext, _score_mask, prepare, scored_tokens

REVERSAL_DIR = Path(os.environ.get("DLMBENCH_REVERSAL_DIR") or Path(__file__).resolve().parents[2] / "dlmbench" / REVERSAL_PACKAGE_DIR)
needs_reversal = pytest.mark.skipif(not (REVERSAL_DIR / "all_prompts_train.jsonl").is_file(),
                                    reason="Berglund reversal-curse files not available")
FAMILIES = ("ar", "mdlm")


@pytest.fixture(scope="module")
def cd3(tmp_path_factory):
    """A small cd3 corpus (2000 training examples), its split cached in a temporary folder."""
    old = os.environ.get("DLMBENCH_CACHE")
    os.environ["DLMBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield cd3_corpus(n_train=2000)
    finally:
        if old is None:
            os.environ.pop("DLMBENCH_CACHE", None)
        else:
            os.environ["DLMBENCH_CACHE"] = old


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _card(root: Path, entry: ZooEntry):
    from dlmbench.registry import Registry

    reg = Registry()
    reg.add_folder(root)
    return reg.model(entry.card_name)


# --------------------------------------------------------------------------------------------------
# Corpora


def test_zoo_lists_the_finding_pairs():
    names = {e.name: e.config for e in ZOO}
    for corpus in ("reversal", "cd3"):
        assert names[f"ar-{corpus}"] == names[f"mdlm-{corpus}"] == corpus  # same size and budget within a pair


@needs_reversal
def test_reversal_corpus_is_berglund_train_and_tests_are_separate():
    from dlmbench.registry import default_registry

    corpus = load_corpus("reversal")
    train = _jsonl(REVERSAL_DIR / "all_prompts_train.jsonl")
    assert corpus.train == tuple(r["prompt"] + r["completion"] for r in train)
    assert corpus.heldout == () and corpus.bos is False
    files = set()
    for name in ("reversal-p2d", "reversal-d2p"):
        st = default_registry().task(name).settings
        files |= {st["same_file"], st["reverse_file"]}
    assert files == {"p2d_prompts_test.jsonl", "p2d_reverse_prompts_test.jsonl", "d2p_prompts_test.jsonl",
                     "d2p_reverse_prompts_test.jsonl"}
    seen = set(corpus.train)
    for f in files:
        test = _jsonl(REVERSAL_DIR / f)
        assert test and not any(r["prompt"] + r["completion"] in seen for r in test)


@needs_reversal
def test_reversal_rows_are_prompt_then_eos_padded_canvas():
    """No BOS; ``tokens(prompt + completion)`` then EOS up to the prompt + the suite's completion canvas, so a row
    has the shape of what the reversal task asks a model to fill (its prompt ids, then ``max_new_tokens``)."""
    import yaml

    from dlmbench.data.tokenization import encode_pair
    from dlmbench.zoo.corpus import REVERSAL_CANVAS

    suite = yaml.safe_load((Path(__file__).resolve().parents[2] / "dlmbench" / "cards" / "suites" / "zoo-findings-reversal.yaml").read_text())
    assert {s["max_new_tokens"] for s in suite["task_settings"].values()} == {REVERSAL_CANVAS}
    corpus = load_corpus("reversal")
    train = _jsonl(REVERSAL_DIR / "all_prompts_train.jsonl")
    assert corpus.canvas == REVERSAL_CANVAS and corpus.prompts == tuple(r["prompt"] for r in train)
    cfg = get_config("reversal")  # its 1024-id BPE: every training prompt fits the context with room to spare
    max_len = cfg.max_len
    tok, rows, ctx, _ = prepare("ar", corpus, cfg)
    assert ctx.answer_len is None and len(rows) == len(train)
    eos = tok.token_to_id(BOS)

    class Wrap:  # the task's view of the tokenizer (encode without special tokens)
        encode = staticmethod(lambda text: tok.encode(text, add_special_tokens=False).ids)

    n_padded = 0
    for rec, row in zip(train, rows):
        ctx_ids, tgt_ids = encode_pair(Wrap, rec["prompt"], rec["completion"])
        assert row[0] != eos and len(ctx_ids) < max_len
        assert len(row) == min(len(ctx_ids) + REVERSAL_CANVAS, max_len)
        assert row[: len(ctx_ids)] == ctx_ids  # the prompt exactly as the task encodes it
        body = (tgt_ids + [eos] * REVERSAL_CANVAS)[: len(row) - len(ctx_ids)]
        assert row[len(ctx_ids):] == body  # the completion, then EOS to the end of the canvas
        if len(tgt_ids) < REVERSAL_CANVAS and len(row) == len(ctx_ids) + REVERSAL_CANVAS:
            n_padded += 1
            assert tok.decode(row) == rec["prompt"] + rec["completion"]  # EOS padding decodes to nothing
    assert n_padded > len(train) // 2


def test_cd3_train_split_excludes_every_test_prompt(cd3):
    from dlmbench.registry import default_registry
    from dlmbench.tasks.reasoning import generated_split

    card = default_registry().task("countdown-cd3")
    assert card.dataset.name == "cd3" and int(card.settings.get("data_seed", 1234)) == CD3_DATA_SEED
    assert int(card.settings.get("n_split", 1000)) == CD3_TEST_N
    test = generated_split("countdown", "cd3", "test", CD3_TEST_N, CD3_DATA_SEED)
    assert cd3.heldout == tuple(f"{r['input']}={r['output']}" for r in test)
    train_inputs = [t.split("=", 1)[0] for t in cd3.train]
    assert len(train_inputs) == 2000 and len(set(train_inputs)) == 2000
    assert not set(train_inputs) & {r["input"] for r in test}


def test_cd3_rows_are_prompt_then_padded_answer(cd3):
    tok = char_tokenizer()
    eos = tok.token_to_id(BOS)
    rows = corpus_rows(tok, cd3, cd3.train[:50], 40)
    for text, row in zip(cd3.train[:50], rows):
        src, answer = text.split("=", 1)
        n_prompt = len(src) + 1
        assert len(row) == n_prompt + CD3_ANSWER_LEN
        assert tok.decode(row[:n_prompt]) == src + "="
        assert row[n_prompt + len(answer)] == eos and set(row[n_prompt + len(answer):]) == {eos}
        assert tok.decode(row) == text
    # only the answer is scored (and, for the diffusion families, noised): the prompt stays clean
    x = torch.tensor([r for r in rows if len(r) == len(rows[0])])
    ctx = LossContext("mdlm", 18, answer_len=CD3_ANSWER_LEN)
    m = _score_mask(x, ctx)
    assert m.sum(1).tolist() == [CD3_ANSWER_LEN] * x.shape[0] and not m[:, : x.shape[1] - CD3_ANSWER_LEN].any()
    assert scored_tokens(x, ctx) == x.shape[0] * CD3_ANSWER_LEN


def test_char_tokenizer_through_the_adapters_loader(tmp_path):
    from dlmbench.specs import CheckpointRef
    from dlmbench.data.tokenization import load_tokenizer
    from dlmbench.zoo.corpus import save_tokenizer

    tok = char_tokenizer()
    save_tokenizer(tok, tmp_path)
    hf = load_tokenizer(CheckpointRef("local", str(tmp_path)))
    text = "86,28,13,96=86+28=114"
    assert hf.encode(text) == tok.encode(text, add_special_tokens=False).ids and len(hf.encode(text)) == len(text)
    assert hf.eos_id == hf.bos_id == 0 and hf.vocab_size == 18
    assert hf.decode(hf.encode(text) + [0, 0]) == text  # EOS padding is dropped


# --------------------------------------------------------------------------------------------------
# Tiny models through load_model and the tasks


@pytest.mark.parametrize("family", FAMILIES)
def test_cd3_model_runs_the_countdown_task(family, cd3, tmp_path, monkeypatch):
    from dlmbench.families import load_model
    from dlmbench.registry import default_registry
    from dlmbench.tasks.reasoning import run_reasoning

    monkeypatch.setattr("dlmbench.zoo.build.load_corpus", lambda name: cd3)
    entry = ZooEntry(family, "cd3", "cd3")
    cfg = get_config("test", max_len=40, max_steps=2)
    info = train_entry(entry, cfg, root=tmp_path, progress=False, log=lambda m: None)
    assert "character-level" in yaml_card(tmp_path, entry)["description"] and info["heldout"]["n_rows"] > 0
    spec = _card(tmp_path, entry).with_settings({"steps": 8} if family == "mdlm" else {})
    model = load_model(spec)
    assert model.tokenizer.encode("3,60,60,80=") == char_tokenizer().encode("3,60,60,80=").ids
    out = run_reasoning(model, default_registry().task("countdown-cd3"), seed=0, limit=2)
    metrics = {r.metric: r for r in out.metrics}
    assert {"faithful_acc", "strict_acc"} <= set(metrics) and metrics["strict_acc"].n == 2
    assert out.settings["prompt_layout"] == "text+suffix"


def yaml_card(root: Path, entry: ZooEntry) -> dict:
    import yaml

    return yaml.safe_load((root / f"{entry.card_name}.yaml").read_text())


@needs_reversal
@pytest.mark.parametrize("family", FAMILIES)
def test_reversal_model_runs_the_reversal_task(family, tmp_path):
    from dlmbench.families import load_model
    from dlmbench.registry import default_registry
    from dlmbench.tasks.reversal import run_reversal

    entry = ZooEntry(family, "reversal", "reversal")
    train_entry(entry, get_config("test", max_len=128, max_steps=2), root=tmp_path, progress=False, log=lambda m: None)
    spec = _card(tmp_path, entry).with_settings({"steps": 8, "mc_samples": 2} if family == "mdlm" else {})
    model = load_model(spec)
    task = default_registry().task("reversal-p2d")  # the card as shipped: its data are package files
    out = run_reversal(model, task, seed=0, limit=2)
    names = {r.metric for r in out.metrics}
    assert {"same.exact_match", "reverse.exact_match", "same.logprob", "reverse.logprob"} <= names
    assert {r.bound for r in out.metrics if r.metric.endswith("logprob")} == {"exact" if family == "ar" else "upper"}


@pytest.mark.parametrize("name", ["zoo-ar-reversal", "zoo-mdlm-reversal", "zoo-ar-cd3", "zoo-mdlm-cd3"])
def test_packaged_finding_cards_load(name):
    from dlmbench.families import load_model
    from dlmbench.registry import PACKAGE_CARDS, default_registry

    if not (PACKAGE_CARDS / "models" / f"{name}.yaml").is_file():
        pytest.skip(f"{name} not built")
    model = load_model(default_registry().model(name))
    assert model.family == name.split("-")[1]
    if name.endswith("cd3"):
        assert model.tokenizer.vocab_size == 18 and model.tokenizer.encode("12,3=") == [3, 4, 17, 5, 16]
