"""Run folders are written atomically and read back into the tidy table."""

import json
import os

import pytest

from dlmbench.errors import ResultsError
from dlmbench.store import COLUMNS, MetricRow, export_table, load_table, run_folder, write_run


def _row(run_id="r1", metric="perplexity", value=12.5, stderr=0.5):
    return MetricRow(
        run_id=run_id, model="m", family="ar", checkpoint="local:/x", task="t", metric=metric, value=value,
        stderr=stderr, n=10, bound="exact", higher_is_better=False, seed=0, settings={"a": 1}, dataset="d",
        split="test", dlmbench_version="0", git_commit="abc", torch_version="2", versions={"torch": "2"},
        device="cpu", started_at="now", duration_s=1.0,
    )


def test_write_and_load_table(tmp_path):
    folder = run_folder(tmp_path, "m", "t", "r1")
    write_run(folder, {"x": 1}, [_row(), _row(metric="bits_per_byte", value=1.1, stderr=float("nan"))], [{"nll": 1.0}], "log")
    assert sorted(os.listdir(folder)) == ["examples.jsonl", "log.txt", "metrics.jsonl", "spec.yaml"]
    df = load_table(tmp_path)
    assert list(df.columns) == COLUMNS
    assert set(df["metric"]) == {"perplexity", "bits_per_byte"}
    # NaN stderr is stored as JSON null, never as an invalid NaN literal
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        json.loads(line)
    csv = export_table(df, tmp_path / "out" / "table.csv")
    pq = export_table(df, tmp_path / "out" / "table.parquet")
    import pandas as pd

    assert len(pd.read_csv(csv)) == 2 and len(pd.read_parquet(pq)) == 2
    with pytest.raises(ResultsError):
        export_table(df, tmp_path / "table.xlsx")


def test_crash_mid_write_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    folder = run_folder(tmp_path, "m", "t", "r2")

    class Boom(Exception):
        pass

    def exploding_rows():
        yield {"nll": 1.0}
        raise Boom()

    with pytest.raises(Boom):
        write_run(folder, {"x": 1}, [_row("r2")], exploding_rows(), "log")
    assert not folder.exists()
    # temp folder cleaned up (the job's lock file stays: removing a lock file others may wait on is a race)
    assert [p.name for p in folder.parent.iterdir()] == [".r2.lock"]
    assert load_table(tmp_path).empty


def test_rewrite_replaces_old_run(tmp_path):
    folder = run_folder(tmp_path, "m", "t", "r3")
    write_run(folder, {}, [_row("r3", value=1.0)])
    write_run(folder, {}, [_row("r3", value=2.0)])
    df = load_table(tmp_path)
    assert df["value"].tolist() == [2.0]
    assert sorted(p.name for p in folder.parent.iterdir()) == [".r3.lock", "r3"]


def test_missing_results_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load_table(tmp_path / "nothing")


def test_run_folders_get_the_umask_permissions_not_0700(tmp_path):
    """A run folder is made by mkdtemp (mode 0700) and renamed into place: it must end with the permissions any
    folder gets under the process umask, so a team sharing a results folder can read each other's runs."""
    import os
    import stat

    from dlmbench import store

    old = os.umask(0o022)
    try:
        row = store.MetricRow(run_id="r1", model="m", family="ar", checkpoint="c", task="t", metric="nll", value=1.0,
                              stderr=0.1, n=2, bound="exact", higher_is_better=False, seed=0, settings={}, dataset="d",
                              split=None, dlmbench_version="0", git_commit="0", torch_version="0", versions={}, device="cpu",
                              started_at="2026-01-01T00:00:00+00:00", duration_s=0.0)
        folder = store.run_folder(tmp_path, "m", "t", "r1")
        folder.parent.mkdir(parents=True)
        store.write_run(folder, {"run_id": "r1"}, [row], [], "log\n")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        assert stat.S_IMODE((folder / "metrics.jsonl").stat().st_mode) == 0o644
    finally:
        os.umask(old)
