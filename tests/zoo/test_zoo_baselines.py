"""CI's regression guard on the reference zoo: the zoo smoke suite, run now, against the numbers committed in
``results/baselines/zoo-smoke/`` through ``dlmbench regress`` (paired statistics per example, one-sided).
A change to the code that moves any zoo number beyond its noise fails here; refresh the baseline only for
an intended change (see dlmbench/cards/suites/zoo-smoke.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlmbench.cli import main
from dlmbench.store import load_table

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "dlmbench" / "cards" / "suites" / "zoo-smoke.yaml"
BASELINE = ROOT / "results" / "baselines" / "zoo-smoke"


@pytest.mark.slow
def test_zoo_smoke_suite_matches_committed_baseline(tmp_path, capsys):
    out = tmp_path / "candidate"
    assert main(["run", "--suite", str(SUITE), "--out", str(out), "--progress", "off"]) == 0
    capsys.readouterr()
    base, cand = load_table(BASELINE), load_table(out)
    assert set(base["model"]) == set(cand["model"]) == {"zoo-ar-kjv", "zoo-mdlm-kjv", "zoo-sedd-kjv", "zoo-llada-kjv",
                                                         "zoo-bd3lm-kjv", "zoo-duo-kjv", "zoo-dream-kjv"}
    code = main(["regress", "--baseline", str(BASELINE), "--candidate", str(out)])
    report = capsys.readouterr().out
    assert code == 0, report
    # every metric of every model was compared (nothing silently unmatched)
    for model in base["model"].unique():
        assert model in report
    assert "perplexity" in report
