"""Task types: the settings each knows, and the function that runs it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dlmbench.errors import UnknownName

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
        # diffusion models that offer it decode as the reference does (Ye et al. 2024: easy-first top-k, T=20,
        # stochastic0.5-linear) unless ``sampler`` says otherwise; "model" keeps the card's own sampler
        "mdm_decoding": "reference",
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

# settings that name another model card (the gen-PPL evaluator, the MAUVE featurizer): resolved with the run's
# own registry when the run is resolved (so ``--specs`` folders count, a typo fails before any work, and the
# card travels with the job to other processes and machines), stored as ``<setting>_card``
MODEL_CARD_SETTINGS: dict[str, tuple[str, ...]] = {"genppl": ("eval_model",), "mauve": ("featurizer",)}
# what the family of such a card must offer (dlmbench.plugins.CAPABILITIES), checked through the family table when
# the run is resolved, before any model loads: gen-PPL scores samples with exact likelihoods; MAUVE reads hidden states
MODEL_CARD_NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "genppl": {"eval_model": ("nll", "exact_likelihood")},
    "mauve": {"featurizer": ("hidden_states",)},
}


def attach_model_cards(task: Any, registry: Any) -> Any:
    """``task`` with ``<setting>_card`` (the resolved card, without its description) for every model-naming
    setting of its type."""
    import dataclasses

    from dlmbench.plugins import require

    names = MODEL_CARD_SETTINGS.get(task.type, ())
    if not names:
        return task
    extra = {}
    for key in names:
        name = task.settings.get(key, TASK_SETTINGS[task.type][key])
        spec = registry.model(str(name))
        require(spec.family, MODEL_CARD_NEEDS.get(task.type, {}).get(key, ()), f"task {task.name}: {key} {name}")
        card = spec.to_dict()
        card.pop("description", None)
        extra[f"{key}_card"] = card
    return dataclasses.replace(task, settings={**task.settings, **extra})


def model_card_setting(settings: Mapping[str, Any], key: str, default: str) -> Any:
    """The :class:`~dlmbench.specs.ModelSpec` a task setting names: the card resolved with the run
    (``<key>_card``), else looked up by name in the default registry (a task called directly)."""
    from dlmbench.specs import ModelSpec

    card = settings.get(f"{key}_card")
    if card:
        return ModelSpec.from_dict(card)
    from dlmbench.registry import Registry

    return Registry.default().model(str(settings.get(key, default)))


def task_setting_names(task_type: str) -> dict[str, Any]:
    return {**TASK_SETTINGS.get(task_type, {}), **COMMON_TASK_SETTINGS}


def task_runner(task_type: str) -> Callable[..., Any]:
    import importlib

    if task_type not in _RUNNERS:
        raise UnknownName("task type", task_type, _RUNNERS)
    module, fn = _RUNNERS[task_type]
    return getattr(importlib.import_module(module), fn)
