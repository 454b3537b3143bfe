"""Task types: the settings each knows, and the function that runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UnknownName

# setting name -> default, per task type (overridable with --set NAME=VALUE)
TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "perplexity": {},
    "lambada": {"strip_punctuation": False, "target_delimiter": " "},
    "genppl": {
        "n_samples": 16,
        "length": 128,
        "steps": None,
        "convention": "mdlm",
        "eval_model": "gpt2-large",
        "entropy_margin": 0.2,
        "sampler": {},
    },
    "reversal": {"same_file": None, "reverse_file": None, "max_new_tokens": 24, "sampler": {}},
    "reasoning": {
        "problem": None,
        "n_test": 200,
        "n_split": 1000,
        "data_seed": 1234,
        "max_new_tokens": None,
        "steps": None,
        "sampler": {},
        "prompt_suffix": "=",
    },
}

_RUNNERS = {
    "perplexity": ("dlmbench.tasks.perplexity", "run_perplexity"),
    "lambada": ("dlmbench.tasks.lambada", "run_lambada"),
    "genppl": ("dlmbench.tasks.genppl", "run_genppl"),
    "reversal": ("dlmbench.tasks.reversal", "run_reversal"),
    "reasoning": ("dlmbench.tasks.reasoning", "run_reasoning"),
}


def task_setting_names(task_type: str) -> dict[str, Any]:
    return dict(TASK_SETTINGS.get(task_type, {}))


def task_runner(task_type: str) -> Callable[..., Any]:
    import importlib

    if task_type not in _RUNNERS:
        raise UnknownName("task type", task_type, _RUNNERS)
    module, fn = _RUNNERS[task_type]
    return getattr(importlib.import_module(module), fn)
