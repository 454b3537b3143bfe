"""benchmarks/accuracy_intervals.py: the Wilson interval against its defining equation and a binomial test.

Ground truth independent of the formula: the Wilson interval is the set of p whose score test does not reject,
i.e. its endpoints solve ``(p_hat - p)^2 = z^2 p (1 - p) / n``; it is found here by bisection on that equation.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("accuracy_intervals", ROOT / "benchmarks" / "accuracy_intervals.py")
ai = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ai)


def _score_root(p_hat: float, n: int, lo: float, hi: float) -> float:
    """The p in [lo, hi] where the score statistic equals z (bisection on a sign change)."""
    f = lambda p: (p_hat - p) ** 2 - ai.Z95 ** 2 * p * (1 - p) / n  # noqa: E731
    a, b = lo, hi
    for _ in range(200):
        m = (a + b) / 2
        if (f(a) > 0) == (f(m) > 0):
            a = m
        else:
            b = m
    return (a + b) / 2


@pytest.mark.parametrize("k,n", [(0, 100), (3, 140), (70, 140), (139, 140), (100, 100), (1, 1)])
def test_wilson_endpoints_solve_the_score_equation(k, n):
    p_hat = k / n
    lo, hi = ai.wilson(p_hat, n)
    want_lo = 0.0 if k == 0 else _score_root(p_hat, n, 0.0, p_hat)
    want_hi = 1.0 if k == n else _score_root(p_hat, n, p_hat, 1.0)
    assert lo == pytest.approx(want_lo, abs=1e-9) and hi == pytest.approx(want_hi, abs=1e-9)
    assert lo <= p_hat <= hi


def test_rows_read_accuracies_of_a_results_folder(tmp_path, capsys):
    run = tmp_path / "runs" / "m" / "planning" / "abc"
    run.mkdir(parents=True)
    lines = [{"model": "m", "task": "planning", "metric": "faithful_acc.pd2", "value": 0.5, "n": 140},
             {"model": "m", "task": "planning", "metric": "nfe_per_example", "value": 20.0, "n": 140},
             {"model": "m", "task": "planning", "metric": "same.logprob", "value": -3.0, "n": 140}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    got = ai.rows(tmp_path)
    assert [r[2] for r in got] == ["faithful_acc.pd2"] and got[0][5:] == ai.wilson(0.5, 140)
    assert ai.main([str(tmp_path)]) == 0 and "faithful_acc.pd2" in capsys.readouterr().out
