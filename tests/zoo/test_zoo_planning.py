"""Minimal planning in the zoo (Ye et al. 2024), the paper's MDM loss, and resumable training.

* the planning corpus is drawn from another seed than the task's test split and holds none of its graphs;
  rows are ``tokens(src=) + path + EOS`` (24 answer tokens) and decode back to the example;
* :func:`ye2024_mdm_loss` equals a second, loop-by-loop implementation of the reference's formula on the same draws;
* a run stopped and resumed from its resume file ends with the weights and losses of an uninterrupted run,
  for AR and for MDLM (whose loss draws noise); a resume file of another config is refused in one line;
* tiny planning models load through ``load_model`` and run the ``planning`` task.
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

from dlmbench.errors import BadSpec, CheckpointError
from dlmbench.zoo.build import ZOO, ZooEntry, resume_path, train_entry
from dlmbench.zoo.configs import get_config
from dlmbench.zoo.corpus import (BOS, PLANNING_ANSWER_LEN, PLANNING_DATA_SEED, PLANNING_TEST_N, _graph_key,
                                 corpus_rows, edge_tokenizer, planning_corpus, toy_corpus)
from dlmbench.zoo.train import LossContext, train, training_loss, ye2024_mdm_loss


@pytest.fixture(scope="module")
def planning(tmp_path_factory):
    """A small planning corpus (400 training graphs), the test split cached in a temporary folder."""
    old = os.environ.get("DLMBENCH_CACHE")
    os.environ["DLMBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield planning_corpus(n_train=400)
    finally:
        if old is None:
            os.environ.pop("DLMBENCH_CACHE", None)
        else:
            os.environ["DLMBENCH_CACHE"] = old


def test_planning_pair_is_in_the_zoo():
    names = {e.name: e.config for e in ZOO}
    assert names["ar-planning"] == names["mdlm-planning"] == "planning"
    assert get_config("planning").mdm_loss == "ye2024"


def test_planning_corpus_holds_no_test_graph(planning):
    from dlmbench.registry import default_registry
    from dlmbench.tasks.reasoning import generated_split

    st = default_registry().task("planning").typed_settings
    assert (st.data_seed, st.n_split) == (PLANNING_DATA_SEED, PLANNING_TEST_N)
    test = generated_split("planning", "path", "test", st.n_split, st.data_seed)
    test_graphs = {_graph_key(r["input"]) for r in test}
    train_graphs = {_graph_key(t.split("=")[0]) for t in planning.train}
    assert len(train_graphs) == len(planning.train) == 400 and not (train_graphs & test_graphs)
    # the key ignores edge order but not the graph: the same edges listed in another order are one graph
    edges, _, query = test[0]["input"].rpartition("-")
    assert _graph_key("/".join(reversed(edges.split("/"))) + "-" + query) == _graph_key(test[0]["input"])


def test_planning_rows_are_prompt_then_path_and_eos(planning):
    tok = edge_tokenizer()
    eos = tok.token_to_id(BOS)
    rows = corpus_rows(tok, planning, planning.train[:50], 40)
    for text, row in zip(planning.train[:50], rows):
        src, path = text.split("=")
        prompt = tok.encode(src + "=", add_special_tokens=False).ids
        assert row[: len(prompt)] == prompt and len(row) == len(prompt) + PLANNING_ANSWER_LEN
        answer = row[len(prompt):]
        assert answer[-1] == eos and eos not in answer[:-1]  # 6 edges are always 11 tokens: no padding
        assert tok.decode(answer) == path and tok.decode(row) == text  # one id per edge, lossless
        assert len(prompt) == 26 and '[UNK]' not in tok.decode(row, skip_special_tokens=False)


def test_ye2024_loss_equals_a_loop_implementation():
    """The reference (tuner/mdm/trainer.py) written out per row and position, on the same generator draws."""
    torch.manual_seed(0)
    vocab, mask_id, steps, alpha, gamma = 7, 7, 20, 0.25, 1.0
    table = torch.randn(vocab + 1, vocab + 1)

    class Net(torch.nn.Module):  # logits depend on the (possibly masked) input token only
        def forward(self, x, sigma):
            return table[x]

    x = torch.randint(0, vocab, (5, 9))
    ctx = LossContext("mdlm", mask_id, answer_len=6, mdm_steps=steps, mdm_alpha=alpha, mdm_gamma=gamma)
    got = ye2024_mdm_loss(Net(), x, torch.Generator().manual_seed(3), ctx)

    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, steps, (5,), generator=g)
    u = torch.rand(x.shape, generator=g, dtype=torch.float64)
    total, n_masked = [0.0] * 5, 0
    for b in range(5):
        for i in range(3, 9):  # the answer: last 6 positions
            if u[b, i] < (int(t[b]) + 1) / steps:
                n_masked += 1
                logits = table[mask_id].tolist()
                logits[mask_id] = -math.inf
                lse = math.log(sum(math.exp(v) for v in logits if v != -math.inf))
                ce = lse - logits[int(x[b, i])]
                total[b] += alpha * (1 - math.exp(-ce)) ** gamma * ce * (steps - int(t[b]))
    # the trainer divides by the scored tokens (5 rows x 6); the reference by the masked ones
    want = sum(total) / n_masked
    assert float(got.sum()) / 30 == pytest.approx(want, rel=1e-5)


def test_ye2024_loss_is_for_mdlm_only():
    cfg = get_config("test", mdm_loss="ye2024")
    assert training_loss("mdlm", cfg)[0] is ye2024_mdm_loss and "Ye et al." in training_loss("mdlm", cfg)[1]
    assert training_loss("ar", cfg)[1] == "cross-entropy"
    with pytest.raises(BadSpec, match="mdm_loss"):
        training_loss("sedd", cfg)
    with pytest.raises(BadSpec, match="mdm_loss must be one of"):
        training_loss("mdlm", get_config("test", mdm_loss="elbo"))


@pytest.mark.parametrize("family,loss", [("ar", "nelbo"), ("mdlm", "ye2024"), ("mdlm", "nelbo")])
def test_resumed_run_equals_the_uninterrupted_one(family, loss, tmp_path):
    corpus = toy_corpus(120)
    cfg = get_config("test", max_steps=9, checkpoint_every=4, mdm_loss=loss)
    whole = train(family, corpus, cfg, progress=False)
    path = tmp_path / "run.resume.pt"
    part = train(family, corpus, cfg, progress=False, resume=path, stop_after=6)
    assert part.stopped_by == "stop_after" and part.steps == 6 and path.is_file()
    rest = train(family, corpus, cfg, progress=False, resume=path)
    assert rest.steps == 9 and rest.losses == whole.losses and rest.tokens == whole.tokens
    a, b = whole.net.state_dict(), rest.net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the weights really moved after the resume point (the comparison is not of two untouched copies)
    assert not all(torch.equal(a[k], part.net.state_dict()[k]) for k in a)


def test_resume_file_of_another_run_is_refused(tmp_path):
    corpus = toy_corpus(120)
    path = tmp_path / "run.resume.pt"
    train("ar", corpus, get_config("test", max_steps=6), progress=False, resume=path, stop_after=2)
    with pytest.raises(CheckpointError, match="belongs to another run .*config differs"):
        train("ar", corpus, get_config("test", max_steps=6, lr=1e-3), progress=False, resume=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        train("ar", corpus, get_config("test", max_steps=6), progress=False, resume=path)


def test_train_entry_in_pieces_writes_the_model_once(tmp_path, monkeypatch):
    corpus = toy_corpus(120)
    monkeypatch.setattr("dlmbench.zoo.build.load_corpus", lambda name: corpus)
    entry = ZooEntry("ar", "toy", "test")
    cfg = get_config("test", max_steps=5, checkpoint_every=2)
    assert train_entry(entry, cfg, root=tmp_path, progress=False, log=lambda m: None, stop_after=3) is None
    assert resume_path(entry, tmp_path).is_file() and not (tmp_path / "zoo" / "ar-toy").exists()
    info = train_entry(entry, cfg, root=tmp_path, progress=False, log=lambda m: None)
    assert info["steps"] == 5 and not resume_path(entry, tmp_path).exists()
    assert (tmp_path / "zoo" / "ar-toy" / "zoo.json").is_file()


@pytest.mark.parametrize("family", ["ar", "mdlm"])
def test_planning_model_runs_the_planning_task(family, planning, tmp_path, monkeypatch):
    from dlmbench.families import load_model
    from dlmbench.registry import Registry, default_registry
    from dlmbench.tasks.reasoning import run_reasoning

    monkeypatch.setattr("dlmbench.zoo.build.load_corpus", lambda name: planning)
    entry = ZooEntry(family, "planning", "planning")
    train_entry(entry, get_config("test", max_len=40, max_steps=2, mdm_loss="ye2024"), root=tmp_path,
                progress=False, log=lambda m: None)
    reg = Registry()
    reg.add_folder(tmp_path)
    model = load_model(reg.model(entry.card_name))
    src = planning.heldout[0].split("=")[0]
    assert model.tokenizer.encode(src + "=") == edge_tokenizer().encode(src + "=", add_special_tokens=False).ids
    base = default_registry().task("planning")
    task = dataclasses.replace(base, settings={**base.settings, "max_new_tokens": PLANNING_ANSWER_LEN})
    out = run_reasoning(model, task, seed=0, limit=3)
    metrics = {r.metric for r in out.metrics}
    assert {"faithful_acc", "strict_acc"} <= metrics and any(m.startswith("faithful_acc.pd") for m in metrics)


def test_reversal10_trains_on_exactly_the_people_its_suite_asks_about():
    import json
    from pathlib import Path

    from dlmbench.registry import default_registry
    from dlmbench.runner.suite import find_suite, load_suite
    from dlmbench.zoo.corpus import REVERSAL_PACKAGE_DIR, REVERSAL_SMALL_PEOPLE, load_corpus

    corpus = load_corpus("reversal10")
    assert set(corpus.train) < set(load_corpus("reversal").train) and len(corpus.train) == 60 * REVERSAL_SMALL_PEOPLE
    folder = Path(__file__).resolve().parents[2] / "dlmbench" / REVERSAL_PACKAGE_DIR
    limit = load_suite(find_suite("zoo-findings-reversal10"))["limit"]
    assert limit == 10 * REVERSAL_SMALL_PEOPLE
    read = lambda f: [json.loads(line) for line in (folder / f).read_text().splitlines()]  # noqa: E731
    # a file whose completion is the name: p2d_reverse (for the p2d people), d2p_prompts (for the d2p people)
    for task, names_file in (("reversal-p2d", "p2d_reverse_prompts_test.jsonl"), ("reversal-d2p", "d2p_prompts_test.jsonl")):
        names = [r["completion"].strip() for r in read(names_file)]
        asked, others = set(names[:limit]), set(names[limit:])
        assert len(asked) == REVERSAL_SMALL_PEOPLE and not asked & others
        assert all(any(n in t for t in corpus.train) for n in asked)  # every person asked about was trained on
        assert not any(n in t for n in others for t in corpus.train)  # and no other person of the group
        st = default_registry().task(task).typed_settings
        for file in (st.same_file, st.reverse_file):
            for r in read(file)[:limit]:  # each test line of the suite asks about one of them
                assert any(n in r["prompt"] + r["completion"] for n in asked)


@pytest.mark.parametrize("name", ["zoo-ar-planning", "zoo-mdlm-planning", "zoo-ar-reversal10", "zoo-mdlm-reversal10"])
def test_packaged_planning_and_reversal10_cards_load(name):
    from dlmbench.families import load_model
    from dlmbench.registry import PACKAGE_CARDS, default_registry

    if not (PACKAGE_CARDS / "models" / f"{name}.yaml").is_file():
        pytest.skip(f"{name} not built")
    model = load_model(default_registry().model(name))
    assert model.family == name.split("-")[1]
    if name.endswith("planning"):
        assert model.tokenizer.encode("12,3/3,13-12,13=") == edge_tokenizer().encode("12,3/3,13-12,13=").ids
    weights = sorted((PACKAGE_CARDS / "models" / "zoo" / name.removeprefix("zoo-")).glob("*.safetensors"))
    assert weights and sum(w.stat().st_size for w in weights) < 3_000_000  # bfloat16, small enough to commit
