"""Data-parallel jobs (torchrun, gloo on CPU) and per-request randomness.

Ground truth is a single process: a job launched with ``torchrun --nproc_per_node 2`` must write the
same per-example values as the same job run in one process, for an AR model (exact) and a diffusion
model (Monte Carlo bound, seeded per request). Sharding is also checked in-process for 1, 2 and 3
workers and for several batch sizes.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlmbench.families import load_model
from dlmbench.interface import GreedyResult, LanguageModel, NLLResult, ScoreRequest
from dlmbench.api import execute, resolve
from dlmbench.registry import Registry
from dlmbench.runner import distributed as dp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402


# The forward pass is float32: a request's bound may move in the last float32 digits when the batch it
# shares a forward pass with changes. The Monte Carlo draws themselves must be identical (a change of
# seed moves the values by percents, checked below), so "the same" means equal to float32 tolerance.
NLL_RTOL = 1e-6
SE_RTOL = 1e-5


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    # batch size 1 for the AR model: its float32 forward is batch-composition invariant only to ~1e-8
    # relative, and sharding changes the batches; one request per forward makes it bitwise comparable
    return make_zoo(tmp_path_factory.mktemp("zoo"), gpt2_batch_size=1)


def _examples(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "examples.jsonl").read_text().splitlines() if x.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- pure pieces ----------------------------------------------------------------------------------------


def test_shards_partition_the_requests_deterministically():
    for n in (0, 1, 5, 8, 13):
        for w in (1, 2, 3, 4):
            parts = [dp.shard_indices(n, r, w) for r in range(w)]
            assert sorted(i for p in parts for i in p) == list(range(n))
            assert all(p == sorted(p) for p in parts)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert dp.dist_info({"WORLD_SIZE": "1"}) is None
    assert dp.dist_info({}) is None
    assert dp.dist_info({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == dp.DistInfo(3, 4, 1)
    assert dp.rank_device("cuda", dp.DistInfo(3, 4, 1)) == "cuda:1"
    assert dp.rank_device("cuda:0", dp.DistInfo(3, 4, 1)) == "cuda:0"
    assert dp.rank_device("cuda", None) == "cuda"


def test_shard_files_round_trip_and_merge(tmp_path):
    res = NLLResult(
        nll=np.array([1.0 / 3, 2.5e-17, 7.0]),
        n_tokens=np.array([3, 1, 9]),
        stderr=np.array([0.1, np.nan, 0.0]),
        bound="upper",
        mc_samples=4,
        settings={"t_sampling": "stratified"},
    )
    a = dp.encode_nll([0, 2, 4], res)
    b = dp.encode_nll([1, 3], NLLResult(np.array([5.0, 6.0]), np.array([1, 2]), np.array([0.5, 0.25]), "upper", 4, {"t_sampling": "stratified"}))
    dp.write_shard(tmp_path / "a.jsonl", a)
    dp.write_shard(tmp_path / "b.jsonl", b)
    assert not list(tmp_path.glob(".*"))  # no temporaries left
    merged = dp.merge_shards([dp.read_shard(tmp_path / "a.jsonl"), dp.read_shard(tmp_path / "b.jsonl")], 5)
    np.testing.assert_array_equal(merged.nll, [1.0 / 3, 5.0, 2.5e-17, 6.0, 7.0])  # exact float round trip
    np.testing.assert_array_equal(merged.n_tokens, [3, 1, 1, 2, 9])
    assert math.isnan(merged.stderr[2]) and merged.stderr[1] == 0.5
    assert (merged.bound, merged.mc_samples, merged.settings) == ("upper", 4, {"t_sampling": "stratified"})
    g = dp.merge_shards([dp.encode_greedy([1], GreedyResult(np.array([True]), "ar_argmax")), dp.encode_greedy([0], GreedyResult(np.array([False]), "ar_argmax"))], 2)
    assert g.matches.tolist() == [False, True] and g.method == "ar_argmax"
    with pytest.raises(dp.ShardError):
        dp.merge_shards([a], 5)  # a shard missing


class _FakeCtx:
    """Stands in for the process group: the other ranks' answers are given."""

    def __init__(self, rank, world, others):
        self.rank, self.world_size, self.others = rank, world, others

    def gather(self, obj, tag=""):
        out = list(self.others)
        out.insert(self.rank, obj)
        return out


class _Echo:
    family, bound, max_length = "ar", "exact", None

    def __init__(self):
        self.seen = []

    def conditional_nll(self, requests):
        self.seen.append([r.seed for r in requests])
        return NLLResult(np.array([float(r.seed) for r in requests]), np.ones(len(requests), int), np.zeros(len(requests)), "exact")


