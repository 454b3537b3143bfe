"""A suite's ``sweeps``: several grids, each over its own models and tasks, so a setting only one family has (LLaDA's
``threshold`` / ``cache``) is swept for it alone; a mistake inside a sweep fails before any job runs."""

from __future__ import annotations

import pytest

from dlmbench import api
from dlmbench.errors import DlmbenchError


def test_each_sweep_expands_over_its_own_models(tmp_path):
    suite = {"models": ["zoo-llada-kjv"], "tasks": ["genppl-kjv"],
             "sweeps": [{"grid": {"threshold": [0.9, 0.5], "cache": ["none", "dual"]}},
                        {"models": ["zoo-ar-kjv"]},
                        {"models": ["zoo-mdlm-kjv"], "settings": {"model.sampler": "confidence"}, "grid": {"threshold": [0.7]}}]}
    jobs = api.plan_suite(suite, out=tmp_path)
    by_model = {}
    for j in jobs:
        by_model.setdefault(j.run.model.name, []).append(j.run.model.settings)
    assert len(by_model["zoo-llada-kjv"]) == 4 and len(by_model["zoo-ar-kjv"]) == 1
    assert {(s["threshold"], s["cache"]) for s in by_model["zoo-llada-kjv"]} == {(0.9, "none"), (0.9, "dual"), (0.5, "none"), (0.5, "dual")}
    assert "threshold" not in by_model["zoo-ar-kjv"][0]
    assert by_model["zoo-mdlm-kjv"] == [{**by_model["zoo-mdlm-kjv"][0], "sampler": "confidence", "threshold": 0.7}]


@pytest.mark.parametrize("sweeps, expected", [
    ([{"modles": ["zoo-ar-kjv"]}], "sweeps\\[0\\]: unknown field 'modles'"),
    ([{"grid": {"threshold": [1.5]}}], "'threshold' = 1.5 is not allowed"),
    ({"models": ["zoo-ar-kjv"]}, "sweeps must be a non-empty list"),
])
def test_a_mistake_in_a_sweep_fails_before_any_job(tmp_path, sweeps, expected):
    with pytest.raises(DlmbenchError, match=expected):
        api.plan_suite({"models": ["zoo-llada-kjv"], "tasks": ["genppl-kjv"], "sweeps": sweeps}, out=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_the_fast_decoding_suite_plans(tmp_path):
    jobs = api.plan_suite("zoo-fast-decoding", out=tmp_path)
    fed = [j.run.model.settings.get("cache") for j in jobs if j.run.model.name == "zoo-llada-kjv"]
    assert {None, "prefix", "dual"} <= set(fed)  # None: the card's default, no cache
    assert {j.run.task.name for j in jobs} == {"genppl-kjv", "countdown-cd3"}
