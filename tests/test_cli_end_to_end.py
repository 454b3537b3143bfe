"""The CLI from end to end on a tiny random GPT-2 and a tiny LLaDA (cards written by ``tiny_zoo``):
``list``/``show`` find user cards, ``run`` prints the table and writes run folders, ``results`` exports
the same numbers as CSV and JSON, ``report`` writes the leaderboard — and the exact AR value equals
plain transformers' loss computed here directly (independent ground truth)."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
import torch

from dlmbench.cli import main

from tiny_zoo import TEXTS, make_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_e2e")
    return root, make_zoo(root, mc_samples=4)


def _run(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_list_and_show_user_cards(zoo, capsys):
    _, specs = zoo
    code, out, _ = _run(capsys, ["--specs", str(specs), "list", "models"])
    assert code == 0 and "tiny-gpt2" in out and "tiny-llada" in out and "smollm2-135m" in out
    code, out, _ = _run(capsys, ["--specs", str(specs), "show", "task", "tiny-ppl"])
    assert code == 0 and "perplexity" in out and "docs.jsonl" in out


def test_run_results_report(zoo, capsys, tmp_path):
    root, specs = zoo
    out_dir = tmp_path / "results"
    code, out, err = _run(capsys, ["--specs", str(specs), "run", "--model", "tiny-gpt2,tiny-llada", "--task", "tiny-ppl",
                                   "--out", str(out_dir), "--progress", "off"])
    assert code == 0, err
    assert "tiny-gpt2" in out and "tiny-llada" in out and "≤" in out  # the bound is labelled in the table
    assert "2 done, 0 cached, 0 failed" in err

    code, csv_text, err = _run(capsys, ["results", "--out", str(out_dir), "--format", "csv"])
    assert code == 0, err
    table = pd.read_csv(io.StringIO(csv_text))
    ppl = table[(table.metric == "perplexity")].set_index("model")
    assert ppl.loc["tiny-gpt2", "bound"] == "exact" and ppl.loc["tiny-llada", "bound"] == "upper"
    assert ppl.loc["tiny-llada", "stderr"] > 0

    # ground truth for the AR number: transformers' own loss, one document at a time, BOS prepended
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    folder = root / "gpt2" / "model"
    model = GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    tok = GPT2TokenizerFast.from_pretrained(str(folder))
    nll, n = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:
            ids = [0] + tok(text, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ids])
            nll += float(model(input_ids=x, labels=x).loss) * (len(ids) - 1)
            n += len(ids) - 1
    assert ppl.loc["tiny-gpt2", "value"] == pytest.approx(math.exp(nll / n), rel=1e-4)

    code, js, _ = _run(capsys, ["results", "--out", str(out_dir), "--format", "json"])
    rows = [json.loads(line) for line in js.splitlines() if line.strip()] if not js.lstrip().startswith("[") else json.loads(js)
    assert code == 0 and len(rows) == len(table)
    for r in rows:  # provenance on every row
        for key in ("model", "task", "seed", "git_commit", "torch_version", "settings"):
            assert key in r

    # the same command again reads the runs back
    code, _, err = _run(capsys, ["--specs", str(specs), "run", "--model", "tiny-gpt2,tiny-llada", "--task", "tiny-ppl",
                                 "--out", str(out_dir), "--progress", "off"])
    assert code == 0 and "0 done, 2 cached, 0 failed" in err

    code, _, err = _run(capsys, ["report", "--out", str(out_dir), "--dest", str(tmp_path / "board")])
    assert code == 0, err
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert "tiny-llada" in html and "≤" in html


def test_out_names_the_results_folder_on_every_command_old_spellings_still_work(zoo, capsys, tmp_path):
    _, specs = zoo
    res = tmp_path / "res"
    code, _, err = _run(capsys, ["--specs", str(specs), "run", "--model", "tiny-gpt2", "--task", "tiny-ppl", "--out", str(res)])
    assert code == 0, err

    # results: --out, and the old --out-dir with a one-line notice on stderr and the same table
    code, new, err = _run(capsys, ["results", "--out", str(res), "--format", "csv"])
    assert code == 0 and err == "" and "tiny-gpt2" in new
    code, old, err = _run(capsys, ["results", "--out-dir", str(res), "--format", "csv"])
    assert code == 0 and old == new
    assert err == "warning: --out-dir DIR is deprecated; use --out DIR\n"

    # report: --out RESULTS [--dest DIR]; the default destination is RESULTS/leaderboard
    code, _, err = _run(capsys, ["report", "--out", str(res)])
    assert code == 0 and "warning" not in err and (res / "leaderboard" / "leaderboard.md").is_file()
    expected = (res / "leaderboard" / "leaderboard.md").read_text()
    # old: a positional results folder (written to RESULTS/leaderboard) ...
    (res / "leaderboard" / "leaderboard.md").unlink()
    code, _, err = _run(capsys, ["report", str(res)])
    assert code == 0 and (res / "leaderboard" / "leaderboard.md").read_text() == expected
    assert err.splitlines()[0] == f"warning: `report {res}` (a positional results folder) is deprecated; use `report --out {res}`"
    # ... and the positional with --out as the report's destination
    code, _, err = _run(capsys, ["report", str(res), "--out", str(tmp_path / "board")])
    assert code == 0 and (tmp_path / "board" / "leaderboard.md").read_text() == expected
    assert err.splitlines()[0] == (
        f"warning: `report {res} --out {tmp_path / 'board'}` is deprecated; use `report --out {res} --dest {tmp_path / 'board'}`"
    )
    # the new --out is a results folder: a missing one is one line that points at --dest
    code, _, err = _run(capsys, ["report", "--out", str(tmp_path / "nowhere")])
    assert code == 2 and err.count("\n") == 1 and "--dest DIR" in err
    code, _, err = _run(capsys, ["results", "--out", str(res), "--out-dir", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1
