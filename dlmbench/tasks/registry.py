"""Task types: the function that runs each, and the model cards its settings name.

The settings of each task type (names, defaults, ranges, meanings) are typed in
:mod:`dlmbench.specs.task_settings`; a runner reads ``task.typed_settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlmbench.errors import UnknownName

_RUNNERS = {
    "perplexity": ("dlmbench.tasks.perplexity", "run_perplexity"),
    "lambada": ("dlmbench.tasks.lambada", "run_lambada"),
    "genppl": ("dlmbench.tasks.genppl", "run_genppl"),
    "reversal": ("dlmbench.tasks.reversal", "run_reversal"),
    "reasoning": ("dlmbench.tasks.reasoning", "run_reasoning"),
    "lmeval": ("dlmbench.tasks.lmeval", "run_lmeval"),
    "mauve": ("dlmbench.tasks.mauve", "run_mauve"),
}


# what the family of a card named by a task setting must offer (dlmbench.plugins.CAPABILITIES), checked through the
# family table when the run is resolved, before any model loads: gen-PPL scores samples with exact likelihoods;
# MAUVE reads hidden states
MODEL_CARD_NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "genppl": {"eval_model": ("nll", "exact_likelihood")},
    "mauve": {"featurizer": ("hidden_states",)},
}


def model_card_setting(settings: Any, key: str) -> Any:
    """The :class:`~dlmbench.specs.ModelSpec` a task setting names: the card resolved with the run
    (``<key>_card``), else looked up by name in the default registry (a task called directly)."""
    from dlmbench.specs import ModelSpec

    card = getattr(settings, f"{key}_card", None)
    if card:
        return ModelSpec.from_dict(card)
    from dlmbench.registry import Registry

    return Registry.default().model(str(getattr(settings, key)))


def task_runner(task_type: str) -> Callable[..., Any]:
    import importlib

    if task_type not in _RUNNERS:
        raise UnknownName("task type", task_type, _RUNNERS)
    module, fn = _RUNNERS[task_type]
    return getattr(importlib.import_module(module), fn)
