"""One job path: the CLI, ``api.evaluate``, ``api.run_suite`` and the local backend resolve the same job to
the same run folder, and ask the store alone whether it is finished.

Ground truth for "the store decided": a run folder planted by hand (:func:`dlmbench.store.write_run`, with a
sentinel value no model computes) is read back, never recomputed, by every caller; a half-written
temporary folder next to it is ignored by all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dlmbench import api, store
from dlmbench.cli import main
from dlmbench.store import MetricRow
from dlmbench.runner.resolve import spec_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402

SENTINEL = 123456.75


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return make_zoo(tmp_path_factory.mktemp("zoo"), llada=False)


def _plant(folder: Path, run_id: str) -> None:
    row = MetricRow(
        run_id=run_id, model="tiny-gpt2", family="ar", checkpoint="local:x", task="tiny-ppl", metric="perplexity",
        value=SENTINEL, stderr=0.0, n=1, bound="exact", higher_is_better=False, seed=0, settings={}, dataset="d",
        split=None, dlmbench_version="0", git_commit="x", torch_version="x", versions={}, device="cpu",
        started_at="now", duration_s=0.0,
    )
    store.write_run(folder, {"planted": True}, [row])


def test_is_finished_is_decided_by_the_store(tmp_path):
    folder = store.run_folder(tmp_path, "m/x", "t", "abc")
    assert folder.parent.name == "t" and folder.parent.parent.name == "m_x"
    assert not store.is_finished(folder)
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("{}")
    assert not store.is_finished(folder)  # a folder without its metrics is not a finished run
    _plant(folder, "abc")
    assert store.is_finished(folder)
    tmp = folder.parent / ".abc.tmp-123"  # what a killed write leaves behind
    tmp.mkdir()
    (tmp / "metrics.jsonl").write_text("{}\n")
    assert not store.is_finished(tmp)
    assert store.run_folders(tmp_path) == [folder]


def test_every_caller_reads_a_finished_run_back_from_the_store(specs, tmp_path, capsys):
    out = tmp_path / "res"
    (job,) = api.plan_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-ppl"]}, out=out, specs=[specs])
    run = api.resolve("tiny-gpt2", "tiny-ppl", specs=[specs])
    assert job.run_id == api.cache_key(run)  # the CLI's grid and the API resolve the same job
    _plant(job.folder, job.run_id)

    # the Python API
    rec = api.evaluate("tiny-gpt2", "tiny-ppl", specs=[specs], out=out)
    assert rec.cached and [r.value for r in rec.rows] == [SENTINEL]
    done = api.run_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-ppl"]}, out=out, specs=[specs])
    assert done.summary.line() == "0 done, 1 cached, 0 failed" and [r.value for r in done.rows()] == [SENTINEL]
    # the CLI: --dry-run, then the run itself (local backend)
    argv = ["--specs", str(specs), "run", "--model", "tiny-gpt2", "--task", "tiny-ppl", "--out", str(out)]
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"cached  {job.run_id}")
    assert main([*argv, "--json"]) == 0
    cap = capsys.readouterr()
    assert [json.loads(x)["value"] for x in cap.out.splitlines()] == [SENTINEL] and "(cached" in cap.err

    # --force recomputes through the same path and replaces the planted folder
    assert main([*argv, "--dry-run", "--force"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"to run  {job.run_id}")
    forced = api.evaluate("tiny-gpt2", "tiny-ppl", specs=[specs], out=out, force=True)
    assert not forced.cached and forced.folder == job.folder
    assert SENTINEL not in [r.value for r in store.read_run(job.folder).rows]


def test_run_suite_and_evaluate_compute_the_same_rows(specs, tmp_path):
    a = api.evaluate("tiny-gpt2", "tiny-ppl", specs=[specs], out=tmp_path / "a", limit=4)
    done = api.run_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-ppl"]}, out=tmp_path / "b", specs=[specs], limit=4)
    assert done.summary.line() == "1 done, 0 cached, 0 failed"
    b = done.rows()
    assert [(r.run_id, r.metric, r.value, r.settings) for r in a.rows] == [(r.run_id, r.metric, r.value, r.settings) for r in b]
    # the jobs plan_suite returns can be handed to run_suite as they are (what the CLI does)
    jobs = api.plan_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-ppl"]}, out=tmp_path / "b", specs=[specs], limit=4)
    assert api.run_suite(jobs, out=tmp_path / "b").summary.line() == "0 done, 1 cached, 0 failed"


def test_a_failed_job_is_recorded_in_the_store_and_cleared_on_success(specs, tmp_path):
    out = tmp_path / "res"
    done = api.run_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-missing"]}, out=out, specs=[specs])
    ((job, msg),) = done.summary.failed
    path = store.failure_path(out, "tiny-gpt2", "tiny-missing", spec_key(job.run))  # named by the spec, not content
    assert path == job.failure_path(out) and path.exists()
    assert json.loads(path.read_text())["run_id"] == job.run_id and json.loads(path.read_text())["error"].endswith(msg.split(": ", 1)[-1])
    store.clear_failure(path)
    assert not path.exists()


def test_a_mistake_in_the_grid_fails_before_any_job_runs(specs, tmp_path):
    from dlmbench.errors import DlmbenchError

    with pytest.raises(DlmbenchError, match="did you mean"):
        api.run_suite({"models": ["tiny-gpt2"], "tasks": ["tiny-ppl", "tiny-pll"]}, out=tmp_path, specs=[specs])
    assert not (tmp_path / "runs").exists()


def test_suites_ship_with_the_package_and_are_found_by_name(tmp_path, monkeypatch, capsys):
    """`--suite NAME` works from any folder (the suites are package data); a typo gets "did you mean", exit 2."""
    from dlmbench.runner.suite import find_suite, packaged_suites

    monkeypatch.chdir(tmp_path)  # not a clone: no suites/ folder here
    shipped = packaged_suites()
    assert {"zoo", "zoo-smoke", "zoo-speed-quality", "zoo-findings-cd3", "zoo-findings-reversal"} <= set(shipped)
    assert find_suite("zoo-smoke") == shipped["zoo-smoke"] == find_suite("suites/zoo-smoke.yaml")
    mine = tmp_path / "zoo-smoke.yaml"  # a file of your own wins over a shipped name
    mine.write_text("name: mine\nmodels: [zoo-ar-kjv]\ntasks: [kjv]\n")
    assert find_suite(str(mine)) == mine
    assert len(api.plan_suite("zoo-smoke", out=tmp_path / "r")) == 7  # the KJV zoo models but Plaid, on kjv
    assert main(["run", "--suite", "zoo-smok", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'zoo-smoke'" in err
    assert main(["list", "suites"]) == 0
    assert "zoo-speed-quality" in capsys.readouterr().out
