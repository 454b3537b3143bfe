"""The Python API behind the CLI: resolve specs, run one job, store it.

``evaluate("smollm2-135m", "kjv", limit=100)`` is ``dlmbench run --model smollm2-135m --task kjv
--limit 100``. A job is keyed by the hash of its fully resolved spec plus the package versions that can
change its numbers; a finished job with the same key is read back from the results folder instead of
recomputed (``force=True`` recomputes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlmbench.registry import Registry
from dlmbench.runner.execute import execute
from dlmbench.runner.resolve import cache_key, resolve
from dlmbench.store import RunRecord

__all__ = ["cache_key", "evaluate", "execute", "resolve"]


def evaluate(
    model: str,
    task: str,
    *,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    out: str | Path = "results",
    settings: Mapping[str, Any] | None = None,
    specs: Sequence[str | Path] = (),
    force: bool = False,
    registry: Registry | None = None,
    loaded_model: Any = None,
) -> RunRecord:
    """Run ``model`` on ``task`` and write one run folder under ``out``; return its record."""
    run = resolve(model, task, settings=settings, seed=seed, limit=limit, specs=specs, registry=registry)
    return execute(run, batch_size=batch_size, device=device, out=out, force=force, loaded_model=loaded_model)
