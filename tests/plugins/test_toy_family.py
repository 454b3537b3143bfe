"""A family added from the test folder alone (``toyfam.py``: a character bigram LM), registered through
:func:`dlmbench.plugins.register` as a third-party package would, runs a perplexity task through the CLI, a
reasoning task and the lm-eval bridge, with every number recomputed here from the bigram counts."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toyfam  # noqa: E402

from dlmbench import plugins  # noqa: E402
from dlmbench.cli import main  # noqa: E402
from dlmbench.errors import UnknownName  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ,.=+-*/?\n"
TEXTS = ["the cat sat on the mat.", "a dog ran to the cat,", "to be or not to be"]


def _counts() -> np.ndarray:
    """Bigram counts of TEXTS (BOS -> first char, last char -> EOS), plus a rule: '=' is followed by '1+2'."""
    v = len(ALPHABET) + 1
    eos = v - 1
    idx = {c: i for i, c in enumerate(ALPHABET)}
    c = np.zeros((v, v), dtype=np.int64)
    for t in TEXTS:
        ids = [eos] + [idx[ch] for ch in t] + [eos]
        for a, b in zip(ids, ids[1:]):
            c[a, b] += 1
    for a, b, n in (("=", "1", 50), ("1", "+", 50), ("+", "2", 50)):
        c[idx[a], idx[b]] += n
    c[idx["2"], eos] += 50
    return c


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The family registered for this module, and a --specs folder with its card and two task cards."""
    root = tmp_path_factory.mktemp("toyfam")
    counts = _counts()
    (root / "bigram.json").write_text(json.dumps({"alphabet": ALPHABET, "counts": counts.tolist()}))
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    specs = root / "specs"
    specs.mkdir()
    (specs / "toy-bigram.yaml").write_text(yaml.safe_dump(
        {"name": "toy-bigram", "family": "bigram", "checkpoint": {"local": str(root / "bigram.json")},
         "settings": {"smoothing": 0.5}}))
    (specs / "toy-ppl.yaml").write_text(yaml.safe_dump(
        {"name": "toy-ppl", "type": "perplexity", "dataset": {"source": "local", "path": str(root / "docs.jsonl"), "field": "text"},
         "packing": {"mode": "document", "add_bos": True, "add_eos": False}}))
    with plugins.registered(toyfam.FAMILY):
        yield root, specs, counts


def _logp(counts: np.ndarray, smoothing: float = 0.5) -> np.ndarray:
    c = counts.astype(np.float64) + smoothing
    return np.log(c / c.sum(axis=1, keepdims=True))


