"""The job-grid backends behind ``dlmbench run --backend local|slurm|ray``, ``--check`` and progress bars.

Every backend runs the same job function: finished jobs are cached (never recomputed unless --force), a
failed job is recorded under failures/ and does not stop the others, and the summary counts both. Slurm
is exercised through submitit's local executor and Ray on a local instance (both optional extras).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dlmbench.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return make_zoo(tmp_path_factory.mktemp("zoo"), llada=False)


def _run(zoo, out, *extra, task="tiny-ppl,tiny-missing"):
    return main(["--specs", str(zoo), "run", "--model", "tiny-gpt2", "--task", task, "--out", str(out), *extra])


def _nll(out: Path, task: str = "tiny-ppl") -> list[float]:
    (folder,) = [p for p in (out / "runs" / "tiny-gpt2" / task).iterdir() if not p.name.startswith(".")]  # not the lock file
    return [json.loads(x)["nll"] for x in (folder / "examples.jsonl").read_text().splitlines()]


def _failures(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "failures").rglob("*.json"))]


def test_local_backend_caches_records_failures_and_shows_progress(zoo, tmp_path, capsys):
    out = tmp_path / "res"
    assert _run(zoo, out, "--progress", "on") == 1  # a failed job: exit 1, the other job still ran
    err = capsys.readouterr().err
    assert "summary: 1 done, 0 cached, 1 failed" in err
    assert "jobs: 100%" in err and "2/2" in err  # the overall bar, on stderr
    assert "failed: tiny-gpt2 × tiny-missing" in err
    (fail,) = _failures(out)
    assert fail["task"] == "tiny-missing" and "no-such-file" in fail["error"] and "Traceback" in fail["traceback"]
    first = _nll(out)

    assert _run(zoo, out, "--progress", "off") == 1  # the finished job is cached, the failed one retried
    err = capsys.readouterr().err
    assert "summary: 0 done, 1 cached, 1 failed" in err and "jobs:" not in err
    assert _run(zoo, out, "--force", task="tiny-ppl") == 0
    assert "wrote " in capsys.readouterr().err
    assert _nll(out) == first
    # once the failed job succeeds, its failure record goes
    missing = zoo.parent / "no-such-file.jsonl"
    missing.write_text((zoo.parent / "docs.jsonl").read_text())
    try:
        assert _run(zoo, out) == 0
        assert "summary: 1 done, 1 cached, 0 failed" in capsys.readouterr().err
        assert _failures(out) == []
    finally:
        missing.unlink()


def test_check_compares_the_runs_with_a_baseline(zoo, tmp_path, capsys):
    base = tmp_path / "base"
    assert _run(zoo, base, task="tiny-ppl") == 0
    capsys.readouterr()
    # the same spec elsewhere: no regression, exit 0, the regress table on stdout
    assert _run(zoo, tmp_path / "cand", "--check", str(base), task="tiny-ppl") == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "|" in out
    # a row the baseline does not have: cannot compare, exit 2
    (folder,) = [p for p in (base / "runs" / "tiny-gpt2" / "tiny-ppl").iterdir() if not p.name.startswith(".")]
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["metric"] != "perplexity"))
    assert _run(zoo, tmp_path / "cand", "--check", str(base), task="tiny-ppl") == 2
    assert _run(zoo, tmp_path / "cand", "--check", str(tmp_path / "nowhere"), task="tiny-ppl") == 2
    assert "--check: baseline" in capsys.readouterr().err


def test_missing_extras_and_missing_slurm_say_what_to_do(zoo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    assert _run(zoo, tmp_path, "--backend", "ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --backend ray needs the ray package: pip install 'dlmbench[ray]' (or pip install ray)"]
    assert _run(zoo, tmp_path, "--backend", "slurm") == 2
    assert "pip install 'dlmbench[slurm]'" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "submitit")
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    assert _run(zoo, tmp_path, "--backend", "slurm") == 2
    assert "--slurm-cluster local" in capsys.readouterr().err


def test_slurm_backend_through_submitit_local_executor(zoo, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "res"
    assert _run(zoo, out, "--backend", "slurm", "--slurm-cluster", "local", "--slurm-time", "5") == 1
    err = capsys.readouterr().err
    assert "submitted 2 job(s)" in err and "summary: 1 done, 0 cached, 1 failed" in err
    (fail,) = _failures(out)
    assert fail["task"] == "tiny-missing" and "no-such-file" in fail["error"]  # recorded by the worker
    assert any((out / ".slurm").glob("*_log.err"))
    # the same numbers as the local backend (same job function, same run id)
    assert _run(zoo, tmp_path / "local", task="tiny-ppl") == 0
    assert _nll(out) == _nll(tmp_path / "local")
    # finished jobs are not submitted again
    capsys.readouterr()
    assert _run(zoo, out, "--backend", "slurm", "--slurm-cluster", "local", task="tiny-ppl") == 0
    err = capsys.readouterr().err
    assert "submitted" not in err and "cached" in err


def test_ray_backend_on_a_local_instance(zoo, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "res"
        assert _run(zoo, out, "--backend", "ray", task="tiny-ppl") == 0
        err = capsys.readouterr().err
        assert "submitted 1 job(s) to Ray" in err and "summary" not in err and "wrote " in err
        assert _run(zoo, tmp_path / "local", task="tiny-ppl") == 0
        assert _nll(out) == _nll(tmp_path / "local")
        capsys.readouterr()
        assert _run(zoo, out, "--backend", "ray", task="tiny-ppl") == 0  # cached: nothing submitted
        assert "submitted" not in capsys.readouterr().err
    finally:
        ray.shutdown()
