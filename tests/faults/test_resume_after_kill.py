"""A suite killed with SIGKILL mid-run loses no finished job, leaves nothing that looks complete but is not,
and a second invocation of the same command finishes the rest without recomputing what was done.

Ground truth: the run folders present right after the kill (each must load as a complete run) and a
single uninterrupted run of the same suite in a fresh results root (values must be identical)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dlmbench.store import load_table

from tiny_zoo import make_zoo

SEEDS = list(range(8))


def _cli(specs: Path, suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dlmbench.cli", "--specs", str(specs), "run", "--suite", str(suite), "--out", str(out)]


def _finished(out: Path) -> list[Path]:
    """Run folders in place (a job writes into a hidden temporary folder and renames it when complete)."""
    if not (out / "runs").exists():
        return []
    return sorted(p.parent for p in (out / "runs").rglob("metrics.jsonl") if not p.parent.name.startswith("."))


@pytest.mark.slow
def test_sigkill_mid_suite_then_resume(tmp_path):
    specs = make_zoo(tmp_path / "zoo", gpt2=False, mc_samples=8)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "kill", "models": ["tiny-llada"], "tasks": ["tiny-ppl"], "seeds": SEEDS}))
    out = tmp_path / "results"
    env = {**os.environ, "DLMBENCH_NO_PROGRESS": "1"}
    proc = subprocess.Popen(_cli(specs, suite, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while not _finished(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _finished(out)
    assert before, "no job finished before the kill (or within 180 s)"
    # everything that looks finished is complete and readable
    table = load_table(out)
    assert set(table["run_id"]) == {p.name for p in before}

    done = subprocess.run(_cli(specs, suite, out), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _finished(out)
    assert len(after) == len(SEEDS)
    # the kill landed mid-suite (each job takes far longer than the 10 ms polling interval), and the jobs
    # finished before it were read back, not recomputed
    assert len(before) < len(SEEDS)
    assert f"{len(SEEDS) - len(before)} done, {len(before)} cached, 0 failed" in done.stderr + done.stdout, done.stderr[-1000:]

    fresh = tmp_path / "fresh"
    single = subprocess.run(_cli(specs, suite, fresh), env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    print(f"killed after {len(before)} of {len(SEEDS)} jobs")
    key = ["seed", "metric"]
    a = load_table(out).sort_values(key)[key + ["value", "stderr"]].reset_index(drop=True)
    b = load_table(fresh).sort_values(key)[key + ["value", "stderr"]].reset_index(drop=True)
    assert a.equals(b)
    json.dumps(a.to_dict())  # plain values
