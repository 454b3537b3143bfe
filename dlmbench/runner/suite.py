"""Suites: a grid of models × tasks × settings × seeds, run as cached, resumable jobs.

Suite file (``suites/NAME.yaml``)::

    name: zoo-smoke
    models: [smollm2-135m]            # names, aliases or card paths
    tasks: [kjv, kjv-lastword]
    seeds: [0]                         # default [0]
    limit: 100                         # optional, every job
    settings: {batch_size: 8}          # optional, every job (--set overrides these)
    grid: {steps: [16, 64]}            # optional: cartesian product of setting values
    task_settings:                     # optional per-task overrides
      kjv-lastword: {strip_punctuation: true}

Each job is keyed by the hash of its fully resolved spec (:func:`dlmbench.runner.resolve.cache_key`); a finished
job is never recomputed unless forced, and since every job is written atomically, a killed suite
resumes where it stopped. A failing job is recorded under ``failures/`` with its error and does not
stop the others.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmbench.errors import BadSpec
from dlmbench.registry import Registry
from dlmbench.specs import RunSpec, load_yaml

_SUITE_KEYS = {"name", "description", "models", "tasks", "seeds", "limit", "settings", "grid", "task_settings"}


@dataclass(frozen=True)
class Job:
    run: RunSpec
    run_id: str
    folder: Path
    grid_values: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.grid_values)
        return f"{self.run.model.name} × {self.run.task.name} (seed {self.run.seed}{', ' + extra if extra else ''})"


@dataclass
class SuiteSummary:
    done: list[Job] = field(default_factory=list)
    cached: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    submitted: list[Job] = field(default_factory=list)  # handed to a cluster without waiting

    def line(self) -> str:
        line = f"{len(self.done)} done, {len(self.cached)} cached, {len(self.failed)} failed"
        return line + (f", {len(self.submitted)} submitted (still running)" if self.submitted else "")


def _as_list(where: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    if isinstance(value, list):
        return value
    raise BadSpec(f"{where}: expected a list, got {value!r}")


def expand_suite(
    data: Mapping[str, Any],
    *,
    registry: Registry,
    out: Path,
    settings: Mapping[str, Any] | None = None,
    limit: int | None = None,
    where: str = "suite",
) -> list[Job]:
    """All jobs of a suite, resolved and validated (a typo fails before any work)."""
    from dlmbench.runner.resolve import cache_key, resolve
    from dlmbench.store import run_folder

    if not isinstance(data, Mapping):
        raise BadSpec(f"{where}: a suite must be a YAML mapping")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        import difflib

        k = sorted(unknown)[0]
        close = difflib.get_close_matches(k, sorted(_SUITE_KEYS), n=1)
        raise BadSpec(f"{where}: unknown field {k!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    models = [str(m) for m in _as_list(f"{where}: models", data.get("models"))]
    tasks = [str(t) for t in _as_list(f"{where}: tasks", data.get("tasks"))]
    if not models or not tasks:
        raise BadSpec(f"{where}: needs at least one model and one task")
    seeds = _as_list(f"{where}: seeds", data.get("seeds", [0]))
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise BadSpec(f"{where}: seeds must be integers, not {s!r}")
    for key in ("settings", "task_settings"):
        if not isinstance(data.get(key) or {}, Mapping):
            raise BadSpec(f"{where}: {key} must be a mapping of setting names to values")
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise BadSpec(f"{where}: grid must map setting names to lists of values")
    grid_keys = tuple(grid)
    combos = [dict(zip(grid_keys, values)) for values in itertools.product(*(_as_list(f"{where}: grid.{k}", grid[k]) for k in grid_keys))]
    per_task = data.get("task_settings") or {}
    base_settings = {**(data.get("settings") or {}), **(settings or {})}
    lim = limit if limit is not None else data.get("limit")
    jobs = []
    for m in models:
        for t in tasks:
            for combo in combos:
                for seed in seeds:
                    overrides = {**base_settings, **combo, **{f"task.{k}": v for k, v in (per_task.get(t) or {}).items()}}
                    run = resolve(m, t, settings=overrides, seed=seed, limit=lim, registry=registry)
                    rid = cache_key(run)
                    folder = run_folder(out, run.model.name, run.task.name, rid)
                    jobs.append(Job(run, rid, folder, tuple(combo.items())))
    # the same resolved spec twice is one job
    unique: dict[str, Job] = {}
    for j in jobs:
        unique.setdefault(j.run_id, j)
    return list(unique.values())


def load_suite(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise BadSpec(f"suite file {p} does not exist; give a YAML file such as suites/zoo.yaml")
    data = load_yaml(p)
    if not isinstance(data, dict):
        raise BadSpec(f"{p}: a suite must be a YAML mapping")
    return data


def is_finished(job: Job) -> bool:
    return (job.folder / "metrics.jsonl").is_file()


def record_failure(out: Path, job: Job, error: BaseException) -> Path:
    """Write ``failures/<model>/<task>/<run_id>.json`` atomically (error line and traceback)."""
    folder = Path(out) / "failures" / job.folder.parent.parent.name / job.folder.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.run_id}.json"
    tmp = folder / f".{job.run_id}.tmp-{os.getpid()}"
    payload = {
        "run_id": job.run_id,
        "model": job.run.model.name,
        "task": job.run.task.name,
        "seed": job.run.seed,
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return path


def run_jobs(
    jobs: Sequence[Job],
    *,
    out: Path,
    device: str = "cpu",
    batch_size: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> SuiteSummary:
    """Run jobs in order in this process, loading each model once for its consecutive jobs; never stops on a
    failure. The ``local`` backend of :func:`dlmbench.runner.backends.run_with_backend`, without a progress bar."""
    from dlmbench.runner.backends import JobOptions, run_with_backend

    opts = JobOptions(out=str(out), device=device, batch_size=batch_size, force=force)
    return run_with_backend(jobs, opts, backend="local", progress="off", log=log)
