"""LLaDA's Fast-dLLM settings (threshold, factor, cache): validated before any model loads, fed to the sampler,
and recorded in the result."""

from __future__ import annotations

import pytest

from dlmbench.cli import main
from dlmbench.errors import BadSetting
from dlmbench.families.llada.adapter import load_llada
from dlmbench.families.llada.settings import LLaDASettings
from dlmbench.families.llada.writer import write_tiny_llada
from dlmbench.specs import ModelSpec
from dlmbench.specs.settings import validate_settings

BAD = [
    ({"threshold": 0}, "'threshold' = 0 is not allowed"),
    ({"threshold": 1.5}, "'threshold' = 1.5 is not allowed"),
    ({"factor": -1}, "'factor' = -1 is not allowed"),
    ({"cache": "full"}, "'cache' = 'full' is not allowed"),
    ({"threshold": 0.9, "factor": 1.0}, "at most one of threshold and factor"),
    ({"threshold": 0.9, "remasking": "random"}, "needs remasking low_confidence"),
    ({"cache": "dual", "cfg": 1.0}, "cache dual needs cfg 0"),
]


@pytest.mark.parametrize("given, expected", BAD, ids=[str(g) for g, _ in BAD])
def test_bad_fast_settings_are_one_line(given, expected):
    with pytest.raises(BadSetting, match=expected.replace("(", r"\(")):
        validate_settings(LLaDASettings, given, "model x (llada)")


def test_bad_threshold_exits_2_before_the_model_loads(capsys, tmp_path):
    rc = main(["run", "--model", "zoo-llada-kjv", "--task", "genppl-kjv", "--set", "threshold=2", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "'threshold' = 2 is not allowed" in err, err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_llada(tmp_path_factory.mktemp("llada-fast"), seed=4)
    spec = ModelSpec.from_dict({"name": "tiny-llada", "family": "llada", "checkpoint": {"local": str(folder)},
                                "max_length": 64, "settings": {"batch_size": 2, "block_length": 4}})
    return load_llada(spec)


def test_threshold_one_through_the_adapter_equals_one_token_per_step(tiny):
    for temperature in (0.0, 1.0):
        want = tiny.sample(3, 8, prefix=[5, 6], steps=8, seed=3, temperature=temperature)
        got = tiny.sample(3, 8, prefix=[5, 6], steps=2, seed=3, temperature=temperature, threshold=1.0)
        assert got.tokens == want.tokens
        assert got.settings["nfe_per_sample"] == want.settings["nfe_per_sample"] == 8.0
        assert got.settings["nfe_total"] == 24 and got.settings["threshold"] == 1.0 and got.settings["cache"] == "none"


def test_rows_do_not_depend_on_batch_size_and_the_record_says_what_was_fed(tiny):
    a = tiny.sample(3, 8, steps=4, seed=1, temperature=1.0, threshold=0.5, cache="prefix")
    b = tiny.sample(3, 8, steps=4, seed=1, temperature=1.0, threshold=0.5, cache="prefix", batch_size=8)
    assert a.tokens == b.tokens
    assert a.settings["cache"] == "prefix" and a.settings["threshold"] == 0.5 and a.settings["seeding"] == "per_row"
    assert 2 <= a.settings["nfe_per_sample"] <= 8 and a.settings["nfe_total"] == round(3 * a.settings["nfe_per_sample"])
