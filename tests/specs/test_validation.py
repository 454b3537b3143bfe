"""Every user mistake in settings is found by ``resolve`` before any model loads, as one typed error.

The model side is checked against the family's settings type named in the family table; these tests use a toy
family registered from the tests (``tests/toy_settings_family.py``) whose loader records every call, so a
mistake caught "in time" is one the loader never saw.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dlmbench.api import evaluate, resolve
from dlmbench.errors import (
    BadSetting,
    BadSpec,
    DlmbenchError,
    UnknownModel,
    UnknownTask,
)
from dlmbench.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import toy_settings_family as toy  # noqa: E402


@pytest.fixture(scope="module")
def toy_specs(tmp_path_factory):
    folder = toy.install(tmp_path_factory.mktemp("specs"))
    yield folder
    toy.uninstall()


@pytest.fixture(scope="module")
def reg(toy_specs):
    return Registry.default([toy_specs])


@pytest.fixture(autouse=True)
def _no_loader_calls_yet():
    toy.CALLS.clear()


# (model, task, settings, error type, text the one line must contain)
MISTAKES = [
    ("toy-model", "toy-text", {"stpes": 64}, BadSetting, "unknown setting 'stpes' = 64; did you mean 'steps'?"),
    ("toy-model", "toy-text", {"batch_size": "abc"}, BadSetting, "model toy-model: batch_size must be a positive integer or 'auto', not 'abc'"),
    ("toy-model", "toy-text", {"temperature": -1}, BadSetting, "setting 'temperature' = -1 is not allowed: Input should be greater than or equal to 0"),
    ("toy-model", "toy-text", {"max_length": 100000}, BadSetting, "'max_length' = 100000 is larger than the card's context length 64"),
    ("toy-model", "toy-text", {"sampler": "bogus"}, BadSetting, "setting 'sampler' = 'bogus' is not allowed: Input should be 'ancestral' or 'topk'"),
    ("toy-model", "toy-text", {"greedy": "sometimes"}, BadSetting, "setting 'greedy' = 'sometimes'"),
    ("toy-model", "toy-text", {"model.stpes": 64}, BadSetting, "did you mean 'steps'?"),
    ("toy-model", "genppl-kjv", {"task.n_sampels": 3}, BadSetting, "task genppl-kjv (genppl): unknown setting 'n_sampels' = 3; did you mean 'n_samples'?"),
    ("toy-model", "genppl-kjv", {"n_samples": "abc"}, BadSetting, "task genppl-kjv (genppl): setting 'n_samples' = 'abc' is not allowed"),
    ("toy-model", "genppl-kjv", {"length": 0}, BadSetting, "setting 'length' = 0 is not allowed: Input should be greater than or equal to 1"),
    ("toy-model", "genppl-kjv", {"convention": "xyz"}, BadSetting, "setting 'convention' = 'xyz' is not allowed: Input should be 'mdlm', 'sedd' or 'bos'"),
    ("toy-model", "genppl-kjv", {"sampler": {"temperature": -1}}, BadSetting, "sampler for model toy-model (toyset): setting 'temperature' = -1"),
    ("toy-model", "genppl-kjv", {"sampler": {"tempreature": 0.5}}, BadSetting, "did you mean 'temperature'?"),
    ("toy-model", "genppl-kjv", {"eval_model": "gtp2"}, UnknownModel, "did you mean 'gpt2'"),
    ("toy-model", "mmlu", {"greedy": "sometimes"}, BadSetting, "setting 'greedy' = 'sometimes' is not allowed: Input should be 'auto', 'true' or 'false'"),
    ("toy-model", "mmlu", {"num_fewshot": -1}, BadSetting, "setting 'num_fewshot' = -1"),
    ("toy-model", "kjv-lastword", {"strip_punctuation": "maybe"}, BadSetting, "setting 'strip_punctuation' = 'maybe'"),
    ("toy-model", "toy-text", {"packing.mode": "zip"}, BadSetting, "setting 'mode' = 'zip' is not allowed: Input should be 'wrap', 'sliding', 'document' or 'rolling'"),
    ("toy-model", "toy-text", {"mode": "zip"}, BadSetting, "setting 'mode' = 'zip'"),
    ("toy-model", "toy-text", {"packing.blok_size": 8}, BadSetting, "did you mean 'block_size'?"),
    ("toy-model", "toy-text", {"packing.mode": "sliding", "packing.stride": 64}, BadSetting, "packing.stride = 64 must be smaller than the block size 64"),
    ("toy-model", "toy-text", {"dataset.source": "ftp"}, BadSetting, "setting 'source' = 'ftp' is not allowed: Input should be 'hf', 'local', 'package', 'url' or 'generated'"),
    ("toy-model", "toy-text", {"dataset.feild": "x"}, BadSetting, "did you mean 'field'?"),
    ("toy-model", "toy-text", {"dataset.format": "csv"}, BadSetting, "setting 'format' = 'csv'"),
    ("toy-model", "reversal-p2d", {"max_new_tokens": 0}, BadSetting, "setting 'max_new_tokens' = 0"),
    ("toy-model", "countdown-cd3", {"problem": "chess"}, BadSetting, "setting 'problem' = 'chess'"),
    ("toy-model", "countdown-cd3", {"mdm_decoding": "fast"}, BadSetting, "setting 'mdm_decoding' = 'fast'"),
    ("toy-model", "mauve-kjv", {"num_buckets": 1}, BadSetting, "num_buckets must be 'auto' or an integer >= 2"),
    ("toy-modle", "toy-text", {}, UnknownModel, "did you mean 'toy-model'"),
    ("toy-model", "toy-txet", {}, UnknownTask, "did you mean 'toy-text'"),
]


@pytest.mark.parametrize("model, task, settings, error, text", MISTAKES, ids=[f"{m[1]}:{m[2]}" for m in MISTAKES])
def test_resolve_raises_one_typed_error(reg, model, task, settings, error, text):
    with pytest.raises(error) as e:
        resolve(model, task, settings=settings, registry=reg)
    msg = str(e.value)
    assert text in msg and "\n" not in msg
    assert toy.CALLS == []


@pytest.mark.parametrize("limit, seed, text", [(0, 0, "limit (--limit) must be a positive integer, not 0"), (-3, 0, "not -3"),
                                                ("5", 0, "not '5'"), (None, "x", "seed (--seed) must be an integer, not 'x'"),
                                                (None, 1.5, "not 1.5")])
def test_limit_and_seed(reg, limit, seed, text):
    with pytest.raises(BadSetting, match=text.replace("(", r"\(").replace(")", r"\)")):
        resolve("toy-model", "toy-text", limit=limit, seed=seed, registry=reg)


def test_evaluate_raises_before_loading_and_writes_nothing(reg, tmp_path):
    out = tmp_path / "results"
    with pytest.raises(BadSetting, match="did you mean 'steps'"):
        evaluate("toy-model", "toy-text", settings={"stpes": 64}, out=out, registry=reg)
    assert toy.CALLS == [] and not out.exists()
    # the control: valid settings get past validation, to the loader (which fails: the checkpoint is not there)
    with pytest.raises(RuntimeError, match="toy loader called"):
        evaluate("toy-model", "toy-text", settings={"steps": 64}, out=out, registry=reg)
    assert toy.CALLS == ["toy-model"]


def test_valid_settings_are_routed_and_recorded_as_given(reg):
    run = resolve("toy-model", "genppl-kjv", settings={"steps": 32, "temperature": 0.5, "n_samples": 8, "packing.add_eos": False}, registry=reg)
    # bare keys: steps and n_samples are genppl settings, temperature is the model's
    assert run.model.settings == {"batch_size": 4, "steps": 8, "temperature": 0.5}
    card = dict(Registry.default().task("genppl-kjv").settings)
    assert {k: v for k, v in run.task.settings.items() if k != "eval_model_card"} == {**card, "steps": 32, "n_samples": 8}
    assert run.task.settings["eval_model_card"]["name"] == "smollm2-135m"
    # the typed view fills defaults without touching the recorded overrides
    st = run.task.typed_settings
    assert (st.steps, st.n_samples, st.length, st.sampler, st.entropy_margin) == (32, 8, 128, {}, 0.2)
    assert run.task.typed_packing.add_eos is False and dict(run.task.packing) == {"add_eos": False}


def test_model_max_length_within_the_card_is_fine(reg):
    run = resolve("toy-model", "toy-text", settings={"max_length": 64}, registry=reg)
    assert run.model.settings["max_length"] == 64


def test_a_family_settings_type_must_be_a_settings_subclass(reg):
    import dataclasses

    from dlmbench.plugins import family, register, unregister

    original = family(toy.FAMILY.name)
    unregister(original.name)
    try:
        register(dataclasses.replace(original, settings="builtins:dict"))
        with pytest.raises(BadSetting, match="must subclass dlmbench.specs.settings.Settings"):
            resolve("toy-model", "toy-text", registry=reg)
    finally:
        unregister(original.name)
        register(original)


def test_every_error_is_a_dlmbench_error():
    for _, _, _, error, _ in MISTAKES:
        assert issubclass(error, DlmbenchError)
    assert issubclass(BadSetting, BadSpec)


def test_specs_import_neither_torch_nor_tasks():
    # validation stays cheap, and specs sit below tasks (no specs -> tasks -> specs circle)
    import subprocess

    code = (
        "import sys, dlmbench.specs, dlmbench.specs.task_settings, dlmbench.specs.docs; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('dlmbench.tasks')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_task_type_has_a_settings_type_and_a_runner():
    from dlmbench.specs.task_settings import TASK_SETTINGS_TYPES, TaskSettings
    from dlmbench.tasks.registry import _RUNNERS, task_runner

    assert set(TASK_SETTINGS_TYPES) == set(_RUNNERS)
    for name, cls in TASK_SETTINGS_TYPES.items():
        assert issubclass(cls, TaskSettings) and callable(task_runner(name))