def test_sharded_model_scores_only_its_shard_and_reports_other_ranks_failures(tmp_path):
    reqs = [ScoreRequest((), (1,), seed=i) for i in range(5)]
    other = {"meta": {"kind": "nll", "bound": "exact", "mc_samples": 1, "settings": {}}, "rows": [{"index": i, "nll": float(i), "n_tokens": 1, "stderr": 0.0} for i in (0, 2, 4)]}
    inner = _Echo()
    m = dp.ShardedModel(inner, _FakeCtx(1, 2, [(None, other)]), tmp_path)
    assert isinstance(m, LanguageModel) and m.family == "ar"
    out = m.conditional_nll(reqs)
    assert inner.seen == [[1, 3]]
    assert out.nll.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert (tmp_path / "call-000-conditional_nll.shard-1-of-2.jsonl").is_file()
    # a relaunch reuses the finished shard file instead of recomputing it
    again = dp.ShardedModel(inner, _FakeCtx(1, 2, [(None, other)]), tmp_path).conditional_nll(reqs)
    assert inner.seen == [[1, 3]] and again.nll.tolist() == out.nll.tolist()
    # another rank's failure is raised here too, at the same call
    with pytest.raises(dp.ShardError, match="rank 0 of 2 failed: CUDA out of memory"):
        dp.ShardedModel(inner, _FakeCtx(1, 2, [("CUDA out of memory", None)]), tmp_path / "x").conditional_nll(reqs)


# -- per-request randomness: batch size and worker count do not change a diffusion bound ------------------


def test_diffusion_job_is_the_same_with_another_batch_size(zoo, tmp_path):
    reg = Registry.default([zoo])
    run = resolve("tiny-llada", "tiny-ppl", registry=reg)
    a = execute(run, batch_size=1, out=tmp_path / "a", distributed=False)
    b = execute(run, batch_size=3, out=tmp_path / "b", distributed=False)
    assert a.run_id == b.run_id  # the batch size is not part of the spec: it must not change numbers
    ea, eb = _examples(a.folder), _examples(b.folder)
    assert all(e["stderr"] > 0 for e in ea)  # Monte Carlo draws matter here
    np.testing.assert_allclose([e["nll"] for e in ea], [e["nll"] for e in eb], rtol=NLL_RTOL)
    np.testing.assert_allclose([e["stderr"] for e in ea], [e["stderr"] for e in eb], rtol=SE_RTOL)
    assert [r.value for r in a.rows] == pytest.approx([r.value for r in b.rows], rel=NLL_RTOL)


def test_diffusion_values_do_not_depend_on_worker_count(zoo):
    from dlmbench.data.pipeline import build_requests
    from dlmbench.seeding import request_seed

    reg = Registry.default([zoo])
    run = resolve("tiny-llada", "tiny-ppl", registry=reg)
    lm = load_model(run.model, batch_size=2)
    packed = build_requests(run.task, lm.tokenizer, max_length=lm.max_length, limit=None)
    reqs = [ScoreRequest(p.context, p.continuation, request_seed(run.seed, run.task.name, i)) for i, p in enumerate(packed)]
    ref = lm.conditional_nll(reqs)
    for world in (2, 3):  # each "rank" scores its shard alone; merged, the values are the single-process ones
        shards = []
        for rank in range(world):
            idx = dp.shard_indices(len(reqs), rank, world)
            shards.append(dp.encode_nll(idx, lm.conditional_nll([reqs[i] for i in idx])))
        merged = dp.merge_shards(shards, len(reqs))
        np.testing.assert_allclose(merged.nll, ref.nll, rtol=NLL_RTOL)
        np.testing.assert_allclose(merged.stderr, ref.stderr, rtol=SE_RTOL)
    # not vacuous: other seeds give other draws
    two = [ScoreRequest(r.context, r.continuation, r.seed + 1) for r in reqs[:2]]
    assert (np.abs(lm.conditional_nll(two).nll - ref.nll[:2]) / ref.nll[:2]).min() > 1e3 * NLL_RTOL


# -- the real thing: torchrun with two CPU processes on gloo ----------------------------------------------


def test_torchrun_two_processes_match_one_process(zoo, tmp_path):
    out = tmp_path / "dp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DLMBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        "-m", "dlmbench.cli", "--specs", str(zoo), "run", "--model", "tiny-gpt2,tiny-llada", "--task", "tiny-ppl", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "summary: 2 done, 0 cached, 0 failed" in proc.stderr
    assert proc.stdout.count("tiny-llada  tiny-ppl") == 4  # rank 0 alone prints the table
    assert not (out / ".shards").exists()  # shards merged and removed

    reg = Registry.default([zoo])
    for model in ("tiny-gpt2", "tiny-llada"):
        run = resolve(model, "tiny-ppl", registry=reg)
        single = execute(run, out=tmp_path / "single", distributed=False)
        folder = out / "runs" / model / "tiny-ppl" / single.run_id
        assert (folder / "metrics.jsonl").is_file(), "same spec, same run id"
        spec = (folder / "spec.yaml").read_text()
        assert "world_size: 2" in spec
        got, want = _examples(folder), _examples(single.folder)
        assert [e["index"] for e in got] == list(range(len(want)))
        if model == "tiny-gpt2":
            assert [e["nll"] for e in got] == [e["nll"] for e in want]  # exact
        else:
            np.testing.assert_allclose([e["nll"] for e in got], [e["nll"] for e in want], rtol=NLL_RTOL)
            np.testing.assert_allclose([e["stderr"] for e in got], [e["stderr"] for e in want], rtol=SE_RTOL)
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["metric"] for r in rows] == [r.metric for r in single.rows]
        np.testing.assert_allclose([r["value"] for r in rows], [r.value for r in single.rows], rtol=NLL_RTOL)
        assert [r["settings"] for r in rows] == [json.loads(json.dumps(r.settings)) for r in single.rows]
