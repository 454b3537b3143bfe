"""Resolve and validate: card names (or YAML paths) and ``--set`` overrides -> one validated
:class:`~dlmbench.specs.RunSpec`, and the job's cache key. The first step of the one job path
(resolve -> validate -> execute -> store).

Everything a user can get wrong is checked here, before any model loads, and raised as one
:class:`~dlmbench.errors.DlmbenchError` (one line, exit 2 from the CLI):

- the model and task names (``UnknownModel`` / ``UnknownTask``, with "did you mean");
- the task's settings, ``packing`` and ``dataset`` blocks against their types
  (:mod:`dlmbench.specs.task_settings`; done while the overrides are applied, :func:`dlmbench.specs.split_overrides`);
- the model's settings (card plus overrides) against its family's settings type, named in the family table
  (:mod:`dlmbench.plugins`, ``Family.settings``); a family without one is not checked here (its adapter checks
  when it loads);
- each task ``sampler`` mapping against the same family type (its keys are model settings for one task);
- cross-checks: a ``max_length`` setting above the card's ``max_length`` (positions the network does not have),
  a ``wrap``/``sliding`` packing with no block size at all, a sliding ``stride`` not below the block size,
  and a sample length the card fixes (``length``, ``max_new_tokens``) that the family's sampler cannot produce
  with the steps asked (``Settings.check_sampling``; LLaDA: length a multiple of block_length, steps of the
  number of blocks);
- ``limit`` and ``seed``; the model cards that task settings name (``eval_model``, ``featurizer``).

A ``block_size`` above the model's context is *not* an error: the AR adapter scores long requests with
sliding windows and the diffusion adapters split them into chunks whose bounds add up
(``dlmbench/families/ar/adapter.py: plan_windows``, ``dlmbench/diffusion/adapter.py: split_long``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlmbench.errors import BadSetting
from dlmbench.provenance import package_versions
from dlmbench.registry import Registry
from dlmbench.specs import ModelSpec, RunSpec, TaskSpec, split_overrides
from dlmbench.specs.settings import Settings, validate_settings, without_auto_batch

# versions that change numbers are part of the cache key
_KEY_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "dlmbench")


def resolve(
    model: str,
    task: str,
    *,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    limit: int | None = None,
    specs: Sequence[str | Path] = (),
    registry: Registry | None = None,
) -> RunSpec:
    """Resolve names (or YAML paths) and ``--set`` overrides into a validated :class:`RunSpec`."""
    check_limit_seed(limit, seed)
    reg = registry or Registry.default(specs)
    mspec: ModelSpec = reg.model(model)
    tspec: TaskSpec = reg.task(task)
    if settings is not None and not isinstance(settings, Mapping):
        raise BadSetting(f"settings must be a mapping of setting names to values, not {type(settings).__name__}")
    mspec, tspec = split_overrides(mspec, tspec, settings or {})
    model_settings(mspec)
    validate_task(tspec, mspec)
    tspec = attach_model_cards(tspec, reg)
    return RunSpec(model=mspec, task=tspec, seed=seed, limit=limit)


def check_limit_seed(limit: Any, seed: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadSetting(f"limit (--limit) must be a positive integer, not {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadSetting(f"seed (--seed) must be an integer, not {seed!r}")


def family_settings_type(family: str) -> type[Settings] | None:
    """The settings type the family table names for ``family`` (None: the family has none)."""
    from dlmbench.plugins import family as lookup

    cls = lookup(family).load("settings")
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, Settings)):
        raise BadSetting(f"family {family}: its settings type must subclass dlmbench.specs.settings.Settings, not {cls!r}")
    return cls


def model_settings(spec: ModelSpec) -> Settings | None:
    """``spec.settings`` (card plus overrides) validated against the family's type, and cross-checked with the
    card; None when the family has no settings type."""
    given, _auto = without_auto_batch(spec.settings, f"model {spec.name}")  # auto: picked by the runner
    cls = family_settings_type(spec.family)
    if cls is None:
        return None
    typed = validate_settings(cls, given, f"model {spec.name} ({spec.family})")
    ctx = getattr(typed, "max_length", None)
    if isinstance(ctx, int) and spec.max_length is not None and ctx > spec.max_length:
        raise BadSetting(
            f"model {spec.name}: setting 'max_length' = {ctx} is larger than the card's context length "
            f"{spec.max_length} (the network has no positions beyond it); use at most {spec.max_length}"
        )
    return typed


def validate_task(task: TaskSpec, model: ModelSpec) -> None:
    """The task's typed settings and packing, checked against the model they will run with."""
    st = task.typed_settings
    packing = task.typed_packing
    block = packing.block_size or model.max_length
    if packing.mode in ("wrap", "sliding", "rolling") and block is None:
        raise BadSetting(
            f"task {task.name}: packing mode {packing.mode!r} needs packing.block_size (model {model.name} has no max_length)"
        )
    if packing.mode == "sliding" and packing.stride is not None and block is not None and packing.stride >= block:
        raise BadSetting(f"task {task.name}: packing.stride = {packing.stride} must be smaller than the block size {block}")
    sampler = getattr(st, "sampler", None) or {}
    cls = family_settings_type(model.family)
    if cls is not None:
        where = f"task {task.name}: sampler for model {model.name} ({model.family})"
        given, _auto = without_auto_batch(model.settings, f"model {model.name}")
        typed = validate_settings(cls, {**given, **sampler}, where) if sampler else None
        length = getattr(st, "length", None) or getattr(st, "max_new_tokens", None)
        if isinstance(length, int):  # the sample length is known from the card: check the sampler can produce it
            typed = typed or validate_settings(cls, given, f"model {model.name} ({model.family})")
            typed.check_sampling(length, getattr(st, "steps", None), f"task {task.name} with model {model.name}")


