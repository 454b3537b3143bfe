"""The README's "Regression checks for a new checkpoint in CI" commands, run verbatim (issue "Trustworthy
results", item 3): on a copy of a zoo checkpoint they pass (exit 0), and with its weights perturbed they fail
(exit 1, the regressed metric named in the markdown and JUnit). ``docs/ci/github-actions.yml`` runs the same
commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Regression checks for a new checkpoint in CI"


def readme_block() -> tuple[list[str], list[str]]:
    """(documented variables, commands) of the first ```bash block under the section's heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, "the README lost its CI section"
    section = text.split(HEADING, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    variables = [line[1:].split()[0] for line in lines if line.startswith("#")]
    commands = [line for line in lines if not line.startswith("#")]
    assert commands and all(line.startswith("dlmbench ") for line in commands), commands
    return variables, commands


def test_the_workflow_runs_exactly_the_readme_commands():
    variables, commands = readme_block()
    wf = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text(encoding="utf-8"))
    steps = wf["jobs"]["regress"]["steps"]
    runs = [str(s["run"]).strip() for s in steps if "run" in s]
    assert [r for r in runs if "dlmbench " in r] == commands
    assert set(variables) <= set(wf["env"]), "every variable the README block documents is set by the workflow"
    cache = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    assert len(cache) == 1
    paths = cache[0]["with"]["path"].split()
    assert "~/.cache/huggingface" in paths and "candidate-results" in paths


def _perturb(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for k, v in state.items():
        if v.is_floating_point():
            state[k] = (v.float() + 0.05 * torch.randn(v.shape, generator=gen)).to(v.dtype)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _run_block(cwd: Path, env: dict[str, str]) -> int:
    _, commands = readme_block()
    script = "set -e\n" + "\n".join(commands) + "\n"
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


@pytest.mark.slow
def test_the_readme_ci_commands_pass_then_catch_a_perturbed_checkpoint(tmp_path):
    variables, _ = readme_block()
    assert variables == ["CANDIDATE", "BASELINE_MODEL", "BASELINE"]
    candidate = tmp_path / "checkpoints" / "candidate"
    shutil.copytree(ROOT / "dlmbench" / "cards" / "models" / "zoo" / "ar-kjv", candidate)
    # `dlmbench` on PATH runs this checkout (the console script of an installed copy may import another one)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dlmbench").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dlmbench.cli "$@"\n')
    (bin_dir / "dlmbench").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "DLMBENCH_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        # the variables the block documents, and nothing else
        "CANDIDATE": str(candidate),
        "BASELINE_MODEL": "zoo-ar-kjv",
        "BASELINE": str(ROOT / "results" / "baselines" / "zoo-smoke"),
    }
    work = tmp_path / "ci"
    work.mkdir()

    assert _run_block(work, env) == 0
    md = (work / "regress.md").read_text(encoding="utf-8")
    assert "✅ no regression" in md and "❌ regression" not in md
    suite = ET.parse(work / "regress.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0 and int(suite.get("tests")) >= 4

    # the same folder, retrained (perturbed) in place: scored again (content identity), and caught
    _perturb(candidate)
    assert _run_block(work, env) == 1
    md = (work / "regress.md").read_text(encoding="utf-8")
    regressed = [line for line in md.splitlines() if "❌ regression" in line]
    assert any("| nll_per_token ↓ |" in line for line in regressed), md
    suite = ET.parse(work / "regress.xml").getroot().find("testsuite")
    failed = {tc.get("name") for tc in suite.findall("testcase") if tc.find("failure") is not None}
    assert "nll_per_token" in failed and int(suite.get("errors")) == 0
    runs = [p for p in (work / "candidate-results" / "runs" / "zoo-ar-kjv" / "kjv").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 2  # the unchanged and the perturbed checkpoint (hidden entries: job locks)
