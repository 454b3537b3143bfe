"""dlmbench: diffusion and autoregressive language models on the same scale."""

from dlmbench._version import __version__
from dlmbench.errors import DlmbenchError


def evaluate(model: str, task: str, **overrides):
    """Run one model on one task; return its tidy rows as a pandas DataFrame (one row per metric).

    The columns are those of the tidy table (:data:`dlmbench.store.COLUMNS`: ``metric``, ``value``, ``stderr``,
    ``n``, ``bound``, ``settings``, provenance, ...), so the frame concatenates with
    :func:`dlmbench.store.load_table`. ``df.attrs`` holds ``run_id``, ``run_folder`` and ``cached`` (read back
    from an earlier identical run). ``overrides`` are run options (``seed``, ``limit``, ``batch_size``,
    ``device``, ``out``) or any model/task setting (``settings={"stride": 512}``). Same as
    ``dlmbench run --model M --task T``; :func:`dlmbench.api.evaluate` returns the
    :class:`~dlmbench.store.RunRecord` instead.
    """
    import pandas as pd

    from dlmbench.api import evaluate as _evaluate
    from dlmbench.store import COLUMNS

    record = _evaluate(model, task, **overrides)
    df = pd.DataFrame.from_records([r.to_json() for r in record.rows], columns=COLUMNS)
    df.attrs.update(run_id=record.run_id, run_folder=str(record.folder), cached=bool(record.cached))
    return df


__all__ = ["evaluate", "DlmbenchError", "__version__"]
