"""The reasoning task path (prompt -> model.sample -> both verifiers) for every problem, with oracle models.

An oracle "model" answers each prompt of the fixed split with the split's own target (so both verifiers
must accept every example: accuracy exactly 1), or with an empty answer (both must reject: exactly 0).
The oracle speaks as an AR model (stops at EOS) and as a diffusion model (a full canvas: the target, EOS,
then padding; the reference keeps every non-special token of the canvas), through the character tokenizer
of the reference and through a plain text tokenizer (``src=`` prompts). Real tiny AR and MDLM models run the
same path in tests/zoo/test_zoo_findings.py (Countdown CD3).
"""

from __future__ import annotations

import pytest

from tiny_zoo import ByteTokenizer

from dlmbench.interface import SampleResult
from dlmbench.reasoning import SOURCE_FIELD, TARGET_FIELD
from dlmbench.reasoning.char_tokenizer import CharTokenizer
from dlmbench.reasoning.layout import prompt_ids, target_ids
from dlmbench.registry import Registry
from dlmbench.tasks.reasoning import generated_split, run_reasoning

CARDS = ("countdown-cd3", "sudoku", "sat5", "planning")
ALL_CARDS = CARDS + ("countdown-cd4", "countdown-cd5", "sat7", "sat9")
N = 6


class Oracle:
    """Answers from a prompt -> target table; ``wrong=True`` answers nothing (only EOS)."""

    def __init__(self, family: str, tokenizer, answers: dict[tuple[int, ...], str], *, wrong: bool = False):
        self.family, self.tokenizer, self.answers, self.wrong = family, tokenizer, answers, wrong
        self.calls = 0

    def supports(self, capability):  # what the family table says the family offers (as LanguageModel.supports)
        from dlmbench.plugins import family

        return family(self.family).has(capability)

    def sample(self, n, length, *, prefix=None, steps=None, seed=0, **settings):
        self.calls += 1
        tok = self.tokenizer
        tgt = "" if self.wrong else self.answers[tuple(prefix)]
        ids = (target_ids(tok, tgt) if isinstance(tok, CharTokenizer) else tok.encode(tgt) + [tok.eos_id])[:length]
        pad = tok.pad_id if isinstance(tok, CharTokenizer) else tok.eos_id
        ids = ids + [pad] * (length - len(ids)) if self.family != "ar" else ids
        return SampleResult([ids] * n, [tok.decode(ids)] * n, len(ids) if self.family == "ar" else 8, {"sampler": "oracle"})


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    import os

    old = os.environ.get("DLMBENCH_CACHE")
    os.environ["DLMBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    reg = Registry.default()
    yield {name: reg.task(name) for name in ALL_CARDS}
    if old is None:
        os.environ.pop("DLMBENCH_CACHE", None)
    else:
        os.environ["DLMBENCH_CACHE"] = old


def _answers(task, tok) -> dict[tuple[int, ...], str]:
    st, ds = task.settings, task.dataset
    problem = str(st.get("problem") or ds.path)
    split = generated_split(problem, ds.name, ds.split or "test", int(st.get("n_split", 1000)), int(st.get("data_seed", 1234)))[:N]
    out = {}
    for ex in split:
        src, tgt = ex[SOURCE_FIELD[problem]], ex[TARGET_FIELD[problem]]
        key = prompt_ids(tok, src) if isinstance(tok, CharTokenizer) else tok.encode(src + str(st.get("prompt_suffix", "=")))
        out[tuple(key)] = tgt
    return out


@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("family", ["ar", "mdlm"])
@pytest.mark.parametrize("tokenizer", [CharTokenizer, ByteTokenizer])
def test_oracle_answers_score_one_and_empty_answers_score_zero(cards, card, family, tokenizer):
    task = cards[card]
    tok = tokenizer()
    answers = _answers(task, tok)
    right = Oracle(family, tok, answers)
    out = run_reasoning(right, task, seed=0, limit=N)
    values = {m.metric: m for m in out.metrics}
    assert right.calls == N and len(out.examples) == N
    assert values["faithful_acc"].value == 1.0 and values["strict_acc"].value == 1.0 and values["strict_acc"].n == N
    assert all(ex["prediction"] == ex["target"] for ex in out.examples)
    wrong = run_reasoning(Oracle(family, tok, answers, wrong=True), task, seed=0, limit=N)
    values = {m.metric: m for m in wrong.metrics}
    assert values["faithful_acc"].value == 0.0 and values["strict_acc"].value == 0.0
    if card == "planning":  # per-distance breakdown covers every example once
        per = [m for m in out.metrics if m.metric.startswith("faithful_acc.pd")]
        assert sum(m.n for m in per) == N and all(m.value == 1.0 for m in per)


@pytest.mark.parametrize("card", ALL_CARDS)
def test_every_target_of_the_split_fits_the_generation_budget(cards, card):
    """An answer longer than ``max_new_tokens`` is cut and can never be right: the budget must hold them all."""
    from dlmbench.reasoning.layout import LENGTHS, fits
    from dlmbench.tasks.reasoning import _variant_kwargs

    task = cards[card]
    st, ds = task.settings, task.dataset
    problem = str(st.get("problem") or ds.path)
    split = generated_split(problem, ds.name, ds.split or "test", int(st.get("n_split", 1000)), int(st.get("data_seed", 1234)))
    lengths = LENGTHS[_variant_kwargs(problem, ds.name)[0]]
    tok = CharTokenizer()
    assert all(fits(tok, ex[SOURCE_FIELD[problem]], ex[TARGET_FIELD[problem]], lengths) for ex in split)


def test_diffusion_models_decode_as_the_reference_unless_told_otherwise(cards):
    """A diffusion model offering ``topk`` gets the reference's MDM decoding (top-k, T=20, stochastic0.5-linear)
    by default; a task ``sampler`` or ``mdm_decoding: model`` keeps the caller's choice; AR stays greedy."""
    import dataclasses

    task = cards["countdown-cd3"]
    tok = CharTokenizer()
    answers = _answers(task, tok)

    class Recording(Oracle):
        samplers = ("ddpm_cache", "topk")

        def sample(self, n, length, *, prefix=None, steps=None, seed=0, **settings):
            self.seen = (steps, settings)
            return super().sample(n, length, prefix=prefix, steps=steps, seed=seed, **settings)

    def seen(family, **st):
        model = Recording(family, tok, answers)
        run_reasoning(model, dataclasses.replace(task, settings={**task.settings, **st}), seed=0, limit=1)
        return model.seen

    assert seen("mdlm") == (20, {"sampler": "topk", "topk_strategy": "stochastic0.5-linear"})
    assert seen("mdlm", steps=50) == (50, {"sampler": "topk", "topk_strategy": "stochastic0.5-linear"})
    assert seen("mdlm", sampler={"temperature": 0}) == (None, {"temperature": 0})
    assert seen("mdlm", mdm_decoding="model") == (None, {})
    assert seen("ar") == (None, {"temperature": 0.0})
