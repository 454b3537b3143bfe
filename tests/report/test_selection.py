"""Run selection: a full run and a later ``--limit`` re-run of the same (model, task, settings, checkpoint)
— real runs of the tiny zoo — the report, ``results`` and the exports use the full one and list the other."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from dlmbench import api
from dlmbench.cli import main
from dlmbench.report.leaderboard import markdown, write_report
from dlmbench.report.selection import select_runs
from dlmbench.store import checkpoint_identity, load_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """``tiny-gpt2`` on ``tiny-ppl``: first a full run (8 documents), then a ``--limit 3`` run."""
    root = tmp_path_factory.mktemp("sel")
    specs = make_zoo(root / "zoo", llada=False)
    out = root / "results"
    full = api.evaluate("tiny-gpt2", "tiny-ppl", out=out, specs=[specs])
    limited = api.evaluate("tiny-gpt2", "tiny-ppl", out=out, specs=[specs], limit=3)
    return out, full.run_id, limited.run_id


def test_full_run_beats_a_later_limited_run(two_runs):
    out, full, limited = two_runs
    df = load_table(out)
    runs = df.drop_duplicates("run_id").set_index("run_id")
    assert runs.loc[limited, "started_at"] >= runs.loc[full, "started_at"]
    assert pd.isna(runs.loc[full, "limit"]) and runs.loc[limited, "limit"] == 3
    assert runs.loc[limited, "n"] == 3 and runs.loc[full, "n"] > 3
    chosen, unused = select_runs(df)
    assert set(chosen["run_id"]) == {full}
    assert unused[["run_id", "used_run_id", "n", "limit"]].to_dict("records") == [
        {"run_id": limited, "used_run_id": full, "n": 3, "limit": 3}]
    # the explicit "newest" policy picks the other one
    latest, unused_latest = select_runs(df, policy="latest")
    assert set(latest["run_id"]) == {limited} and unused_latest["run_id"].tolist() == [full]


def test_report_shows_the_full_run_with_n_and_limit_and_lists_the_other(two_runs, tmp_path):
    out, full, limited = two_runs
    df = load_table(out)
    n_full = int(df[df["run_id"] == full]["n"].iloc[0])
    md = markdown(df)
    line = next(l for l in md.splitlines() if l.startswith("| tiny-gpt2"))
    cells = [c.strip() for c in line.split("|")]
    assert str(n_full) in cells and "full" in cells
    assert "Runs not shown" in md and limited in md and f"n={n_full}" in md.split("Runs not shown")[1]
    page = write_report(df, tmp_path / "rep", results_root=out)["html"].read_text()
    assert f"runs/tiny-gpt2/tiny-ppl/{full}" in page and limited in page


def test_results_command_chooses_explicitly(two_runs, capsys):
    out, full, limited = two_runs
    for flag, expect in (([], {full}), (["--latest"], {limited}), (["--all"], {full, limited})):
        assert main(["results", "--out", str(out), "--format", "json", *flag]) == 0
        recs = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
        assert {r["run_id"] for r in recs} == expect, flag


@pytest.mark.parametrize("ext", ["csv", "parquet", "json"])
def test_exports_carry_limit_n_bound_identity_and_one_column_per_setting(two_runs, tmp_path, ext):
    out, full, limited = two_runs
    path = tmp_path / f"table.{ext}"
    assert main(["results", "--out", str(out), "--all", "--export", str(path)]) == 0
    t = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": lambda p: pd.read_json(p, lines=True)}[ext](path)
    for col in ("limit", "n", "bound", "checkpoint_identity", "setting.mc_samples", "setting.packing.mode"):
        assert col in t.columns, col
    by_run = t.drop_duplicates("run_id").set_index("run_id")
    assert by_run.loc[limited, "limit"] == 3 and pd.isna(by_run.loc[full, "limit"])
    assert set(t["bound"]) == {"exact"}
    # a pivot over settings + limit keeps the two runs apart instead of averaging them
    piv = t[t["metric"] == "perplexity"].groupby(["model", "task", "setting.mc_samples", "limit"], dropna=False)["value"].count()
    assert piv.tolist() == [1, 1]


def test_checkpoint_digest_splits_runs():
    row = {"checkpoint": "local:ckpt", "settings": {"sha256": "abc"}}
    assert checkpoint_identity(row) == "local:ckpt@abc"
    assert checkpoint_identity({"checkpoint": "local:ckpt", "checkpoint_digest": "d1", "settings": {}}) == "local:ckpt@d1"
    assert checkpoint_identity({"checkpoint": "local:ckpt", "settings": {}}) == "local:ckpt"


def test_wide_table_prefixes_model_and_task_settings():
    from dlmbench.store import wide_table

    df = pd.DataFrame([{"run_id": "r", "checkpoint": "c", "settings": {"steps": 8, "sampler": {"temperature": 0},
                        "limit": 5, "task_settings": {"n_samples": 32, "sampler": {"top_p": 0.9}}}, "versions": {}}])
    w = wide_table(df).iloc[0]
    assert w["setting.steps"] == 8 and w["setting.sampler.temperature"] == 0
    assert w["task_setting.n_samples"] == 32 and w["task_setting.sampler.top_p"] == 0.9
    assert "setting.limit" not in w.index and json.loads(w["settings"])["steps"] == 8
