"""Every user mistake exits non-zero with exactly one line on stderr and no traceback."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dlmbench.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toy_settings_family as toy  # noqa: E402


def _one_line_error(capsys, argv, code=2):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert err.count("\n") == 0, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--model", "gtp2", "--task", "kjv"], "did you mean 'gpt2'"),
        (["run", "--model", "smollm2-135m", "--task", "kvj"], "did you mean 'kjv'"),
        (["show", "model", "smolm2-135m"], "did you mean 'smollm2-135m'"),
        (["show", "task", "wikitxt2"], "did you mean 'wikitext2'"),
        (["run", "--model", "gpt2", "--task", "kjv", "--set", "stride"], "KEY=VALUE"),
        (["run", "--model", "gpt2", "--task", "kjv", "--limit", "0"], "--limit"),
        (["run", "--model", "gpt2", "--task", "kjv", "--batch-size", "-1"], "--batch-size"),
        (["run", "--model", "gpt2", "--task", "kjv-lastword", "--set", "task.strip_punctuaton=1"], "did you mean 'strip_punctuation'"),
        (["run", "--task", "kjv"], "give --model and --task"),
        (["run", "--suite", "/nonexistent/suite.yaml"], "does not exist"),
        (["results", "--out", "/nonexistent/results"], "does not exist"),
        (["--specs", "/nonexistent/specs", "list", "models"], "does not exist"),
    ],
)
def test_user_mistakes_are_one_line(capsys, argv, expected):
    assert expected in _one_line_error(capsys, argv)


def test_argparse_mistakes_are_one_line(capsys):
    for argv in (["bogus"], ["run", "--task", "kjv", "--model"], ["run", "--model", "gpt2", "--task", "kjv", "--limit", "x"],
                 ["run", "--model", "gpt2", "--task", "kjv", "--seed", "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and err.count("\n") == 0, err
    assert main(["--version"]) == 0


def test_bad_card_in_user_folder_is_one_line(capsys, tmp_path):
    (tmp_path / "m.yaml").write_text(textwrap.dedent("name: x\nfamily: ar\ncheckpoint: {hub: a, local: b}\n"))
    err = _one_line_error(capsys, ["--specs", str(tmp_path), "list", "models"])
    assert "exactly one of hub / local / package" in err


def test_console_script_reports_in_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dlmbench.cli", "run", "--model", "nope", "--task", "kjv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model 'nope'")
    assert proc.stderr.strip().count("\n") == 0 and proc.stdout == ""


# -- settings mistakes: exit 2, one line, before any model loads, nothing written ---------------------------
# The model is a toy family registered from tests/toy_settings_family.py: its settings type is checked like any
# family's, and its loader (a checkpoint that does not exist) records every call, so "before any model loads"
# is observed, not assumed.


@pytest.fixture(scope="module")
def toy_specs(tmp_path_factory):
    folder = toy.install(tmp_path_factory.mktemp("specs"))
    yield folder
    toy.uninstall()


@pytest.fixture(autouse=False)
def toy_run(toy_specs, tmp_path, capsys):
    toy.CALLS.clear()
    out = tmp_path / "results"

    def run(*argv, task="toy-text"):
        argv = ["--specs", str(toy_specs), "run", "--model", "toy-model", "--task", task, "--out", str(out), *argv]
        rc = main(argv)
        return rc, capsys.readouterr().err.strip(), out

    return run


SETTING_MISTAKES = [
    ("toy-text", ["--set", "stpes=64"], "error: model toy-model (toyset): unknown setting 'stpes' = 64; did you mean 'steps'?"),
    ("toy-text", ["--set", "batch_size=abc"], "batch_size must be a positive integer or 'auto', not 'abc'"),
    ("toy-text", ["--set", "batch_size=auot"], "not 'auot'; did you mean 'auto'?"),
    ("toy-text", ["--set", "temperature=-1"], "setting 'temperature' = -1 is not allowed: Input should be greater than or equal to 0"),
    ("toy-text", ["--set", "max_length=100000"], "'max_length' = 100000 is larger than the card's context length 64"),
    ("toy-text", ["--set", "sampler=bogus"], "setting 'sampler' = 'bogus' is not allowed: Input should be 'ancestral' or 'topk'"),
    ("toy-text", ["--set", "greedy=sometimes"], "setting 'greedy' = 'sometimes' is not allowed"),
    ("genppl-kjv", ["--set", "task.n_sampels=8"], "unknown setting 'n_sampels' = 8; did you mean 'n_samples'?"),
    ("genppl-kjv", ["--set", "n_samples=abc"], "setting 'n_samples' = 'abc' is not allowed: Input should be a valid integer"),
    ("genppl-kjv", ["--set", "convention=xyz"], "setting 'convention' = 'xyz' is not allowed: Input should be 'mdlm', 'sedd' or 'bos'"),
    ("genppl-kjv", ["--set", "sampler={temperature: -1}"], "sampler for model toy-model (toyset): setting 'temperature' = -1"),
    ("mmlu", ["--set", "greedy=sometimes"], "setting 'greedy' = 'sometimes' is not allowed: Input should be 'auto', 'true' or 'false'"),
    ("toy-text", ["--set", "packing.mode=zip"], "setting 'mode' = 'zip' is not allowed: Input should be 'wrap', 'sliding', 'document' or 'rolling'"),
    ("toy-text", ["--set", "dataset.source=ftp"], "setting 'source' = 'ftp' is not allowed"),
    ("toy-text", ["--set", "dataset.feild=text"], "unknown setting 'feild' = 'text'; did you mean 'field'?"),
    ("toy-text", ["--limit", "0"], "--limit must be a positive integer, not 0"),
    ("toy-text", ["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    ("toy-txet", [], "unknown task 'toy-txet'; did you mean 'toy-text'?"),
]


@pytest.mark.parametrize("task, argv, expected", SETTING_MISTAKES, ids=[" ".join(a) or t for t, a, _ in SETTING_MISTAKES])
def test_setting_mistakes_exit_2_before_any_model_loads(toy_run, task, argv, expected):
    rc, err, out = toy_run(*argv, task=task)
    assert rc == 2, err
    assert expected in err and err.startswith("error: ") and err.count("\n") == 0, err
    assert toy.CALLS == [] and not out.exists()


def test_unknown_model_exits_2(toy_specs, tmp_path, capsys):
    rc = main(["--specs", str(toy_specs), "run", "--model", "toy-modle", "--task", "toy-text", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "did you mean 'toy-model'" in err and err.count("\n") == 0
    assert not (tmp_path / "r").exists()


def test_valid_settings_reach_the_loader(toy_run):
    # the control of the tests above: the same command without the mistake gets past validation and fails
    # only when the (missing) checkpoint is loaded: a job failure (exit 1), recorded under failures/
    rc, err, out = toy_run("--set", "steps=64")
    assert rc == 1 and toy.CALLS == ["toy-model"], err
    assert "toy loader called" in err and (out / "failures").is_dir()


def test_a_suite_with_a_bad_setting_fails_before_any_job_runs(toy_specs, tmp_path, capsys):
    toy.CALLS.clear()
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent("""
        name: two-jobs
        models: [toy-model]
        tasks: [toy-text, genppl-kjv]
        task_settings:
          genppl-kjv: {convention: xyz}
        """))
    out = tmp_path / "results"
    rc = main(["--specs", str(toy_specs), "run", "--suite", str(suite), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "setting 'convention' = 'xyz'" in err and err.count("\n") == 0, err
    assert toy.CALLS == [] and not out.exists()  # the first job (valid) did not run either
    suite.write_text(suite.read_text().replace("convention: xyz", "convention: sedd").replace("seeds: [0]", "") + "seeds: [x]\n")
    rc = main(["--specs", str(toy_specs), "run", "--suite", str(suite), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "seeds must be integers, not 'x'" in err and toy.CALLS == [] and not out.exists()
    suite.write_text(suite.read_text().replace("seeds: [x]", "grid: {stpes: [1, 2]}"))
    rc = main(["--specs", str(toy_specs), "run", "--suite", str(suite), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "unknown setting 'stpes'" in err and toy.CALLS == [] and not out.exists()


def test_show_prints_the_settings_with_type_default_value_and_meaning(toy_specs, capsys):
    assert main(["--specs", str(toy_specs), "show", "model", "toy-model"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith("  ")}
    assert lines["name"].split() == ["name", "type", "default", "current", "meaning"]
    assert lines["steps"].split()[:6] == ["steps", "int", "≥", "1", "16", "8"] and "(card)" in lines["steps"]
    assert "Sampling steps." in lines["steps"]
    assert lines["temperature"].split()[:6] == ["temperature", "float", "≥", "0", "1.0", "1.0"]
    assert main(["show", "task", "genppl-kjv"]) == 0
    out = capsys.readouterr().out
    assert "settings (task type genppl" in out and '"mdlm" | "sedd" | "bos"' in out and '"smollm2-135m" (card)' in out
    assert main(["show", "task", "wikitext2-sliding"]) == 0
    out = capsys.readouterr().out
    assert "packing (--set packing.KEY=VALUE):" in out and '"sliding" (card)' in out


def test_list_families_and_task_types_name_their_settings(toy_specs, capsys):
    assert main(["list", "families"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if not line.startswith(" ")}  # indented: descriptions
    assert {"ar", "mdlm", "sedd", "llada", "plaid", toy.NAME} <= set(rows)
    assert rows[toy.NAME].split()[1] == "ToySettings" and "greedy_match, nll, sample" in rows[toy.NAME]
    assert max(len(line) for line in out.splitlines()) <= 100
    assert main(["list", "task-types"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    blocks = {}  # type name -> its line and the wrapped settings lines under it
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line.split()[0]
            blocks[name] = line.split()
        else:
            blocks[name] += line.split()
    assert set(blocks) == {"perplexity", "lambada", "genppl", "reversal", "lmeval", "mauve", "reasoning"}
    assert blocks["genppl"][1] == "GenPPLSettings" and "convention," in blocks["genppl"] and "eval_model_card," not in blocks["genppl"]


@pytest.mark.parametrize(
    "device, expected",
    [("gpu", "is not a device"), ("cuda:x", "is not a device"), ("cpu:1", "one CPU device")]
    + ([] if __import__("torch").cuda.is_available() else [("cuda", "CPU-only build"), ("cuda:0", "CPU-only build")]),
)
def test_device_checked_against_the_build_before_any_work(capsys, tmp_path, device, expected):
    """--device that this torch build cannot use: one line, exit 2, nothing written (was a raw AssertionError)."""
    out = tmp_path / "out"
    err = _one_line_error(capsys, ["run", "--model", "zoo-ar-kjv", "--task", "kjv", "--device", device, "--out", str(out)])
    assert expected in err and not out.exists()


def test_device_checked_by_the_python_api(tmp_path):
    from dlmbench import api
    from dlmbench.errors import BadSpec

    with pytest.raises(BadSpec, match="not a device"):
        api.evaluate("zoo-ar-kjv", "kjv", device="tpu", out=tmp_path)
    with pytest.raises(BadSpec, match="not a device"):
        api.run_suite({"models": ["zoo-ar-kjv"], "tasks": ["kjv"]}, device="tpu", out=tmp_path)
    assert not any(tmp_path.iterdir())
