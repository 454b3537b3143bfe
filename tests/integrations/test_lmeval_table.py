"""The bridge's console table shows bounds as bounds (issue 16, item 5: "the bridge prints bounds with <=").

Direction: a diffusion model's log-likelihoods are lower bounds (minus an upper bound on the NLL), so every
perplexity-type metric (``exp(-sum ll / count)``, ``bits_per_byte``) computed from them is an *upper* bound on
the model's value: ``<=``. An accuracy of choices ranked by bounds is no bound either way: ``*``. An AR model's
numbers are exact: unmarked. The end-to-end test runs the packaged offline lm-eval task
``dlmbench_kjv_rolling`` through ``dlmbench lm-eval`` on a zoo MDLM and the zoo AR model.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("lm_eval")

from dlmbench.integrations.lmeval_table import make_table, marked_results, metric_bound  # noqa: E402


def _results(bound: str | None) -> dict:
    """lm-eval's results dict for one rolling task, one multiple-choice task and one LAMBADA-like task."""
    cfg = {"model": "dlmbench"}
    if bound is not None:
        cfg.update(dlmbench_bound=bound, dlmbench_prefix="prefix rule none: no prefix token")
    return {
        "results": {
            "roll": {"alias": "roll", "word_perplexity,none": 12.345678, "word_perplexity_stderr,none": "N/A",
                     "bits_per_byte,none": 1.25, "bits_per_byte_stderr,none": "N/A"},
            "mc": {"alias": "mc", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.25, "acc_norm_stderr,none": 0.1},
            "lamb": {"alias": "lamb", "acc,none": 0.75, "acc_stderr,none": 0.05, "perplexity,none": 30.5, "perplexity_stderr,none": 2.0},
        },
        "configs": {"roll": {"output_type": "loglikelihood_rolling"}, "mc": {"output_type": "multiple_choice"},
                    "lamb": {"output_type": "loglikelihood"}},
        "versions": {"roll": 1.0, "mc": 1.0, "lamb": 1.0},
        "n-shot": {"roll": 0, "mc": 0, "lamb": 0},
        "higher_is_better": {"roll": {"word_perplexity": False, "bits_per_byte": False}, "mc": {"acc": True, "acc_norm": True},
                             "lamb": {"acc": True, "perplexity": False}},
        "config": cfg,
    }


def test_bound_values_are_marked_by_direction():
    marked, used = marked_results(_results("upper"), "upper")
    r = marked["results"]
    assert r["roll"]["word_perplexity,none"] == "<= 12.3457" and r["roll"]["bits_per_byte,none"] == "<= 1.2500"
    assert r["lamb"]["perplexity,none"] == "<= 30.5000"
    assert r["mc"]["acc,none"] == "0.5000 *" and r["mc"]["acc_norm,none"] == "0.2500 *"
    assert r["lamb"]["acc,none"] == "= 0.7500"  # the greedy check: an exact number of that check
    assert r["mc"]["acc_stderr,none"] == 0.1  # standard errors are not values
    assert used == {"upper", "ranked", "exact"}
    # exact models: nothing changes
    assert marked_results(_results("exact"), "exact")[0]["results"] == _results("exact")["results"]
    # the labels the lmeval task's rows carry agree with the marks
    assert metric_bound("upper", "loglikelihood_rolling", "word_perplexity") == ("upper", "nll_upper_bound")
    assert metric_bound("upper", "multiple_choice", "acc") == ("exact", "nll_upper_bound")


def _rows(table: str) -> dict[tuple[str, str], str]:
    """``{(task, metric): value cell}`` of a markdown table printed by lm-eval."""
    out, task = {}, ""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 9 or cells[4] in ("Metric", "") or set(cells[4]) <= set("-:"):
            continue
        task = cells[0] or task
        out[(task, cells[4])] = cells[6]
    return out


