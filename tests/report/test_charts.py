"""Every chart reads rows that the task types write: run over the committed baselines (written by the real
tasks), each kind of chart matches rows and draws; a misspelt metric name matches none."""

from pathlib import Path

import pandas as pd
import pytest

from dlmbench.metrics import names
from dlmbench.report.charts import chart_rows
from dlmbench.report.leaderboard import plots
from dlmbench.report.selection import select_runs
from dlmbench.store import load_table

BASELINES = Path(__file__).resolve().parents[2] / "results" / "baselines"


@pytest.fixture(scope="module")
def baselines():
    return pd.concat([load_table(BASELINES / b) for b in ("zoo", "zoo-findings", "zoo-speed-quality")], ignore_index=True)


def test_every_chart_matches_rows_of_the_committed_baselines(baselines):
    chosen, _ = select_runs(baselines)
    counts = chart_rows(chosen)
    assert all(c > 0 for c in counts.values()), counts
    figs = {f.name: f for f in plots(baselines)}
    assert {"intervals_kjv", "frontier_genppl-kjv", "reasoning", "reversal"} <= set(figs)
    for f in figs.values():
        assert f.png.startswith(b"\x89PNG") and "<svg" in f.svg


def test_the_frontier_plots_quality_against_nfe_and_tokens_per_second(baselines):
    """Speed-quality frontier (issue "leaderboard"): gen-PPL against NFE and against generated tokens per second."""
    assert (baselines["metric"] == names.TOKENS_PER_SECOND).any(), "the speed-quality baseline has no tokens/s rows"
    fig = next(f for f in plots(baselines) if f.name == "frontier_genppl-kjv")
    assert "generated tokens per second" in fig.svg and "function evaluations per sample" in fig.svg


def test_bounds_are_drawn_and_labelled_with_le(baselines):
    fig = next(f for f in plots(baselines) if f.name == "intervals_kjv")
    assert "≤" in fig.svg and "upper bound" in fig.svg


def test_a_misspelt_metric_name_matches_nothing(baselines):
    """The old report looked for ``acc_strict``; the task writes ``names.STRICT_ACC``."""
    chosen, _ = select_runs(baselines)
    assert names.STRICT_ACC == "strict_acc"
    renamed = chosen.assign(metric=chosen["metric"].replace({names.STRICT_ACC: "acc_strict", names.FAITHFUL_ACC: "acc_faithful"}))
    assert chart_rows(renamed)["reasoning"] == 0
