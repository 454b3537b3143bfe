"""Resolve: card names (or YAML paths) and ``--set`` overrides -> one validated :class:`~dlmbench.specs.RunSpec`,
and the job's cache key. The first step of the one job path (resolve -> validate -> execute -> store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlmbench.errors import BadSpec
from dlmbench.provenance import package_versions
from dlmbench.registry import Registry
from dlmbench.specs import ModelSpec, RunSpec, TaskSpec, split_overrides
from dlmbench.tasks.registry import attach_model_cards

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
    reg = registry or Registry.default(specs)
    mspec: ModelSpec = reg.model(model)
    tspec: TaskSpec = reg.task(task)
    mspec, tspec = split_overrides(mspec, tspec, settings or {})
    tspec = attach_model_cards(tspec, reg)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise BadSpec(f"--limit must be a positive integer, not {limit!r}")
    if not isinstance(seed, int):
        raise BadSpec(f"--seed must be an integer, not {seed!r}")
    return RunSpec(model=mspec, task=tspec, seed=seed, limit=limit)


def cache_key(run: RunSpec) -> str:
    versions = package_versions()
    return run.spec_hash({"versions": {k: versions.get(k) for k in _KEY_PACKAGES}})


