"""``batch_size: auto`` (dlmbench/runner/autobatch.py): never changes a result, is probed once per shape and
cached, halves on out-of-memory on CUDA, and a bad value exits 2 before any model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlmbench import api
from dlmbench.cli import main
from dlmbench.errors import BadSetting
from dlmbench.interface import NLLResult, ScoreRequest
from dlmbench.runner import autobatch as ab
from dlmbench.runner.resolve import cache_key, resolve
from dlmbench.specs.settings import check_batch_size
from dlmbench.testing.contract import RTOL_BATCH  # equal up to float32 rounding of the batched forward


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLMBENCH_CACHE", str(tmp_path / "cache"))


# -- results do not depend on the batch size ------------------------------------------------------------


@pytest.mark.parametrize("model", ["zoo-ar-kjv", "zoo-mdlm-kjv", "zoo-llada-kjv"])
def test_rows_equal_for_batch_one_fixed_and_auto(model, tmp_path):
    """Perplexity (kjv) and a conditional task (kjv-lastword) give the same rows with batch 1, 3 and auto: the
    Monte Carlo draws are seeded per request, so only float32 rounding of the batched forward may differ (a
    different draw would move the diffusion bounds by about their stderr, ~1e-2 relative)."""
    for task in ("kjv", "kjv-lastword"):
        recs = {bs: api.evaluate(model, task, limit=3, batch_size=bs, out=tmp_path / f"r{bs}", force=True)
                for bs in (1, 3, "auto")}
        assert len({r.run_id for r in recs.values()}) == 1, "the batch size must not enter the job key"
        base = {r.metric: r for r in recs[1].rows}
        for bs, rec in recs.items():
            assert {r.metric for r in rec.rows} == set(base)
            for r in rec.rows:
                np.testing.assert_allclose(r.value, base[r.metric].value, rtol=RTOL_BATCH, err_msg=f"{model} {task} {bs}")
                if base[r.metric].stderr is not None:
                    np.testing.assert_allclose(r.stderr, base[r.metric].stderr, rtol=RTOL_BATCH)
                if bs == "auto":  # the row records the size actually used and the probe's choice
                    chosen = r.settings["batch_size_auto"]
                    assert chosen and r.settings["batch_size"] == max(chosen.values()) >= 1
                else:
                    assert r.settings["batch_size"] == bs and "batch_size_auto" not in r.settings


def test_batch_size_not_in_job_key():
    runs = [resolve("zoo-ar-kjv", "kjv", settings={"batch_size": b}) for b in (2, 16, "auto")]
    assert len({cache_key(r) for r in runs}) == 1
    assert cache_key(runs[0]) != cache_key(resolve("zoo-ar-kjv", "kjv", settings={"batch_size": 2}, seed=1))


# -- bad values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, hint", [("auot", "did you mean 'auto'"), ("0", "positive integer"),
                                         ("-4", "positive integer"), ("big", "positive integer or 'auto'")])
def test_bad_batch_size_exits_2_before_loading(value, hint, monkeypatch, capsys, tmp_path):
    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("dlmbench.plugins.load_model", no_load)
    for argv in (["--batch-size", value], ["--set", f"batch_size={value}"]):
        assert main(["run", "-m", "zoo-ar-kjv", "-t", "kjv", "--limit", "1", "--out", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and hint in err, err


def test_check_batch_size_values():
    assert check_batch_size("AUTO", "x") == "auto" and check_batch_size("8", "x") == 8 and check_batch_size(3, "x") == 3
    for bad in (0, -1, True, 2.5, "auot", None):
        with pytest.raises(BadSetting):
            check_batch_size(bad, "x")


# -- the choice -----------------------------------------------------------------------------------------


def test_pure_choices():
    assert [ab.probe_length(n, 128) for n in (1, 3, 64, 65, 500)] == [1, 4, 64, 128, 128]
    assert ab.probe_length(500, None) == 512
    assert ab.largest_fitting(lambda b: b <= 100, 1024) == 64
    assert ab.largest_fitting(lambda b: False, 8) == 0
    assert ab.cpu_choice(10 * 2**30, 2**20) == ab.CPU_CAP  # 5 GiB / 1 MiB: capped
    assert ab.cpu_choice(2**30, 100 * 2**20) == 5  # floor(0.5 GiB / 100 MiB)
    assert ab.cpu_choice(2**20, 2**30) == 1  # never below 1


class FakeSettings(dict):
    pass


class OOMModel:
    """An adapter whose forward runs out of memory above ``budget`` rows x tokens, counting its calls."""

    family = "fake"
    max_length = 64

    def __init__(self, budget: int):
        self.budget = budget
        self.settings = {"batch_size": 8, "mc_samples": 32}
        self.calls: list[tuple[int, int]] = []

    def conditional_nll(self, requests):
        rows = min(len(requests), self.settings["batch_size"])
        length = max(len(r.context) + len(r.continuation) for r in requests)
        self.calls.append((rows, length))
        if rows * length > self.budget:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return NLLResult(nll=np.zeros(len(requests)), n_tokens=np.ones(len(requests), dtype=np.int64),
                         stderr=np.zeros(len(requests)), bound="exact")

    def sample(self, n, length, *, prefix=None, **kw):
        return self.settings["batch_size"]

    def describe(self):
        return {"batch_size": self.settings["batch_size"]}


def test_cuda_halves_on_oom_then_reads_the_cache(tmp_path):
    cache = tmp_path / "sizes.json"
    lm = OOMModel(budget=40 * 64)
    auto = ab.AutoBatchModel(lm, device="cuda:0", key_base={"model": {"name": "fake"}}, cache_path=cache)
    reqs = [ScoreRequest((1,), tuple(range(2, 2 + n)), 0) for n in (10, 50, 20)]  # longest 51 -> probe 64
    auto.conditional_nll(reqs)
    probes = lm.calls[:-1]
    assert [r for r, _ in probes] == [1024, 512, 256, 128, 64, 32] and {n for _, n in probes} == {64}
    assert lm.calls[-1] == (3, 51) and lm.settings["batch_size"] == 32 and lm.settings["mc_samples"] == 32
    assert auto.describe() == {"batch_size": 32, "batch_size_auto": {"score@64": 32}}
    assert auto.sample(4, 60, prefix=[5]) == 16  # sampling: half the scoring size of the same length
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(e["batch_size"] for e in entries.values()) == [16, 32]
    # a second load (another job, another process) reads the cache: no probe
    lm2 = OOMModel(budget=40 * 64)
    ab.AutoBatchModel(lm2, device="cuda:0", key_base={"model": {"name": "fake"}}, cache_path=cache).conditional_nll(reqs)
    assert lm2.calls == [(3, 51)] and lm2.settings["batch_size"] == 32


def test_non_oom_error_is_not_swallowed_and_corrupt_cache_is_ignored(tmp_path):
    cache = tmp_path / "sizes.json"
    cache.write_text("{not json")

    class Broken(OOMModel):
        def conditional_nll(self, requests):
            raise ValueError("a real bug")

    with pytest.raises(ValueError, match="a real bug"):
        ab.AutoBatchModel(Broken(1), device="cuda", key_base={}, cache_path=cache).conditional_nll([ScoreRequest((), (1, 2), 0)])
    lm = OOMModel(budget=10**9)
    ab.AutoBatchModel(lm, device="cuda", key_base={}, cache_path=cache).conditional_nll([ScoreRequest((), (1, 2), 0)])
    assert lm.settings["batch_size"] == ab.CUDA_START and json.loads(cache.read_text())["version"] == 1


def test_cpu_choice_from_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "available_ram", lambda: 2.0 * 2**30)
    lm = OOMModel(budget=10**9)
    lm.tokenizer = type("T", (), {"vocab_size": 50_000})()
    auto = ab.AutoBatchModel(lm, device="cpu", key_base={}, cache_path=tmp_path / "c.json")
    auto.conditional_nll([ScoreRequest((1,), tuple([2] * 63), 0)])
    per_row = 64 * 50_000 * ab.LOGIT_BYTES  # the logits floor dominates the measured peak of a fake model
    assert lm.settings["batch_size"] == int(0.5 * 2 * 2**30 // per_row) == 27
    assert lm.calls[0] == (ab.CPU_PROBE_ROWS, 64)
