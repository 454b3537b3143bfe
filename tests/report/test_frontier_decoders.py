"""The frontier chart draws one line per model and decoder (step sweep vs Fast-dLLM threshold / cache), reading what
each run was fed, and covers reasoning tasks swept over decoders."""

import pandas as pd

from dlmbench.metrics import names
from dlmbench.report.charts import _decoder, _decoder_label, frontier


def test_decoder_reads_the_sampler_record_before_the_card():
    flat = {"threshold": None, "cache": "none", "sampler.threshold": 0.9, "sampler.cache": "prefix"}
    assert _decoder(flat) == {"threshold": 0.9, "cache": "prefix"}
    nested = {"threshold": None, "cache": "dual", "sampler": {"factor": 1.0}}
    assert _decoder(nested) == {"factor": 1.0, "cache": "dual"}
    assert _decoder({"steps": 8, "cache": "none"}) == {} and _decoder_label({}) == ""
    assert _decoder_label({"threshold": 0.9, "cache": "prefix"}) == "threshold + prefix cache"


def _rows(run, model, settings, acc, nfe):
    base = dict(run_id=run, model=model, task="countdown-cd3", stderr=0.02, n=100, bound="exact", settings=settings)
    return [dict(base, metric=names.STRICT_ACC, value=acc, higher_is_better=True),
            dict(base, metric=names.NFE_PER_EXAMPLE, value=nfe, higher_is_better=False),
            dict(base, metric=names.TOKENS_PER_SECOND, value=100.0 / nfe, higher_is_better=True)]


def test_reasoning_frontier_has_a_line_per_decoder():
    rows = (_rows("a", "m", {"steps": 20, "sampler": {}}, 0.5, 20) + _rows("b", "m", {"steps": 10}, 0.4, 10)
            + _rows("c", "m", {"sampler": {"threshold": 0.9}}, 0.5, 6) + _rows("d", "m", {"sampler": {"threshold": 0.7}}, 0.45, 4))
    fig = frontier(pd.DataFrame(rows), "countdown-cd3")
    assert fig is not None and "strict_acc (higher is better)" in fig.svg
    assert "m threshold" in fig.svg and "τ=0.9" in fig.svg
    assert frontier(pd.DataFrame(_rows("a", "m", {}, 0.5, 20)), "countdown-cd3") is None  # one run: no frontier
