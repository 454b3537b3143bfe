"""dlmbench's metrics as Hugging Face ``evaluate`` modules (issue 16, item 6), loaded offline from the package.

Each module is checked against dlmbench's own path on the same inputs: the ``reasoning`` task run with a
scripted model (its per-example records are the module's inputs), the ``perplexity`` task on a tiny AR model
(exact) and a tiny MDLM (upper bounds), and the ``genppl`` task with a tiny GPT-2 as generator and evaluator.
Same inputs, same numbers (to float rounding: the module reads its inputs back from an Arrow table).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

evaluate = pytest.importorskip("evaluate")

from dlmbench.integrations.hf_evaluate import MODULES, module_path  # noqa: E402
from dlmbench.interface import SampleResult  # noqa: E402
from dlmbench.specs import ModelSpec, TaskSpec  # noqa: E402


def _load(name, config=None):
    return evaluate.load(module_path(name), config) if config else evaluate.load(module_path(name))


def test_modules_ship_inside_the_package():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dlmbench"]
    for name in MODULES:
        script = Path(module_path(name)) / f"{name}.py"
        assert script.is_file(), script
        rel = script.relative_to(root / "dlmbench").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
    from dlmbench.errors import UnknownName

    with pytest.raises(UnknownName, match="dlmbench_reasoning"):
        module_path("dlmbench_reasoninq")


# -- reasoning -------------------------------------------------------------------------------------
class Scripted:
    """An AR-family "model" that answers each prompt from a table (text after the prompt, then EOS)."""

    family = "ar"

    def __init__(self, answers):
        from tiny_zoo import ByteTokenizer

        self.tokenizer = ByteTokenizer()
        self.answers = answers

    def supports(self, capability):
        from dlmbench.plugins import family

        return family(self.family).has(capability)

    def sample(self, n, length, *, prefix=None, steps=None, seed=0, **settings):
        ids = (self.tokenizer.encode(self.answers[self.tokenizer.decode(prefix)]) + [self.tokenizer.eos_id])[:length]
        return SampleResult([ids] * n, [self.tokenizer.decode(ids)] * n, len(ids), {"sampler": "scripted"})


def _answers(problem, examples):
    """Per example: the gold answer, nothing, a damaged answer, or a different answer (rotating), so both
    verifiers see right and wrong answers."""
    from dlmbench.reasoning import SOURCE_FIELD, TARGET_FIELD

    out = {}
    for i, ex in enumerate(examples):
        gold = ex[TARGET_FIELD[problem]]
        other = examples[(i + 1) % len(examples)][TARGET_FIELD[problem]]
        out[ex[SOURCE_FIELD[problem]] + "="] = [gold, "", gold[:-1] + ("1" if gold[-1] != "1" else "2"), other][i % 4]
    return out


@pytest.mark.parametrize("problem,kwargs", [("countdown", {"k": 3}), ("sudoku", {}), ("sat", {"variables": 5}), ("planning", {})])
def test_reasoning_module_equals_the_reasoning_task(problem, kwargs, tmp_path):
    from dlmbench.reasoning import MODULES as PROBLEMS
    from dlmbench.tasks.reasoning import run_reasoning

    examples = PROBLEMS[problem].generate(8, 3, **kwargs)
    data = tmp_path / f"{problem}.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in examples))
    task = TaskSpec.from_dict({"name": f"r-{problem}", "type": "reasoning", "dataset": {"source": "local", "path": str(data)},
                               "settings": {"problem": problem, "n_test": 8}})
    out = run_reasoning(Scripted(_answers(problem, examples)), task, seed=0, limit=None)
    rows = {m.metric: m for m in out.metrics}
    records = out.examples
    got = _load("dlmbench_reasoning", problem).compute(
        predictions=[r["prediction"] for r in records], references=[r["target"] for r in records],
        sources=[r["source"] for r in records], per_example=True,
    )
    assert got["n"] == rows["strict_acc"].n == 8
    for metric in ("faithful_acc", "strict_acc"):
        assert got[metric] == pytest.approx(rows[metric].value, abs=1e-12)
        assert got[f"{metric}_stderr"] == pytest.approx(rows[metric].stderr, abs=1e-12)
    assert got["faithful"] == [r["faithful"] for r in records] and got["strict"] == [r["strict"] for r in records]
    assert 0 < rows["strict_acc"].value < 1  # right and wrong answers both seen


def test_reasoning_module_needs_a_known_problem():
    with pytest.raises(KeyError, match="countdown"):
        _load("dlmbench_reasoning", "chess")


# -- bound-aware perplexity ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from tiny_dit import make_tiny
    from tiny_zoo import make_zoo

    from dlmbench.families import load_model
    from dlmbench.registry import Registry

    root = tmp_path_factory.mktemp("hf_evaluate_zoo")
    specs = make_zoo(root, llada=False)
    reg = Registry.default([str(specs)])
    mdlm = load_model(ModelSpec.from_dict(make_tiny(root, "mdlm", max_length=48, seed=2, steps=16)["card"]))
    return {"ar": load_model(reg.model("tiny-gpt2")), "mdlm": mdlm, "task": reg.task("tiny-ppl"), "specs": specs}


@pytest.mark.parametrize("kind", ["ar", "mdlm"])
def test_perplexity_module_equals_the_perplexity_task(zoo, kind):
    from dlmbench.tasks.perplexity import run_perplexity

    out = run_perplexity(zoo[kind], zoo["task"], seed=0, limit=None)
    rows = {m.metric: m for m in out.metrics}
    ex = out.examples
    bound = rows["perplexity"].bound
    assert bound == ("exact" if kind == "ar" else "upper")
    got = _load("dlmbench_perplexity").compute(nll=[e["nll"] for e in ex], n_tokens=[e["n_tokens"] for e in ex],
                                               bound=[bound] * len(ex), n_bytes=[e["n_bytes"] for e in ex])
    for metric in ("perplexity", "nll_per_token", "bits_per_byte"):
        assert got[metric] == pytest.approx(rows[metric].value, rel=1e-12)
        assert got[f"{metric}_stderr"] == pytest.approx(rows[metric].stderr, rel=1e-9)
    assert got["bound"] == bound and got["n"] == rows["perplexity"].n
    shown = got["display"]["perplexity"]
    assert shown == (f"<= {rows['perplexity'].value:.4f}" if bound == "upper" else f"{rows['perplexity'].value:.4f}")


def test_perplexity_module_one_upper_bound_makes_an_upper_bound():
    """Closed form: nll (2, 4), tokens (1, 3): exp(6 / 4); one bound input makes the result a bound."""
    got = _load("dlmbench_perplexity").compute(nll=[2.0, 4.0], n_tokens=[1, 3], bound=["exact", "upper"], n_words=[1, 1])
    assert got["perplexity"] == pytest.approx(np.exp(1.5), rel=1e-12) and got["word_perplexity"] == pytest.approx(np.exp(3.0), rel=1e-12)
    assert got["bound"] == "upper" and got["display"]["word_perplexity"].startswith("<= ")
    with pytest.raises(ValueError, match="exact' or 'upper"):
        _load("dlmbench_perplexity").compute(nll=[1.0], n_tokens=[1], bound=["lower"])


# -- generative perplexity -------------------------------------------------------------------------
@pytest.mark.parametrize("convention", ["mdlm", "bos", "sedd"])
def test_genppl_module_equals_the_genppl_task(zoo, tmp_path, convention):
    from dlmbench.tasks.genppl import run_genppl

    card = zoo["specs"] / "models" / "tiny-gpt2.yaml"
    data = tmp_path / "reference.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the quick brown fox jumps over the lazy dog"] * 8))
    task = TaskSpec.from_dict({"name": "genppl-tiny", "type": "genppl", "dataset": {"source": "local", "path": str(data)},
                               "settings": {"n_samples": 4, "length": 12, "eval_model": str(card), "convention": convention,
                                            "sampler": {"temperature": 1.0}}})
    model = zoo["ar"]
    out = run_genppl(model, task, seed=0, limit=None)
    rows = {m.metric: m for m in out.metrics}
    tokens = [e["tokens"] for e in out.examples]
    texts = [model.tokenizer.decode(t) for t in tokens]
    got = _load("dlmbench_genppl").compute(predictions=texts, eval_model=str(card), convention=convention, tokens=tokens,
                                           reference_entropy=rows["reference_entropy"].value)
    assert got["gen_ppl"] == pytest.approx(rows["gen_ppl"].value, rel=1e-6)
    assert got["gen_ppl_stderr"] == pytest.approx(rows["gen_ppl"].stderr, rel=1e-6)
    assert got["entropy"] == pytest.approx(rows["entropy"].value, rel=1e-12)
    assert got["entropy_stderr"] == pytest.approx(rows["entropy"].stderr, rel=1e-12)
    assert got["low_entropy_flag"] == rows["low_entropy_flag"].value and got["entropy_tokens"] == "generator"
