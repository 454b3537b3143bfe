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
    sweeps:                            # optional: several grids, each over its own models / tasks
      - {models: [zoo-llada-kjv], grid: {threshold: [0.9, 0.5], cache: [none, prefix]}}
      - {models: [zoo-ar-kjv], tasks: [genppl-kjv]}

With ``sweeps`` the jobs are the union of one expansion per entry; an entry's ``models``, ``tasks``, ``grid`` and
``settings`` replace (settings: extend) the suite's own, so a setting only one family has is swept only for it.

Each job is keyed by the hash of its fully resolved spec (:func:`dlmbench.runner.resolve.cache_key`); a finished
job is never recomputed unless forced, and since every job is written atomically, a killed suite
resumes where it stopped. A failing job is recorded under ``failures/`` with its error and does not
stop the others.
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmbench import store
from dlmbench.errors import BadSpec
from dlmbench.registry import Registry
from dlmbench.runner.resolve import cache_key, resolve, spec_key
from dlmbench.specs import RunSpec, load_yaml

_SUITE_KEYS = {"name", "description", "models", "tasks", "seeds", "limit", "settings", "grid", "task_settings", "sweeps"}
_SWEEP_KEYS = {"models", "tasks", "grid", "settings"}


@dataclass(frozen=True)
class Job:
    """One resolved job of a grid: its spec, its key (run id) and its run folder in the store."""

    run: RunSpec
    run_id: str
    folder: Path
    grid_values: tuple[tuple[str, Any], ...] = ()

    def failure_path(self, out: Path | str) -> Path:
        """Where a failure of this job is recorded under the results root ``out``: named by the job's spec without
        the content of its inputs (:func:`dlmbench.runner.resolve.spec_key`; the record holds the ``run_id``)."""
        return store.failure_path(out, self.run.model.name, self.run.task.name, spec_key(self.run))

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.grid_values)
        return f"{self.run.model.name} × {self.run.task.name} (seed {self.run.seed}{', ' + extra if extra else ''})"


@dataclass
class SuiteSummary:
    """What a grid run did with each job: done, read back from the store (cached), failed or submitted."""

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
    if not isinstance(data, Mapping):
        raise BadSpec(f"{where}: a suite must be a YAML mapping")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        import difflib

        k = sorted(unknown)[0]
        close = difflib.get_close_matches(k, sorted(_SUITE_KEYS), n=1)
        raise BadSpec(f"{where}: unknown field {k!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    if data.get("name") is not None:
        from dlmbench.specs import check_name

        check_name(where, "suite", data["name"])
    seeds = _as_list(f"{where}: seeds", data.get("seeds", [0]))
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise BadSpec(f"{where}: seeds must be integers, not {s!r}")
    for key in ("settings", "task_settings"):
        if not isinstance(data.get(key) or {}, Mapping):
            raise BadSpec(f"{where}: {key} must be a mapping of setting names to values")
    per_task = data.get("task_settings") or {}
    lim = limit if limit is not None else data.get("limit")
    sweeps = data.get("sweeps")
    if sweeps is None:
        sweeps = [{}]
    elif not isinstance(sweeps, list) or not sweeps or not all(isinstance(sw, Mapping) for sw in sweeps):
        raise BadSpec(f"{where}: sweeps must be a non-empty list of mappings (models, tasks, grid, settings)")
    jobs = []
    for i, sw in enumerate(sweeps):
        at = where if len(sweeps) == 1 and not sw else f"{where}: sweeps[{i}]"
        if set(sw) - _SWEEP_KEYS:
            raise BadSpec(f"{at}: unknown field {sorted(set(sw) - _SWEEP_KEYS)[0]!r} (a sweep has {', '.join(sorted(_SWEEP_KEYS))})")
        models = [str(m) for m in _as_list(f"{at}: models", sw.get("models", data.get("models")))]
        tasks = [str(t) for t in _as_list(f"{at}: tasks", sw.get("tasks", data.get("tasks")))]
        if not models or not tasks:
            raise BadSpec(f"{at}: needs at least one model and one task")
        if not isinstance(sw.get("settings") or {}, Mapping):
            raise BadSpec(f"{at}: settings must be a mapping of setting names to values")
        grid = sw.get("grid", data.get("grid")) or {}
        if not isinstance(grid, Mapping):
            raise BadSpec(f"{at}: grid must map setting names to lists of values")
        grid_keys = tuple(grid)
        combos = [dict(zip(grid_keys, values)) for values in itertools.product(*(_as_list(f"{at}: grid.{k}", grid[k]) for k in grid_keys))]
        base_settings = {**(data.get("settings") or {}), **(sw.get("settings") or {}), **(settings or {})}
        for m in models:
            for t in tasks:
                for combo in combos:
                    for seed in seeds:
                        overrides = {**base_settings, **combo, **{f"task.{k}": v for k, v in (per_task.get(t) or {}).items()}}
                        run = resolve(m, t, settings=overrides, seed=seed, limit=lim, registry=registry)
                        rid = cache_key(run)
                        folder = store.run_folder(out, run.model.name, run.task.name, rid)
                        jobs.append(Job(run, rid, folder, tuple(combo.items())))
    # the same resolved spec twice is one job
    unique: dict[str, Job] = {}
    for j in jobs:
        unique.setdefault(j.run_id, j)
    return list(unique.values())


#: the suites shipped with the package (``dlmbench run --suite NAME``; ``dlmbench list suites``)
PACKAGED_SUITES = Path(__file__).resolve().parents[1] / "cards" / "suites"


def packaged_suites() -> dict[str, Path]:
    """Name -> file of every suite shipped with dlmbench."""
    return {p.stem: p for p in sorted(PACKAGED_SUITES.glob("*.yaml"))}


def find_suite(path_or_name: str | Path) -> Path:
    """The suite file for ``path_or_name``: an existing YAML file, else a suite shipped with the package, by
    name (``zoo``) or by its former path in a clone (``suites/zoo.yaml``), so it works from any folder."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    shipped = packaged_suites()
    name = p.stem if p.suffix in (".yaml", ".yml") and p.parent.name in ("suites", "") else str(path_or_name)
    if name in shipped:
        return shipped[name]
    if p.suffix in (".yaml", ".yml") or "/" in str(path_or_name):
        raise BadSpec(f"suite file {p} does not exist; give a YAML file, or the name of a shipped suite "
                      f"({', '.join(shipped)}; dlmbench list suites)")
    import difflib

    close = difflib.get_close_matches(name, list(shipped), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise BadSpec(f"suite {str(path_or_name)!r} is neither a YAML file nor a shipped suite; {hint}"
                  f"shipped: {', '.join(shipped)} (dlmbench list suites)")


def load_suite(path: str | Path) -> dict[str, Any]:
    """The mapping of a suite YAML file or shipped suite name (checked field by field by :func:`expand_suite`)."""
    p = find_suite(path)
    data = load_yaml(p)
    if not isinstance(data, dict):
        raise BadSpec(f"{p}: a suite must be a YAML mapping")
    return data


def record_failure(out: Path, job: Job, error: BaseException) -> Path:
    """Write the job's failure record (error line and traceback) under ``failures/`` in the store."""
    payload = {
        "run_id": job.run_id,
        "model": job.run.model.name,
        "task": job.run.task.name,
        "seed": job.run.seed,
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return store.write_failure(job.failure_path(out), payload)
