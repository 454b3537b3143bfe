"""The lm-eval bridge and the ``lmeval`` task, offline, on a tiny AR model and a tiny LLaDA.

Ground truth is computed independently of lm-eval: the same prompts built by hand from the documents,
scored with ``model.conditional_nll`` (with the bridge's per-request seeds), argmax over the choices.
The lm-eval task is a YAML written into ``tmp_path`` that reads a local JSONL file (lm-eval's documented
``dataset_path: json`` + ``dataset_kwargs: {data_files: ...}`` with ``TaskManager(include_path=...)``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lm_eval")

from dlmbench.interface import ScoreRequest  # noqa: E402
from dlmbench.integrations.lmeval import DlmbenchLM, encode_request, loglikelihood_seed  # noqa: E402
from dlmbench.specs import ModelSpec, TaskSpec  # noqa: E402
from dlmbench.tasks.lmeval import metric_bound, run_lmeval  # noqa: E402

DOCS = [
    {"question": "the quick brown fox", "choices": ["jumps", "sleeps", "is a dog"], "label": 0},
    {"question": "hello world, this is", "choices": ["a test", "things", "the lazy dog", "over"], "label": 1},
    {"question": "the lazy dog", "choices": ["jumps over the fox", "hello"], "label": 1},
    {"question": "a small test of", "choices": ["things", "the", "quick brown"], "label": 2},
    {"question": "over the", "choices": ["lazy dog", "world"], "label": 0},
]
PROMPT = "Question: {q}\nAnswer:"

TASK_YAML = """\
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{{{choices}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


# -- models ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gpt2_card(tmp_path_factory):
    """A tiny random GPT-2 checkpoint and its card ``tiny-lmeval-gpt2``, in a specs folder (``specs/models/``)."""
    import yaml
    from tiny_zoo import write_tiny_gpt2

    root = tmp_path_factory.mktemp("tiny_gpt2_lmeval")
    write_tiny_gpt2(root, ["the quick brown fox jumps over the lazy dog", "hello world, this is a small test of things"] * 50, vocab_size=300)
    card = {"name": "tiny-lmeval-gpt2", "family": "ar", "checkpoint": {"local": str(root / "model")}}
    (root / "specs" / "models").mkdir(parents=True)
    (root / "specs" / "models" / "tiny-lmeval-gpt2.yaml").write_text(yaml.safe_dump(card))
    return card, root / "specs"


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_card):
    from dlmbench.families.ar.adapter import load_ar

    return load_ar(ModelSpec.from_dict(tiny_gpt2_card[0]), batch_size=4)


@pytest.fixture(scope="module")
def tiny_llada(tmp_path_factory):
    from dlmbench.families.llada.writer import write_tiny_llada
    from dlmbench.families.llada.adapter import load_llada

    folder = write_tiny_llada(tmp_path_factory.mktemp("llada_lmeval"), seed=5)
    spec = ModelSpec.from_dict({"name": "tiny-llada", "family": "llada", "checkpoint": {"local": str(folder)},
                                "max_length": 64, "settings": {"mc_samples": 2, "batch_size": 8}})
    return load_llada(spec)


@pytest.fixture()
def local_task(tmp_path):
    data = tmp_path / "tiny_mc.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    folder = tmp_path / "lm_eval_tasks"
    folder.mkdir()
    (folder / "tiny_mc.yaml").write_text(TASK_YAML.format(data=data))
    return folder, data


def _card(folder, **settings) -> TaskSpec:
    return TaskSpec.from_dict({
        "name": "tiny-mc", "type": "lmeval",
        "dataset": {"source": "hf", "path": "tiny/none", "split": "test"},
        "settings": {"lm_eval_task": "tiny_mc", "include_path": str(folder), "include_defaults": False, **settings},
    })


# -- the independent computation -------------------------------------------------------------------
def _direct(model, seed: int, docs):
    """Per document: log-likelihoods of each choice from conditional_nll, acc and acc_norm."""
    reqs, owner, lens = [], [], []
    for i, d in enumerate(docs):
        ctx = PROMPT.format(q=d["question"])
        for c in d["choices"]:
            cont = " " + c
            c_ids, t_ids = encode_request(model.tokenizer, ctx, cont)
            reqs.append(ScoreRequest(c_ids, t_ids, loglikelihood_seed(seed, ctx, cont)))
            owner.append(i)
            lens.append(len(c))  # lm-eval acc_norm: log-likelihood per character of the choice
    ll = -model.conditional_nll(reqs).nll
    owner, lens = np.array(owner), np.array(lens, dtype=float)
    acc, acc_norm, per_doc = [], [], []
    for i, d in enumerate(docs):
        lli = ll[owner == i]
        per_doc.append(lli)
        acc.append(float(np.argmax(lli) == d["label"]))
        acc_norm.append(float(np.argmax(lli / lens[owner == i]) == d["label"]))
    return per_doc, float(np.mean(acc)), float(np.mean(acc_norm))


def _check_against_direct(out, model, seed, n_docs=None):
    docs = DOCS[:n_docs]
    per_doc, acc, acc_norm = _direct(model, seed, docs)
    rows = {r.metric: r for r in out.metrics}
    assert rows["acc"].value == pytest.approx(acc, abs=1e-12)
    assert rows["acc_norm"].value == pytest.approx(acc_norm, abs=1e-12)
    n = len(docs)
    assert rows["acc"].n == n and len(out.examples) == n
    # lm-eval's stderr of a mean: sample std (ddof 1) / sqrt(n)
    assert rows["acc"].stderr == pytest.approx(math.sqrt(acc * (1 - acc) * n / (n - 1) / n), abs=1e-12)
    ex = {e["doc_id"]: e for e in out.examples}
    for i in range(n):
        np.testing.assert_allclose(ex[i]["loglikelihoods"], per_doc[i], rtol=1e-9, atol=1e-9)
    return rows


# -- tests -----------------------------------------------------------------------------------------
def test_loglikelihood_is_minus_conditional_nll(tiny_gpt2, tiny_llada):
    from lm_eval.api.instance import Instance

    pairs = [("Question: the quick\nAnswer:", " brown"), ("hello ", "world"), ("", "the dog")]
    insts = [Instance("loglikelihood", {}, p, i, ("t", i, 1)) for i, p in enumerate(pairs)]
    for model in (tiny_gpt2, tiny_llada):
        bridge = DlmbenchLM(model, seed=7, greedy="true")
        got = bridge.loglikelihood(insts)
        reqs = [ScoreRequest(*encode_request(model.tokenizer, c, x), loglikelihood_seed(7, c, x)) for c, x in pairs]
        want = -model.conditional_nll(reqs).nll
        greedy = model.greedy_match(reqs).matches
        # float32 forwards over differently composed batches agree to rounding (seen: 1.3e-7 relative on one CPU)
        np.testing.assert_allclose([g[0] for g in got], want, rtol=1e-6)
        assert [g[1] for g in got] == [bool(m) for m in greedy]
        # per-request seeds: the order lm-eval hands requests in does not change any number
        again = bridge.loglikelihood(insts[::-1])[::-1]
        np.testing.assert_allclose([g[0] for g in again], [g[0] for g in got], rtol=1e-6)
    # lm-eval's split: the trailing space of the context goes to the continuation
    assert encode_request(tiny_gpt2.tokenizer, "hello ", "world") == encode_request(tiny_gpt2.tokenizer, "hello", " world")


def test_rolling_and_generate(tiny_gpt2):
    from lm_eval.api.instance import Instance

    bridge = DlmbenchLM(tiny_gpt2, seed=1)
    text = "the quick brown fox jumps over the lazy dog"
    [ll] = bridge.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    ids = tuple(tiny_gpt2.tokenizer.encode(text))
    assert ll == pytest.approx(-tiny_gpt2.nll([ids]).nll[0], rel=1e-10)
    req = Instance("generate_until", {}, ("the quick", {"until": ["\n"], "max_gen_toks": 6}), 0)
    [gen] = bridge.generate_until([req])
    # greedy: the same as the adapter's own temperature-0 sampler from the same prompt
    ref = tiny_gpt2.sample(1, 6, prefix=tiny_gpt2.tokenizer.encode("the quick"), temperature=0.0).texts[0].split("\n")[0]
    assert gen == ref


def test_registered_as_lm_eval_model(tiny_gpt2):
    from lm_eval.api.registry import get_model

    assert get_model("dlmbench") is DlmbenchLM


def test_lm_eval_argv_forwarding():
    from dlmbench.cli import _lm_eval_argv

    assert _lm_eval_argv(["lm-eval", "--model", "dlmbench", "--specs", "x"]) == ([], ["--model", "dlmbench", "--specs", "x"])
    assert _lm_eval_argv(["--specs", "a", "--specs=b", "lm-eval", "ls", "tasks"]) == (["a", "b"], ["ls", "tasks"])
    assert _lm_eval_argv(["run", "--model", "m"]) is None and _lm_eval_argv([]) is None


def test_lm_eval_command_checks_specs_folders_first(tmp_path, capsys):
    from dlmbench.cli import main

    assert main(["--specs", str(tmp_path / "nowhere"), "lm-eval", "--model", "dlmbench", "--tasks", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: specs folder") and "(from --specs)" in err[0]


def test_plain_lm_eval_needs_the_bridge_imported():
    """lm-eval 0.4.13 resolves ``--model`` only in its own registry (no entry points, no plugin hook): in a
    fresh interpreter ``dlmbench`` is unknown until :mod:`dlmbench.integrations.lmeval` is imported. This is why
    the command line is ``dlmbench lm-eval`` (or ``python -m dlmbench.integrations.lmeval``), not ``lm_eval``."""
    code = (
        "from lm_eval.api.registry import get_model\n"
        "try:\n    get_model('dlmbench'); print('found')\nexcept ValueError:\n    print('unknown')\n"
        "import dlmbench.integrations.lmeval as b\nprint(get_model('dlmbench') is b.DlmbenchLM)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["unknown", "True"]


def _env() -> dict:
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


@pytest.mark.slow
def test_dlmbench_lm_eval_command_end_to_end(tiny_gpt2, tiny_gpt2_card, local_task, tmp_path):
    """``dlmbench --specs DIR lm-eval --model dlmbench ...`` in a subprocess (lm-eval's own CLI, legacy form
    without ``run``): the log-likelihoods and greedy flags lm-eval logs per document, and its acc/acc_norm,
    equal the direct computation and the ``lmeval`` task path on the same model and seed."""
    folder, _ = local_task
    _, specs = tiny_gpt2_card
    out_dir = tmp_path / "lm_eval_out"
    cmd = [sys.executable, "-m", "dlmbench.cli", "--specs", str(specs), "lm-eval",
           "--model", "dlmbench", "--model_args", "model=tiny-lmeval-gpt2,seed=3", "--device", "cpu",
           "--tasks", "tiny_mc", "--include_path", str(folder), "--output_path", str(out_dir), "--log_samples"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    [results_file] = list(out_dir.rglob("results_*.json"))
    [samples_file] = list(out_dir.rglob("samples_tiny_mc_*.jsonl"))
    results = json.loads(results_file.read_text())
    records = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda d: d["doc_id"])
    assert [d["doc_id"] for d in records] == list(range(len(DOCS)))

    per_doc, acc, acc_norm = _direct(tiny_gpt2, 3, DOCS)
    for rec in records:
        got = [(float(ll), str(g) == "True") for ll, g in rec["filtered_resps"]]
        # float32 forwards of differently composed batches: equal up to rounding (1e-7 relative seen on one CPU)
        np.testing.assert_allclose([g[0] for g in got], per_doc[rec["doc_id"]], rtol=1e-6, atol=1e-9)
        # greedy=auto on the command line checks greedy decoding for every request
        d = DOCS[rec["doc_id"]]
        ctx = PROMPT.format(q=d["question"])
        reqs = [ScoreRequest(*encode_request(tiny_gpt2.tokenizer, ctx, " " + c), 0) for c in d["choices"]]
        assert [g[1] for g in got] == [bool(m) for m in tiny_gpt2.greedy_match(reqs).matches]
    res = results["results"]["tiny_mc"]
    assert res["acc,none"] == pytest.approx(acc, abs=1e-12) and res["acc_norm,none"] == pytest.approx(acc_norm, abs=1e-12)
    # the same numbers as our own task path
    ours = {m.metric: m for m in run_lmeval(tiny_gpt2, _card(folder), seed=3, limit=None).metrics}
    assert res["acc,none"] == ours["acc"].value and res["acc_norm,none"] == ours["acc_norm"].value
    assert res["acc_stderr,none"] == pytest.approx(ours["acc"].stderr, abs=1e-12)
    cfg = results["config"]
    assert cfg["model"] == "dlmbench" and cfg["dlmbench_bound"] == "exact" and cfg["family"] == "ar"


def test_lmeval_task_ar_matches_direct_computation(tiny_gpt2, local_task):
    folder, _ = local_task
    out = run_lmeval(tiny_gpt2, _card(folder), seed=3, limit=None)
    rows = _check_against_direct(out, tiny_gpt2, 3)
    assert rows["acc"].bound == "exact" and rows["acc"].settings["score_basis"] == "exact_loglikelihood"
    assert out.settings["lm_eval_version"] and out.settings["greedy_skipped_tasks"] == ["tiny_mc"]
    assert out.dataset.startswith("local:json") and out.split == "test"


@pytest.mark.slow
def test_lmeval_task_diffusion_matches_direct_computation(tiny_llada, local_task):
    folder, _ = local_task
    # a tiny LLaDA still has the full 126k vocabulary (its mask id is 126336): keep the work small
    out = run_lmeval(tiny_llada, _card(folder, num_fewshot=0), seed=11, limit=2)
    rows = _check_against_direct(out, tiny_llada, 11, n_docs=2)
    # accuracies computed from bounds are labelled as such
    assert rows["acc"].bound == "exact" and rows["acc"].settings["score_basis"] == "nll_upper_bound"
    assert out.settings["mc_samples"] == 2 and out.settings["loglikelihood_kind"].startswith("lower bound")
    assert out.settings["requests"]["greedy_checks"] == 0  # multiple choice never reads is_greedy


def test_local_data_override_of_a_task(tiny_gpt2, local_task, tmp_path):
    """``dataset.source=local``: lm-eval's YAML is included, only the data files change."""
    folder, data = local_task
    card = TaskSpec.from_dict({
        "name": "tiny-mc", "type": "lmeval",
        "dataset": {"source": "local", "path": str(data)},
        "settings": {"lm_eval_task": "tiny_mc_copy", "include_path": str(folder), "include_defaults": False},
    })
    # a second task that reads a remote dataset: only the override makes it runnable offline
    (folder / "copy.yaml").write_text(TASK_YAML.format(data="unused").replace("task: tiny_mc", "task: tiny_mc_copy")
                                      .replace("dataset_path: json", "dataset_path: nowhere/remote_dataset"))
    out = run_lmeval(tiny_gpt2, card, seed=3, limit=3)
    assert out.settings["local_data_files"] == {"tiny_mc_copy": {"test": str(data.resolve())}}
    assert {r.metric for r in out.metrics} >= {"acc", "acc_norm"} and out.metrics[0].n == 3


def test_metric_bound_labels():
    assert metric_bound("exact", "multiple_choice", "acc") == ("exact", "exact_loglikelihood")
    assert metric_bound("upper", "multiple_choice", "acc_norm") == ("exact", "nll_upper_bound")
    assert metric_bound("upper", "loglikelihood", "acc") == ("exact", "greedy_check")
    assert metric_bound("upper", "loglikelihood", "perplexity") == ("upper", "nll_upper_bound")
    assert metric_bound("upper", "generate_until", "exact_match") == ("exact", "generation")


def test_stock_card_runs_on_a_local_copy(tiny_gpt2, tmp_path):
    """The packaged arc-easy card, pointed at a local file in the HF schema with --set dataset.*."""
    from dlmbench.registry import Registry
    from dlmbench.specs import split_overrides

    docs = [
        {"id": "a", "question": "the quick brown", "choices": {"text": ["fox", "dog", "test"], "label": ["A", "B", "C"]}, "answerKey": "A"},
        {"id": "b", "question": "hello", "choices": {"text": ["world", "things"], "label": ["1", "2"]}, "answerKey": "2"},
        {"id": "c", "question": "the lazy", "choices": {"text": ["dog", "fox", "hello", "over"], "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
    ]
    data = tmp_path / "arc_easy_test.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    card = Registry.default().task("arc-easy")
    _, card = split_overrides(ModelSpec.from_dict({"name": "m", "family": "ar", "checkpoint": {"hub": "x"}}), card,
                              {"dataset.source": "local", "dataset.path": str(data)})
    out = run_lmeval(tiny_gpt2, card, seed=0, limit=None)
    rows = {r.metric: r for r in out.metrics}
    # independent: lm-eval's arc prompt, written out by hand
    correct, correct_norm = [], []
    for d in docs:
        ctx = f"Question: {d['question']}\nAnswer:"
        reqs = [ScoreRequest(*encode_request(tiny_gpt2.tokenizer, ctx, " " + c), 0) for c in d["choices"]["text"]]
        ll = -tiny_gpt2.conditional_nll(reqs).nll
        gold = d["choices"]["label"].index(d["answerKey"])
        correct.append(np.argmax(ll) == gold)
        correct_norm.append(np.argmax(ll / np.array([len(c) for c in d["choices"]["text"]])) == gold)
    assert rows["acc"].value == pytest.approx(np.mean(correct)) and rows["acc_norm"].value == pytest.approx(np.mean(correct_norm))
    assert rows["acc"].n == 3 and out.split == "test" and out.dataset == f"local:{data.resolve()}"
    assert out.settings["num_fewshot"] == {"arc_easy": 0} and out.settings["lm_eval_tasks"] == ["arc_easy"]


# -- generate_until --------------------------------------------------------------------------------
def test_cut_generation_stops_at_eos_then_at_the_earliest_stop_string(tiny_gpt2):
    from dlmbench.integrations.lmeval import cut_generation

    tok = tiny_gpt2.tokenizer
    assert tok.eos_id == 0
    ids = tok.encode("hello world, this") + [tok.eos_id] + tok.encode(" the lazy dog")
    assert tok.decode(ids) == "hello world, this the lazy dog"  # what a plain decode would return
    assert cut_generation(tok, ids, []) == "hello world, this"
    assert cut_generation(tok, ids, ["lazy"]) == "hello world, this"  # after the end of text: never reached
    assert cut_generation(tok, ids, [", t", "o w"]) == "hell"  # the earliest of the stop strings
    assert cut_generation(tok, ids, ["", "zzz"]) == "hello world, this"


@pytest.fixture(scope="module")
def byte_llada(tmp_path_factory):
    """A random tiny LLaDA whose output head only favours lower-case letters and the space (in the tiny
    byte-level tokenizer, ids 64..89 are 'a'..'z' and 220 is 'Ġ', a space), so its generations are readable
    text; a second card with ``gen_length``."""
    from dlmbench.families.llada.writer import (
        random_state_dict, save_llada_checkpoint, tiny_llada_config, write_tiny_tokenizer,
    )
    from dlmbench.families.llada.adapter import load_llada

    config = tiny_llada_config()
    sd = random_state_dict(config, seed=4)
    keep = torch.zeros(sd["model.transformer.ff_out.weight"].shape[0], dtype=torch.bool)
    keep[64:90] = keep[220] = True
    sd["model.transformer.ff_out.weight"][~keep] = 0.0
    sd["model.transformer.ff_out.weight"][keep] *= 8.0  # so that temperature-1 samples are mostly text too
    folder = save_llada_checkpoint(sd, config, tmp_path_factory.mktemp("byte_llada") / "llada")
    write_tiny_tokenizer(folder)
    card = {"name": "byte-llada", "family": "llada", "checkpoint": {"local": str(folder)}, "max_length": 64,
            "settings": {"steps": 8, "block_length": 8, "batch_size": 4}}
    fixed = {**card, "settings": {**card["settings"], "gen_length": 8}}
    return load_llada(ModelSpec.from_dict(card)), load_llada(ModelSpec.from_dict(fixed))


def _expected_generation(model, context, gen_kwargs, seed, length, until, **sampler):
    """The model's own sample for the request's seed, cut by hand: at the end-of-text token, then at the
    first stop string."""
    from dlmbench.integrations.lmeval import generate_seed

    s = model.sample(1, length, prefix=model.tokenizer.encode(context), seed=generate_seed(seed, context, gen_kwargs), **sampler)
    ids = list(s.tokens[0])
    assert len(ids) == length
    eos = model.tokenizer.eos_id
    if eos in ids:
        ids = ids[: ids.index(eos)]
    text = model.tokenizer.decode(ids)
    for stop in until:
        text = text.split(stop)[0]
    return text


def _generate(bridge, context, gen_kwargs):
    from lm_eval.api.instance import Instance

    [out] = bridge.generate_until([Instance("generate_until", {}, (context, gen_kwargs), 0)])
    assert isinstance(out, str)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llada", "mdlm"])
def test_generate_until_diffusion(family, byte_llada, tmp_path):
    if family == "llada":
        model = byte_llada[0]
    else:
        from tiny_dit import make_tiny

        from dlmbench.families import load_model

        model = load_model(ModelSpec.from_dict(make_tiny(tmp_path, "mdlm", max_length=48, seed=2, steps=16)["card"]))
    bridge = DlmbenchLM(model, seed=5)
    ctx = "the quick brown"
    greedy = _generate(bridge, ctx, {"until": [], "max_gen_toks": 16})
    assert greedy == _expected_generation(model, ctx, {"max_gen_toks": 16}, 5, 16, [], temperature=0.0)
    assert bridge.score_info["generate.length"] == 16 and bridge.score_info["generate.length_from"] == "max_gen_toks"
    # do_sample with a temperature: the family's sampler at that temperature, seeded per request
    kw = {"until": [], "max_gen_toks": 16, "do_sample": True, "temperature": 1.0}
    hot = _generate(bridge, ctx, kw)
    assert hot == _expected_generation(model, ctx, kw, 5, 16, [], temperature=1.0)
    assert bridge.score_info["sampler.temperature"] == 1.0 and len(hot) >= 8, hot  # the model's text
    # a stop string from the middle of that text, first occurring there: the same sample (the stop strings
    # do not change the seed), cut just before it
    p = next((p for p in range(len(hot) // 2, 0, -1) if hot.find(hot[p : p + 2]) == p), None)
    assert p is not None, hot
    stop = hot[p : p + 2]
    cut = _generate(bridge, ctx, {**kw, "until": ["never-there", stop]})
    assert cut == hot[:p] and stop not in cut and 0 < len(cut) < len(hot)


def test_generate_until_llada_block_lengths(byte_llada):
    from dlmbench.errors import BadSpec

    model, fixed = byte_llada
    ctx = "hello world"
    # max_gen_toks must fit LLaDA's blocks: a one-line error, not the sampler's ValueError (a request shorter
    # than one block is one block: LLaDA with block_length = gen_length)
    with pytest.raises(BadSpec, match="not a multiple of block_length 8"):
        _generate(DlmbenchLM(model, seed=0), ctx, {"until": [], "max_gen_toks": 12})
    # a card with gen_length generates that many tokens whatever max_gen_toks says (LLaDA's own harness)
    bridge = DlmbenchLM(fixed, seed=0)
    got = _generate(bridge, ctx, {"until": [], "max_gen_toks": 6})
    assert got == _expected_generation(fixed, ctx, {"max_gen_toks": 6}, 0, 8, [], temperature=0.0)
    assert bridge.score_info["generate.length"] == 8 and bridge.score_info["generate.length_from"] == "gen_length"
