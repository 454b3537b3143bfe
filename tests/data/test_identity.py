"""Content identity (issue "Trustworthy results", item 1): a job's key covers the bytes of its checkpoint,
tokenizer and data, not their paths; digests are cached by (path, size, mtime)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dlmbench import api
from dlmbench.data import identity
from dlmbench.registry import Registry
from dlmbench.runner.resolve import cache_key, resolve
from dlmbench.specs import CheckpointRef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty digest cache under tmp_path, and zeroed counters."""
    monkeypatch.setenv("DLMBENCH_CACHE", str(tmp_path / "cache"))
    identity._CACHE.update(path=None, entries=None)
    for k in identity.HASH_STATS:
        identity.HASH_STATS[k] = 0
    yield tmp_path / "cache" / "hashes.json"
    identity._CACHE.update(path=None, entries=None)


@pytest.fixture
def zoo(tmp_path, fresh_cache):
    specs = make_zoo(tmp_path / "zoo", llada=False)
    return specs, tmp_path / "zoo" / "gpt2" / "model"


def _evaluate(specs, out):
    return api.evaluate("tiny-gpt2", "tiny-ppl", out=out, specs=[specs])


def _perturb_weights(folder: Path, scale: float = 0.5) -> None:
    path = folder / "model.safetensors"
    state = load_file(str(path))
    gen = torch.Generator().manual_seed(1)
    state = {k: (v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype)) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(path), metadata={"format": "pt"})


def test_overwriting_weights_in_place_is_a_new_job_with_new_numbers(zoo, tmp_path):
    specs, folder = zoo
    out = tmp_path / "results"
    first = _evaluate(specs, out)
    assert not first.cached
    _perturb_weights(folder)
    second = _evaluate(specs, out)
    assert second.run_id != first.run_id, "the old run was read back for new weights"
    assert not second.cached
    v1 = {r.metric: r.value for r in first.rows}
    v2 = {r.metric: r.value for r in second.rows}
    assert v1["nll_per_token"] != pytest.approx(v2["nll_per_token"], rel=1e-3)
    # every row records the checkpoint's content digest, and it changed
    s1, s2 = first.rows[0].settings["identity"], second.rows[0].settings["identity"]
    assert s1["checkpoint_sha256"] != s2["checkpoint_sha256"]
    assert s1["data_sha256"] == s2["data_sha256"] and len(s1["data_sha256"]) == 64


def test_touching_files_keeps_the_job_and_the_digest_cache_is_hit(zoo, tmp_path, fresh_cache):
    specs, folder = zoo
    out = tmp_path / "results"
    first = _evaluate(specs, out)
    hashed = identity.HASH_STATS["files_hashed"]
    assert hashed >= 3 and fresh_cache.is_file()  # weights, config, tokenizer files, data

    # a second process: the digest cache is read back from disk, nothing is rehashed
    identity._CACHE.update(path=None, entries=None)
    run = resolve("tiny-gpt2", "tiny-ppl", registry=Registry.default([specs]))
    assert cache_key(run) == first.run_id
    assert identity.HASH_STATS["files_hashed"] == hashed
    assert identity.HASH_STATS["cache_hits"] > 0

    # new mtimes, same bytes: the files are rehashed once (their cache entries no longer match) but the job is
    # the same and is read back, not recomputed
    for p in folder.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = _evaluate(specs, out)
    assert again.cached and again.run_id == first.run_id
    assert identity.HASH_STATS["files_hashed"] > hashed
    rehashed = identity.HASH_STATS["files_hashed"]
    _evaluate(specs, out)
    assert identity.HASH_STATS["files_hashed"] == rehashed  # and now served from the cache


def test_a_tokenizer_file_change_changes_the_identity(zoo):
    _, folder = zoo
    ref = CheckpointRef("local", str(folder))
    before = identity.checkpoint_identity(ref).sha256
    tok = folder / "tokenizer.json"
    data = json.loads(tok.read_text())
    data["added_tokens"] = [*data.get("added_tokens", []), {**data["added_tokens"][0], "id": 9999, "content": "<x>"}]
    tok.write_text(json.dumps(data))
    after = identity.checkpoint_identity(ref).sha256
    assert before and after and before != after
    # a file that is neither weights nor config/tokenizer (a training log) does not count
    (folder / "train.log").write_text("step 1\n")
    assert identity.checkpoint_identity(ref).sha256 == after