def attach_model_cards(task: TaskSpec, registry: Registry) -> TaskSpec:
    """``task`` with ``<setting>_card`` (the resolved card, without its description) for every setting of its
    type that names a model card: looked up in the run's own registry (so ``--specs`` folders count and a typo
    fails before any work), and carried with the job to other processes and machines."""
    names = type(task.typed_settings).model_card_fields
    if not names:
        return task
    from dlmbench.plugins import require
    from dlmbench.tasks.registry import MODEL_CARD_NEEDS

    extra = {}
    for key in names:
        name = str(getattr(task.typed_settings, key))
        spec = registry.model(name)
        require(spec.family, MODEL_CARD_NEEDS.get(task.type, {}).get(key, ()), f"task {task.name}: {key} {name}")
        card = spec.to_dict()
        card.pop("description", None)
        extra[f"{key}_card"] = card
    return dataclasses.replace(task, settings={**task.settings, **extra})


def cache_key(run: RunSpec) -> str:
    """The job's key (its ``run_id``): the hash of the resolved spec, the versions of the packages that change
    numbers, and the *content* of its inputs (:func:`dlmbench.data.identity.job_identity`: the sha256 of the
    checkpoint's weight, config and tokenizer files and of local data files, the commit of a hub checkpoint).
    Overwriting a checkpoint's weights in place therefore makes a new job; touching a file without changing
    its bytes does not (digests are cached by path, size and mtime).

    The model's ``batch_size`` setting is left out (:func:`keyed_spec`): no number depends on it (every draw is
    seeded per request; ``tests/runner/test_autobatch.py``), exactly as ``--batch-size`` never entered the key,
    so running a finished job again with another batch size, or with ``auto``, reads the finished run back."""
    versions = package_versions()
    return keyed_spec(run).spec_hash({"versions": {k: versions.get(k) for k in _KEY_PACKAGES}, "identity": key_identity(run)})


def keyed_spec(run: RunSpec) -> RunSpec:
    """``run`` as it enters the job key: without the model's ``batch_size`` setting (it changes no number)."""
    if "batch_size" not in run.model.settings:
        return run
    settings = {k: v for k, v in run.model.settings.items() if k != "batch_size"}
    return dataclasses.replace(run, model=dataclasses.replace(run.model, settings=settings))


def spec_key(run: RunSpec) -> str:
    """:func:`cache_key` without the content of the inputs: what names a job's failure record, so that a job
    that failed (say, on a missing data file) and then succeeds once the file exists drops that record."""
    versions = package_versions()
    return keyed_spec(run).spec_hash({"versions": {k: versions.get(k) for k in _KEY_PACKAGES}})


def key_identity(run: RunSpec) -> dict[str, Any]:
    """The content part of :func:`cache_key` (also written to the run's ``spec.yaml``)."""
    from dlmbench.data.identity import checkpoint_identity, job_identity
    from dlmbench.specs import CheckpointRef

    out = job_identity(run.model.checkpoint, run.model.tokenizer, run.task.dataset)
    # a task that scores with a second model (gen-PPL's evaluator, MAUVE's featurizer): its weights are an input
    # too, so retraining the evaluator in place is a new job
    for name in ("eval_model_card", "featurizer_card"):
        card = run.task.settings.get(name)
        if not isinstance(card, dict):
            continue
        for part in ("checkpoint", "tokenizer"):
            if card.get(part):
                ref = CheckpointRef.from_dict(f"task {run.task.name}: {name}.{part}", card[part])
                out[f"{name}.{part}"] = checkpoint_identity(ref).key()
    return out
