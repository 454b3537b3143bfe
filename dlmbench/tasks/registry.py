"""Task types: the settings each knows, and the function that runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UnknownName

# setting name -> default, per task type (overridable with --set NAME=VALUE)
TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "perplexity": {},
    "lambada": {"strip_punctuation": False, "target_delimiter": " "},
}


def task_setting_names(task_type: str) -> dict[str, Any]:
    return dict(TASK_SETTINGS.get(task_type, {}))


def task_runner(task_type: str) -> Callable[..., Any]:
    if task_type == "perplexity":
        from .perplexity import run_perplexity

        return run_perplexity
    if task_type == "lambada":
        from .lambada import run_lambada

        return run_lambada
    raise UnknownName("task type", task_type, TASK_SETTINGS)
