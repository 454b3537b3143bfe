"""dlmbench: diffusion and autoregressive language models on the same scale."""

from dlmbench._version import __version__
from dlmbench.errors import DlmbenchError


def evaluate(model: str, task: str, **overrides):
    """Run one model on one task and return its :class:`~dlmbench.store.RunRecord`.

    ``overrides`` are run options (``seed``, ``limit``, ``batch_size``, ``device``, ``out``) or any
    model/task setting (``settings={"stride": 512}``). Same as ``dlmbench run --model M --task T``.
    """
    from dlmbench.api import evaluate as _evaluate

    return _evaluate(model, task, **overrides)


__all__ = ["evaluate", "DlmbenchError", "__version__"]
