"""Every user mistake exits non-zero with exactly one line on stderr and no traceback."""

import subprocess
import sys
import textwrap

import pytest

from dlmbench.cli import main


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
    for argv in (["bogus"], ["run", "--task", "kjv", "--model"], ["run", "--model", "gpt2", "--task", "kjv", "--limit", "x"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and err.count("\n") == 0, err


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