def test_a_corrupt_digest_cache_is_ignored(zoo, fresh_cache):
    _, folder = zoo
    fresh_cache.parent.mkdir(parents=True, exist_ok=True)
    fresh_cache.write_text("{not json")
    identity._CACHE.update(path=None, entries=None)
    digest = identity.checkpoint_identity(CheckpointRef("local", str(folder))).sha256
    assert digest and len(digest) == 64
    assert json.loads(fresh_cache.read_text())["files"]  # rewritten, valid


def test_package_cards_carry_no_machine_path():
    """The zoo's cards name their checkpoint relative to the package, in the key and in the rows."""
    reg = Registry.default()
    spec = reg.model("zoo-llada-kjv")
    assert spec.checkpoint.describe() == "package:dlmbench/cards/models/zoo/llada-kjv"
    assert spec.tokenizer.describe() == "package:dlmbench/cards/models/zoo/llada-kjv/tokenizer"
    run = resolve("zoo-ar-kjv", "kjv", limit=3, registry=reg)
    assert "/work" not in json.dumps(run.to_dict()) and str(Path.cwd()) not in json.dumps(run.to_dict())
    ident = identity.job_identity(run.model.checkpoint, run.model.tokenizer, run.task.dataset)
    assert len(ident["checkpoint"]["sha256"]) == 64 and len(ident["data"]["sha256"]) == 64


def test_hub_checkpoints_are_keyed_by_the_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    identity._HUB_COMMITS.clear()
    repo = tmp_path / "hub" / "models--org--tiny"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    ref = CheckpointRef("hub", "org/tiny")
    assert identity.checkpoint_identity(ref).key() == {"commit": commit}
    prov = identity.provenance_identity(ref, None, api.resolve("zoo-ar-kjv", "kjv").task.dataset)
    assert prov["checkpoint_commit"] == commit and len(prov["checkpoint_sha256"]) == 64
    identity._HUB_COMMITS.clear()


def test_retraining_the_genppl_evaluator_in_place_is_a_new_job(zoo, tmp_path):
    """gen-PPL scores samples with a second model: its weights are part of the job key too."""
    import shutil

    import yaml

    specs, folder = zoo
    evaluator = tmp_path / "evaluator"
    shutil.copytree(folder, evaluator)
    card = yaml.safe_load((specs / "models" / "tiny-gpt2.yaml").read_text())
    (specs / "models" / "tiny-evaluator.yaml").write_text(yaml.safe_dump({**card, "name": "tiny-evaluator", "checkpoint": {"local": str(evaluator)}}))
    task = yaml.safe_load((specs / "tasks" / "tiny-ppl.yaml").read_text())
    task = {"name": "tiny-genppl", "type": "genppl", "dataset": task["dataset"],
            "settings": {"eval_model": "tiny-evaluator", "n_samples": 2, "length": 8}}
    (specs / "tasks" / "tiny-genppl.yaml").write_text(yaml.safe_dump(task))

    def key():
        (job,) = api.plan_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-genppl"]}, out=tmp_path / "r", specs=[specs])
        return job.run_id

    before = key()
    assert key() == before  # stable
    _perturb_weights(evaluator)
    assert key() != before, "a retrained evaluator would read back the old gen-PPL"


def test_hub_datasets_are_keyed_by_their_commit(tmp_path, monkeypatch):
    """An HF dataset's job key covers its hub commit (the cache's, offline), so a new revision of the dataset is
    a new job, and the row records it as data_revision (before: not part of the key at all)."""
    from huggingface_hub import constants

    from dlmbench.specs import DatasetSpec

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    identity._HUB_COMMITS.clear()
    ds = DatasetSpec.from_dict("task t", {"source": "hf", "path": "org/texts", "split": "test"})
    assert identity.data_identity(ds).key() == {"commit": None}  # not cached, hub unreachable: unknown
    identity._HUB_COMMITS.clear()
    refs = tmp_path / "hub" / "datasets--org--texts" / "refs"
    refs.mkdir(parents=True)
    keys = []
    for commit in ("b" * 40, "c" * 40):
        (refs / "main").write_text(commit)
        identity._HUB_COMMITS.clear()
        keys.append(identity.data_identity(ds).key())
        assert identity.data_provenance(ds) == {"data_revision": commit}
    assert keys == [{"commit": "b" * 40}, {"commit": "c" * 40}]
    identity._HUB_COMMITS.clear()
