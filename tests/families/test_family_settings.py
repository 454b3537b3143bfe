"""Each family's typed settings (``dlmbench/families/<name>/settings.py``): defaults, the family table's entry,
and the one-line :class:`~dlmbench.errors.BadSetting` for every kind of mistake (issue 13, item 1), plus Plaid's
``sampling_steps`` -> ``steps`` rename (item 5) through cards, ``--set``-style overrides and ``dlmbench regress``.

The expected defaults below are written from the references the adapters follow, not read from the classes:
the MDLM repo's ``configs/config.yaml`` (antithetic t, eps 1e-3, ``ddpm_cache``, 1000 steps, sampler eps 1e-5,
noise removal), SEDD's ``run_sample.py`` / ``losses.py`` (iid t, ``analytic``, 1024 steps, denoise), LLaDA's
``get_log_likelihood.py`` / ``generate.py`` (128 MC draws, cfg 0, 128 steps, blocks of 32, low-confidence
remasking, temperature 0), Plaid's ``sample.py`` / ``train.py`` (4096 steps, score temperature 0.9, guidance
weight 2, reconstruction probability 1/8), the HF perplexity guide for AR (stride = max_length // 2 when
unset), and dlmbench's own documented choices (batch size 8, float64 categorical draws, ...), which are the
values the adapters' ``SETTINGS`` dicts held before the settings were typed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlmbench import plugins
from dlmbench.errors import BadSetting
from dlmbench.specs.settings import validate_settings

EXPECTED_DEFAULTS = {
    "ar": {"batch_size": 8, "stride": None, "max_length": None, "temperature": 1.0, "top_k": None, "top_p": None,
           "precision": "float64", "prefix_token_id": "auto"},
    "mdlm": {"batch_size": 8, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 1e-3, "noise_eps": 1e-3,
             "greedy": "iterative_confidence", "sampler": "ddpm_cache", "steps": 1000, "sampler_eps": 1e-5,
             "noise_removal": True, "t_estimator": "auto", "temperature": 1.0, "top_p": None, "precision": "float64", "semi_ar_stride": None,
             "use_ema": True, "topk_strategy": "stochastic0.5-linear", "threshold": None, "factor": None},
    "sedd": {"batch_size": 8, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 1e-3, "noise_eps": 1e-3,
             "greedy": "iterative_confidence", "sampler": "analytic", "steps": 1024, "sampler_eps": 1e-5, "denoise": True,
             "temperature": 1.0, "top_p": None, "precision": "float64", "semi_ar_stride": None, "use_ema": True,
             "threshold": None, "factor": None},
    "llada": {"batch_size": 8, "mc_samples": 128, "time_sampling": "stratified", "cfg": 0.0, "greedy": "iterative_confidence", "steps": 128,
              "gen_length": None, "block_length": 32, "remasking": "low_confidence", "temperature": 0.0,
              "precision": "float64", "score_precision": "float32", "threshold": None, "factor": None, "cache": "none"},
    "plaid": {"batch_size": 8, "mc_samples": 32, "reconst_prob": 0.125, "time_sampling": "stratified", "steps": 4096, "score_temp": 0.9,
              "initial_noise_scale": 1.0, "sampler": "ancestral", "guidance_weight": 2.0, "greedy": "replacement_ddim",
              "greedy_steps": 256},
    "bd3lm": {"batch_size": 8, "block_size": None, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 1e-3,
              "noise_eps": 0.0, "greedy": "iterative_confidence", "sampler": "first_hitting", "steps": 1000,
              "sampler_eps": 1e-5, "temperature": 1.0, "top_p": None, "precision": "float64", "kv_cache": False},
    # s-sahoo/duo configs/config.yaml, algo/duo_base.yaml, noise/log-linear.yaml
    "duo": {"batch_size": 8, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 1e-3, "noise_eps": 1e-3,
            "greedy": "one_shot_argmax", "sampler": "ancestral", "steps": 1000, "sampler_eps": 1e-5,
            "noise_removal": "ancestral", "temperature": 1.0, "top_p": None, "precision": "float64"},
    # HKUNLP/Dream eval/eval.py: mc_num 128, sampling_eps 1e-3, diffusion_steps 128, alg entropy, alg_temp 0,
    # temperature 0, no top_p/top_k; DreamGenerationConfig eps 1e-3; dlmbench's stratified t, float32 scoring, BOS
    "dream": {"batch_size": 8, "mc_samples": 128, "t_estimator": "sampled", "time_sampling": "stratified",
              "sampling_eps": 1e-3, "score_precision": "float32", "bos_for_empty_context": True,
              "greedy": "iterative_confidence", "alg": "entropy", "steps": 128, "eps": 1e-3, "temperature": 0.0,
              "top_p": None, "top_k": None, "alg_temp": 0.0, "precision": "float64"},
}
FAMILIES = sorted(EXPECTED_DEFAULTS)

# (family, values, words the one line must contain)
MISTAKES = [
    # a misspelled key: "did you mean"
    ("ar", {"strde": 4}, ["unknown setting 'strde'", "did you mean 'stride'"]),
    ("mdlm", {"stpes": 64}, ["unknown setting 'stpes'", "did you mean 'steps'"]),
    ("sedd", {"mc_sample": 3}, ["did you mean 'mc_samples'"]),
    ("llada", {"block_lenght": 8}, ["did you mean 'block_length'"]),
    ("plaid", {"score_tmp": 1.0}, ["did you mean 'score_temp'"]),
    ("duo", {"noise_remova": "greedy"}, ["did you mean 'noise_removal'"]),
    # a wrong type
    ("ar", {"batch_size": "abc"}, ["'batch_size' = 'abc'", "integer"]),
    ("mdlm", {"steps": 2.5}, ["'steps' = 2.5", "integer"]),
    ("sedd", {"denoise": "maybe"}, ["'denoise' = 'maybe'", "bool"]),
    ("llada", {"cfg": "strong"}, ["'cfg' = 'strong'", "number"]),
    ("plaid", {"mc_samples": [4]}, ["'mc_samples' = [4]", "integer"]),
    # out of range
    ("ar", {"temperature": -1}, ["'temperature' = -1", "greater than or equal to 0"]),
    ("ar", {"top_p": 1.5}, ["'top_p' = 1.5", "less than or equal to 1"]),
    ("ar", {"prefix_token_id": -3}, ["'prefix_token_id' = -3", "token id >= 0"]),
    ("mdlm", {"top_p": 0}, ["'top_p' = 0", "greater than 0"]),
    ("mdlm", {"sampling_eps": 1.0}, ["'sampling_eps' = 1.0", "less than 1"]),
    ("sedd", {"batch_size": 0}, ["'batch_size' = 0", "greater than or equal to 1"]),
    ("llada", {"temperature": -0.5}, ["'temperature' = -0.5"]),
    ("llada", {"steps": 0}, ["'steps' = 0"]),
    ("plaid", {"reconst_prob": 1.0}, ["'reconst_prob' = 1.0", "less than 1"]),
    ("plaid", {"score_temp": 0}, ["'score_temp' = 0", "greater than 0"]),
    # a bad choice: the allowed values are listed
    ("ar", {"precision": "float16"}, ["'precision' = 'float16'", "'float64' or 'float32'"]),
    ("mdlm", {"sampler": "first_hiting"}, ["'sampler' = 'first_hiting'", "'first_hitting'"]),
    ("mdlm", {"topk_strategy": "greedy-linear"}, ["'topk_strategy' = 'greedy-linear'", "<deterministic|stochastic<scale>>-<linear|cosine>"]),
    ("mdlm", {"time_sampling": "sobol"}, ["'time_sampling' = 'sobol'", "'antithetic'"]),
    ("sedd", {"sampler": "eular"}, ["'sampler' = 'eular'", "'analytic', 'euler' or 'confidence'"]),
    ("sedd", {"greedy": "beam"}, ["'greedy' = 'beam'", "'one_shot_argmax'"]),
    ("llada", {"remasking": "lowest"}, ["'remasking' = 'lowest'", "'low_confidence' or 'random'"]),
    ("llada", {"score_precision": "float16"}, ["'score_precision' = 'float16'", "'float32' or 'float64'"]),
    ("plaid", {"sampler": "euler"}, ["'sampler' = 'euler'", "'ancestral' or 'ddim'"]),
]


def settings_of(name: str):
    return plugins.family(name).load("settings")


def test_every_builtin_family_has_a_typed_settings_class():
    assert sorted(f.name for f in plugins.BUILTIN_FAMILIES) == FAMILIES
    for name in FAMILIES:
        cls = settings_of(name)
        assert cls is not None and cls.__module__ == f"dlmbench.families.{name}.settings"


@pytest.mark.parametrize("name", FAMILIES)
def test_defaults_are_the_reference_values(name):
    got = settings_of(name)().model_dump()
    assert set(got) == set(EXPECTED_DEFAULTS[name])  # no key added or lost: result rows record these keys
    for key, want in EXPECTED_DEFAULTS[name].items():
        assert got[key] == want and type(got[key]) is type(want), key


@pytest.mark.parametrize("name", FAMILIES)
def test_every_field_is_documented(name):
    for key, field in settings_of(name).model_fields.items():
        assert field.description and len(field.description) > 10, f"{name}.{key} has no description"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_adapter_reads_the_class_the_table_names(name):
    adapter = {"ar": "ARModel", "mdlm": "MDLMModel", "sedd": "SEDDModel", "llada": "LLaDAModel", "plaid": "PlaidModel", "bd3lm": "BD3LMModel",
               "duo": "DUOModel",
               "dream": "DreamModel"}[name]
    import importlib

    cls = getattr(importlib.import_module(f"dlmbench.families.{name}.adapter"), adapter)
    assert cls.settings_type is settings_of(name)


@pytest.mark.parametrize(("name", "values", "words"), MISTAKES, ids=[f"{m[0]}-{next(iter(m[1]))}" for m in MISTAKES])
def test_a_mistake_is_one_badsetting_line(name, values, words):
    with pytest.raises(BadSetting) as e:
        validate_settings(settings_of(name), values, f"model {name}-card")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"model {name}-card: ")
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(
    ("name", "values", "key", "want"),
    [
        ("ar", {"prefix_token_id": 0}, "prefix_token_id", 0),  # the SmolLM2 card
        ("ar", {"prefix_token_id": "none"}, "prefix_token_id", "none"),
        ("ar", {"top_k": 0}, "top_k", 0),  # 0: no top-k filtering (dlmbench.diffusion.categorical.filter_logits)
        ("mdlm", {"topk_strategy": "deterministic-cosine"}, "topk_strategy", "deterministic-cosine"),
        ("mdlm", {"topk_strategy": "stochastic1.25-linear"}, "topk_strategy", "stochastic1.25-linear"),
        ("mdlm", {"temperature": 0}, "temperature", 0.0),
        ("sedd", {"top_p": 1}, "top_p", 1.0),
        ("llada", {"block_length": None}, "block_length", None),
        ("plaid", {"sampler": "ddim"}, "sampler", "ddim"),
    ],
)
def test_allowed_edge_values_pass(name, values, key, want):
    st = validate_settings(settings_of(name), values, "here")
    assert getattr(st, key) == want and st.overrides() == {key: want}


def test_topk_strategy_pattern_accepts_what_topk_decoding_parses():
    """Ground truth: :func:`dlmbench.diffusion.remasking.topk_decoding` runs with every accepted strategy and
    rejects the ones the settings reject."""
    import torch

    from dlmbench.diffusion.remasking import topk_decoding

    cls = settings_of("mdlm")

    def denoiser(x):
        return torch.log_softmax(torch.zeros(*x.shape, 5, dtype=torch.float64), dim=-1)

    x = torch.full((1, 4), 4, dtype=torch.long)
    for s in ("stochastic0.5-linear", "deterministic-cosine", "stochastic2-cosine", "stochastic.5-linear"):
        validate_settings(cls, {"topk_strategy": s}, "here")
        topk_decoding(denoiser, x, mask_id=4, steps=2, strategy=s, seeds=[0])
    for s in ("stochastic-linear", "deterministic-square", "greedy-linear", "stochastic0.5"):
        with pytest.raises(BadSetting):
            validate_settings(cls, {"topk_strategy": s}, "here")
        with pytest.raises(ValueError):
            topk_decoding(denoiser, x, mask_id=4, steps=2, strategy=s, seeds=[0])


def test_time_sampling_choices_are_the_schemes_the_estimators_know():
    from dlmbench.diffusion.settings import TIME_SAMPLING
    from dlmbench.diffusion.timesteps import TIME_SCHEMES

    assert set(TIME_SAMPLING) == set(TIME_SCHEMES)


def test_settings_modules_do_not_import_torch():
    code = (
        "import sys\n"
        + "".join(f"import dlmbench.families.{n}.settings\n" for n in FAMILIES)
        + "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- Plaid: sampling_steps -> steps ---------------------------------------------------------------------


@pytest.fixture
def fresh_notice(monkeypatch):
    import dlmbench.families.plaid.settings as mod

    monkeypatch.setattr(mod, "_warned", set())


def test_plaid_old_name_is_read_as_steps_with_one_notice(fresh_notice, capsys):
    cls = settings_of("plaid")
    a = validate_settings(cls, {"sampling_steps": 12}, "model plaid")
    b = validate_settings(cls, {"sampling_steps": 12}, "model plaid")
    assert a.steps == b.steps == 12 and a.overrides() == {"steps": 12} and "sampling_steps" not in a.model_dump()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dlmbench: plaid setting 'sampling_steps' is deprecated; use 'steps'"]  # once per process
    assert validate_settings(cls, {"sampling_steps": 12, "steps": 12}, "model plaid").steps == 12
    with pytest.raises(BadSetting, match=r"'sampling_steps' \(the old name of 'steps'\) = 12 and 'steps' = 13 disagree"):
        validate_settings(cls, {"sampling_steps": 12, "steps": 13}, "model plaid")


def test_plaid_override_under_either_name_replaces_the_card_value(fresh_notice):
    from dlmbench.specs import CheckpointRef, ModelSpec

    cls = settings_of("plaid")
    new_card = ModelSpec("p", "plaid", CheckpointRef("local", "/tmp/p"), settings={"steps": 256, "batch_size": 4})
    old_card = ModelSpec("p", "plaid", CheckpointRef("local", "/tmp/p"), settings={"sampling_steps": 256})
    for card, over, want in [(new_card, {"sampling_steps": 64}, 64), (old_card, {"steps": 32}, 32),
                             (old_card, {"sampling_steps": 16}, 16), (new_card, {"steps": 8}, 8)]:
        spec = card.with_settings(over)
        assert validate_settings(cls, spec.settings, "here").steps == want
    assert validate_settings(cls, new_card.with_settings({"sampling_steps": 64}).settings, "here").batch_size == 4


def test_regress_reads_the_old_plaid_key_as_the_new_one():
    from dlmbench.regress.inputs import Entry
    from dlmbench.regress.matching import RENAMED_SETTINGS, Options, compared_settings, match

    assert RENAMED_SETTINGS["plaid"] == settings_of("plaid").renamed_settings

    def row(family, settings, value=1.0):
        return {"model": "m", "family": family, "task": "kjv", "metric": "perplexity", "seed": 0, "value": value,
                "bound": "upper", "higher_is_better": False, "settings": settings, "dataset": "d", "split": "s"}

    old = row("plaid", {"sampling_steps": 256, "mc_samples": 32})
    new = row("plaid", {"steps": 256, "mc_samples": 32})
    assert compared_settings(old, ()) == compared_settings(new, ())
    pairs, problems = match([Entry(old, "baseline")], [Entry(new, "candidate")], Options())
    assert len(pairs) == 1 and not problems
    other = row("plaid", {"steps": 128, "mc_samples": 32})
    _, problems = match([Entry(old, "baseline")], [Entry(other, "candidate")], Options())
    assert [p.kind for p in problems] == ["settings"] and "steps baseline=256 candidate=128" in problems[0].message
    # only Plaid's rows: another family's key of that name is left as it is
    assert "sampling_steps" in compared_settings(row("mdlm", {"sampling_steps": 3}), ())


def test_every_packaged_card_validates_and_keeps_its_values():
    """The runner validates a card's ``settings:`` with its family's class (issue 13): every shipped card must
    pass, and validation must not change a value the card gives (what a row records)."""
    from dlmbench.registry import Registry

    reg = Registry.default()
    names = reg.model_names()
    assert {"gpt2", "mdlm-owt", "sedd-small", "llada-8b-base", "plaid-1b", "zoo-plaid-kjv"} <= set(names)
    for name in names:
        spec = reg.model(name)
        st = validate_settings(settings_of(spec.family), spec.settings, f"model {name}")
        assert st.overrides() == dict(spec.settings), name