def test_the_family_is_listed_and_a_card_of_it_validates(toy, capsys):
    _, specs, _ = toy
    assert "bigram" in plugins.family_names() and plugins.family("bigram").has("left_to_right")
    assert main(["list", "families"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["bigram"])
    assert "exact_likelihood" in line and "left_to_right" in line and "infill" not in line
    assert main(["--specs", str(specs), "list", "models"]) == 0
    assert any(ln.split()[:2] == ["toy-bigram", "bigram"] for ln in capsys.readouterr().out.splitlines())


def test_perplexity_task_through_the_cli_equals_the_bigram_by_hand(toy, capsys, tmp_path):
    root, specs, counts = toy
    code = main(["--specs", str(specs), "run", "--model", "toy-bigram", "--task", "toy-ppl", "--out", str(tmp_path / "res"),
                 "--progress", "off"])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = [json.loads(ln) for f in (tmp_path / "res").rglob("metrics.jsonl") for ln in f.read_text().splitlines() if ln.strip()]
    ppl = next(r for r in rows if r["metric"] == "perplexity")
    assert ppl["family"] == "bigram" and ppl["bound"] == "exact" and ppl["n"] == len(TEXTS)

    # by hand: each document scored after BOS, no EOS (packing mode document, add_bos, no add_eos)
    logp, idx = _logp(counts), {c: i for i, c in enumerate(ALPHABET)}
    eos = len(ALPHABET)
    nll = ntok = 0
    for t in TEXTS:
        ids = [eos] + [idx[ch] for ch in t]
        nll -= sum(logp[a, b] for a, b in zip(ids, ids[1:]))
        ntok += len(t)
    assert ppl["value"] == pytest.approx(math.exp(nll / ntok), rel=1e-12)


def test_reasoning_task_decodes_greedily_and_cuts_at_eos_because_the_family_is_left_to_right(toy, tmp_path, monkeypatch):
    import dataclasses

    from dlmbench.reasoning import MODULES
    from dlmbench.registry import Registry
    from dlmbench.tasks.reasoning import generated_split, run_reasoning

    _, specs, counts = toy
    monkeypatch.setenv("DLMBENCH_CACHE", str(tmp_path / "cache"))
    reg = Registry.default([specs])
    model = plugins.load_model(reg.model("toy-bigram"))
    assert model.capabilities == toyfam.FAMILY.capabilities and model.supports("left_to_right")
    assert not model.supports("infill") and not model.supports("topk_decoding")
    with pytest.raises(UnknownName, match="did you mean 'left_to_right'"):
        model.supports("left_to_rigth")
    task = reg.task("countdown-cd3")
    out = run_reasoning(model, task, seed=0, limit=3)

    # by hand: after the prompt's '=' the argmax chain is '1', '+', '2', EOS; the answer is the text before EOS
    assert out.settings["sampler"] == {"temperature": 0.0}
    assert [r["prediction"] for r in out.examples] == ["1+2"] * 3
    mod = MODULES["countdown"]
    examples = generated_split("countdown", "cd3", "test", 1000, 1234)[:3]
    acc = {m.metric: m.value for m in out.metrics}
    assert acc["faithful_acc"] == pytest.approx(np.mean([bool(mod.verify_faithful("1+2", ex)) for ex in examples]))
    assert acc["strict_acc"] == pytest.approx(np.mean([bool(mod.verify_strict("1+2", ex)) for ex in examples]))
    assert acc["nfe_per_example"] == 4  # three answer characters and the EOS, one pass each

    # the same family without left_to_right keeps the card's sampler (temperature 1): the capability decides
    other = dataclasses.replace(toyfam.FAMILY, name="bigram-canvas", capabilities=toyfam.FAMILY.capabilities - {"left_to_right"})
    with plugins.registered(other):
        spec = dataclasses.replace(reg.model("toy-bigram"), family="bigram-canvas")
        canvas = plugins.load_model(spec)
        assert not canvas.supports("left_to_right")
        out2 = run_reasoning(canvas, dataclasses.replace(task, settings={**task.settings, "max_new_tokens": 4}), seed=0, limit=3)
    assert out2.settings["sampler"] == {}
    assert any(r["prediction"] != "1+2" for r in out2.examples)  # sampled at temperature 1, not greedy


def test_lm_eval_bridge_loglikelihood_equals_the_bigram_by_hand(toy):
    from lm_eval.api.instance import Instance

    from dlmbench.integrations.lmeval import DlmbenchLM

    _, specs, counts = toy
    bridge = DlmbenchLM(model="toy-bigram", specs=str(specs), greedy="true")
    pairs = [("the c", "at"), ("=", "1+2"), ("", "to be"), ("a dog ", "ran")]
    got = bridge.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)])
    logp, idx = _logp(counts), {c: i for i, c in enumerate(ALPHABET)}
    eos = len(ALPHABET)
    for (ctx, cont), (ll, greedy) in zip(pairs, got):
        ctx_s, cont_s = (ctx.rstrip(), ctx[len(ctx.rstrip()):] + cont)  # lm-eval: trailing spaces move to the continuation
        prev = idx[ctx_s[-1]] if ctx_s else eos
        want, is_greedy = 0.0, True
        for ch in cont_s:
            want += logp[prev, idx[ch]]
            is_greedy &= int(np.argmax(logp[prev])) == idx[ch]
            prev = idx[ch]
        assert ll == pytest.approx(want, rel=1e-12)
        assert greedy == is_greedy
    assert got[1][1] is True  # '=' -> '1' -> '+' -> '2' is the argmax chain
    assert bridge.get_model_info()["dlmbench_bound"] == "exact"
