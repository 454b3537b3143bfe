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
    "lmeval": {
        "lm_eval_task": None,  # lm-eval task / group / tag name, or a list of them
        "num_fewshot": None,  # None: the task's own default (0 unless its YAML says otherwise)
        "lm_eval_task_dir": None,  # folder of lm_eval/tasks holding the task: index only that (faster)
        "include_path": None,  # folder(s) of your own lm-eval task YAMLs
        "include_defaults": True,  # index lm-eval's own tasks
        "data_files": None,  # local data: a file (the evaluation split) or {split: file}; {task}, {dataset_name} expand
        "greedy": "auto",  # is_greedy checks: auto (skipped for multiple choice) | true | false
        "fewshot_seed": 1234,  # lm-eval's default
        "bootstrap_iters": 100000,  # lm-eval's default (stderr of non-mean aggregations)
    },
    "mauve": {
        "n_samples": 5000,
        "length": 1024,
        "steps": None,
        "sampler": {},
        "featurizer": "gpt2-large",
        "max_text_length": 1024,
        "featurize_batch_size": 8,
        "num_buckets": "auto",
        "kmeans_seed": 25,
        "kmeans_explained_var": 0.9,
        "kmeans_num_redo": 5,
        "kmeans_max_iter": 500,
        "scaling_factor": 5,
        "recommended_samples": 5000,
    },
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
    "lmeval": ("dlmbench.tasks.lmeval", "run_lmeval"),
    "mauve": ("dlmbench.tasks.mauve", "run_mauve"),
}


# settings every task type accepts: ``regress`` holds per-metric tolerances for ``dlmbench regress``
# (docs/regress.md); it never changes what the task computes.
COMMON_TASK_SETTINGS: dict[str, Any] = {"regress": None}


def task_setting_names(task_type: str) -> dict[str, Any]:
    return {**TASK_SETTINGS.get(task_type, {}), **COMMON_TASK_SETTINGS}


def task_runner(task_type: str) -> Callable[..., Any]:
    import importlib

    if task_type not in _RUNNERS:
        raise UnknownName("task type", task_type, _RUNNERS)
    module, fn = _RUNNERS[task_type]
    return getattr(importlib.import_module(module), fn)
