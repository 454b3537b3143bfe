"""Every command in the README is run by a test, verbatim, or says here why it is not (issue "A leaderboard a
researcher would publish", item 5: "the README's examples all run as written, with the offline ones marked,
and a test runs every offline example").

The README's fenced ``bash`` and ``python`` blocks are read in order. Each command (continuation lines joined)
is either run here, as written, in a scratch folder (outside the repository: suites are found by name) where
``dlmbench`` is this checkout's CLI and ``.venv`` is the repository's, and must exit 0; or it is listed in :data:`NOT_RUN` with the
reason (needs the network, a GPU, a cluster, an hour; or another test runs it). A README command that is in
neither fails :func:`test_every_readme_command_is_run_or_accounted_for`, so a new example cannot go untested
without a written reason.

``bash scripts/setup.sh && X`` is run as ``X``: the setup half is what made the environment this test runs in
(``.ci/run`` runs ``scripts/setup.sh`` first), and re-running it would reinstall the package from the scratch
folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = "bash scripts/setup.sh && "

#: README commands this test does not run, and why (exact text, trailing comment removed)
NOT_RUN: dict[str, str] = {
    "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python -m pytest -q":
        "the test command itself: .ci/run runs it verbatim (running it here would recurse)",
    'HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python -m pytest -q -m "not slow"':
        "the fast test loop: a subset of the test command (running it here would recurse)",
    "dlmbench run --model gpt2 --task wikitext2-sliding --set stride=512 --device cuda:0":
        "needs a GPU and the Hugging Face hub (gpt2 weights, wikitext)",
    "dlmbench run --model gpt2,gpt2-medium --task ptb,wikitext2":
        "needs the Hugging Face hub (gpt2 weights, PTB and WikiText data)",
    "torchrun --nproc_per_node 4 -m dlmbench.cli run --model llada --task lambada --device cuda":
        "needs 4 GPUs and the hub (LLaDA-8B); torchrun's data-parallel path is tested in tests/runner/test_distributed.py",
    "dlmbench run --suite zoo-smoke --backend slurm --device cuda --slurm-partition gpu --slurm-time 120":
        "needs a Slurm cluster with GPUs; the Slurm backend is tested through submitit's local executor in tests/runner/test_backends.py",
    "dlmbench run --suite zoo-smoke --backend ray --device cuda":
        "needs Ray and GPUs; tests/runner/test_backends.py runs the Ray backend on a local instance where ray is "
        "installed (it is an optional extra, not in the test extra)",
    "dlmbench run --model CARD --checkpoint DIR --task kjv --check BASELINE":
        "a template; its concrete form (the CI section's block) is run verbatim by tests/test_readme_ci_workflow.py",
    "dlmbench lm-eval --model dlmbench --model_args model=smollm2-135m,seed=0 --tasks arc_easy --limit 20":
        "needs the Hugging Face hub (ARC data)",
    "dlmbench --specs my_cards lm-eval run --model dlmbench --model_args model=my-llada,mc_samples=64 "
    "--tasks my_task --include_path my_lm_eval_tasks --output_path out --log_samples":
        "a template with your own cards and lm-eval tasks",
    "python -m dlmbench.integrations.lmeval --model dlmbench --model_args model=mdlm-owt --tasks lambada_openai":
        "needs the Hugging Face hub (MDLM-OWT weights, LAMBADA data)",
    'dlmbench run --model "$BASELINE_MODEL" --checkpoint "$CANDIDATE" --task kjv --limit 100 --seed 0 '
    '--out candidate-results --progress off --check "$BASELINE" --markdown regress.md --junit regress.xml':
        "run verbatim, twice (unchanged and perturbed weights), by tests/test_readme_ci_workflow.py",
    "dlmbench zoo build":
        "retrains every zoo model (about 55 minutes); tests/zoo/test_zoo.py trains each family for a few steps",
}

#: commands run with the repository as the working folder (they read its files, write nothing)
IN_REPO = {".venv/bin/ruff check . && .venv/bin/lint-imports"}


def _strip_comment(line: str) -> str:
    """``cmd   # comment`` → ``cmd`` (a ``#`` inside quotes, or not preceded by a space, is kept)."""
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            break
        out.append(ch)
    return "".join(out).strip()


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the README, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def bash_commands(block: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [c for c in (_strip_comment(line) for line in joined.splitlines()) if c]


def runnable(command: str) -> str:
    return command[len(SETUP):] if command.startswith(SETUP) else command


def test_every_readme_command_is_run_or_accounted_for():
    blocks = readme_blocks()
    assert blocks and all(lang in ("bash", "python") for lang, _ in blocks), [lang for lang, _ in blocks]
    commands = [runnable(c) for lang, b in blocks if lang == "bash" for c in bash_commands(b)]
    stale = set(NOT_RUN) - set(commands)
    assert not stale, f"NOT_RUN lists commands the README no longer has: {sorted(stale)}"
    for reason in NOT_RUN.values():
        assert reason.strip(), "every command not run says why"


def _environment(scratch: Path) -> dict[str, str]:
    """``dlmbench`` and ``python`` on PATH are this interpreter with this checkout; the hubs are off."""
    shims = scratch / ".shims"
    shims.mkdir()
    (shims / "dlmbench").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dlmbench.cli "$@"\n')
    (shims / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for f in shims.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DLMBENCH_NO_PROGRESS"}
    env.update(PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    return env


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    """Run every README command not in :data:`NOT_RUN`, in README order, in one scratch folder (so later
    commands see what earlier ones wrote, as a reader following along would); each must exit 0."""
    scratch = tmp_path / "reader"
    scratch.mkdir()
    venv = Path(sys.prefix)
    (scratch / ".venv").symlink_to(venv if (venv / "bin" / "python").exists() else ROOT / ".venv")
    env = _environment(scratch)
    ran = []
    for lang, block in readme_blocks():
        if lang == "python":
            steps = [("python", block)]
        else:
            steps = [("bash", runnable(c)) for c in bash_commands(block)]
        for kind, command in steps:
            if kind == "bash" and command in NOT_RUN:
                continue
            cwd = ROOT if command in IN_REPO else scratch
            argv = [sys.executable, "-c", command] if kind == "python" else ["bash", "-c", command]
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
            assert proc.returncode == 0, f"README {kind} command failed (exit {proc.returncode}): {command}\n{proc.stderr[-3000:]}"
            ran.append(command)
    assert len(ran) >= 20, ran
    # what the commands left behind is what the README says they leave
    assert (scratch / "table.csv").read_text().startswith("run_id,")
    assert (scratch / "table.parquet").stat().st_size > 0
    assert (scratch / "results" / "leaderboard" / "leaderboard.html").is_file()


def test_every_test_the_readme_cites_exists():
    """"What we guarantee" names the test behind each promise: each named file and test function exists
    (``tests/x.py::test_a``, then ``::test_b`` for another test of the same file)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    current, cited = None, []
    for m in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", text):
        if m.group(1):
            current = m.group(1)
            assert (ROOT / current).is_file(), f"README cites {current}, which does not exist"
        if m.group(2):
            assert current, f"README cites ::{m.group(2)} before naming its file"
            cited.append((current, m.group(2)))
    assert len(cited) >= 15, cited
    for path, name in cited:
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M), f"README cites {path}::{name}, which does not exist"