def test_table_of_a_diffusion_model_marks_bounds_and_explains():
    table = make_table(_results("upper"))
    rows = _rows(table)
    assert rows[("roll", "word_perplexity")] == "<= 12.3457" and rows[("mc", "acc")] == "0.5000 *"
    assert rows[("lamb", "acc")] == "= 0.7500"
    assert "<= : upper bound" in table and "*  : accuracy of choices ranked" in table and "=  : exact" in table
    assert "dlmbench prefix rule none" in table


def test_table_of_an_exact_model_or_another_lm_is_lm_evals():
    from lm_eval.utils import make_table as lm_eval_table

    exact = make_table(_results("exact"))
    assert "<=" not in exact and " *" not in exact and exact.startswith(lm_eval_table(_results("exact")))
    assert make_table(_results(None)) == lm_eval_table(_results(None))  # `dlmbench lm-eval --model hf ...`


def test_packaged_tasks_folder_is_added_once():
    from dlmbench.integrations.lmeval import TASKS_DIR, with_packaged_tasks

    assert (TASKS_DIR / "dlmbench_kjv_rolling.yaml").is_file() and (TASKS_DIR / "kjv_heldout.jsonl").is_file()
    assert with_packaged_tasks(["--model", "dlmbench"]) == ["--model", "dlmbench", "--include_path", str(TASKS_DIR)]
    assert with_packaged_tasks(["run", "--tasks", "x"]) == ["run", "--include_path", str(TASKS_DIR), "--tasks", "x"]
    assert with_packaged_tasks(["--include_path", "mine", "--tasks", "x"]) == ["--include_path", "mine", "--tasks", "x"]
    assert with_packaged_tasks(["--help"]) == ["--help"]


def test_package_data_ships_the_lm_eval_tasks():
    """pyproject's package-data patterns cover every file of the packaged lm-eval task folder (so the example
    runs from an installed wheel, not only from a clone)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from dlmbench.integrations.lmeval import TASKS_DIR

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dlmbench"]
    files = [p.relative_to(root / "dlmbench").as_posix() for p in TASKS_DIR.iterdir() if p.is_file()]
    assert {"integrations/lmeval_tasks/kjv_data.py", "integrations/lmeval_tasks/kjv_heldout.jsonl"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, p) for p in patterns), f


@pytest.mark.slow
def test_dlmbench_lm_eval_prints_bounds_offline(capsys, tmp_path, monkeypatch):
    """``dlmbench lm-eval`` on the packaged task, from a folder that is not the repository (the task's data is
    found beside its YAML whatever the cwd): the zoo MDLM's perplexities carry ``<=``, the zoo AR model's none."""
    from dlmbench.cli import main

    monkeypatch.chdir(tmp_path)
    got = {}
    for model in ("zoo-mdlm-kjv,mc_samples=2", "zoo-ar-kjv"):
        assert main(["lm-eval", "--model", "dlmbench", "--model_args", f"model={model}", "--tasks", "dlmbench_kjv_rolling",
                     "--device", "cpu", "--limit", "3"]) == 0
        got[model] = capsys.readouterr().out
    mdlm, ar = _rows(got["zoo-mdlm-kjv,mc_samples=2"]), _rows(got["zoo-ar-kjv"])
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert re.fullmatch(r"<= \d+\.\d{4}", mdlm[("dlmbench_kjv_rolling", metric)]), mdlm
        assert re.fullmatch(r"\d+\.\d{4}", ar[("dlmbench_kjv_rolling", metric)]), ar
    assert "<= : upper bound" in got["zoo-mdlm-kjv,mc_samples=2"] and "<=" not in got["zoo-ar-kjv"]
    assert "prefix rule lmeval: empty contexts scored after token 0 '<|endoftext|>'" in got["zoo-ar-kjv"]


def test_lmeval_task_module_imports_without_lm_eval():
    """The bound labels are read by the ``lmeval`` task type, which must import where lm-eval is not installed."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; sys.modules['lm_eval'] = None\n"
            "import dlmbench.tasks.lmeval as t\n"
            "print(t.metric_bound('upper', 'loglikelihood_rolling', 'bits_per_byte'))")
    root = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "('upper', 'nll_upper_bound')"
