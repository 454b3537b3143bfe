"""The Python API behind the CLI: one job path, spec -> resolve -> validate -> execute -> store.

``evaluate("smollm2-135m", "kjv", limit=100)`` is ``dlmbench run --model smollm2-135m --task kjv
--limit 100``; ``run_suite("zoo")`` is ``dlmbench run --suite zoo``. Both resolve
(and validate) every job before any model loads (:func:`dlmbench.runner.resolve.resolve`), run each job
through :func:`dlmbench.runner.execute.execute` (directly, or through a backend: local, torchrun, Slurm,
Ray) and leave the store (:mod:`dlmbench.store`) to say which jobs are finished. A job is keyed by the hash
of its fully resolved spec plus the package versions that can change its numbers; a finished job with the
same key is read back from the results folder instead of recomputed (``force=True`` recomputes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlmbench import store
from dlmbench.errors import BadSpec
from dlmbench.registry import Registry
from dlmbench.runner.execute import execute
from dlmbench.runner.devices import check_device
from dlmbench.runner.resolve import cache_key, resolve
from dlmbench.runner.suite import Job, SuiteSummary, expand_suite, load_suite
from dlmbench.specs.settings import check_batch_size
from dlmbench.store import MetricRow, RunRecord

__all__ = ["SuiteRun", "cache_key", "evaluate", "execute", "plan_suite", "resolve", "run_suite"]


def evaluate(
    model: str,
    task: str,
    *,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int | str | None = None,
    device: str = "cpu",
    out: str | Path = "results",
    settings: Mapping[str, Any] | None = None,
    specs: Sequence[str | Path] = (),
    force: bool = False,
    registry: Registry | None = None,
    loaded_model: Any = None,
) -> RunRecord:
    """Run ``model`` on ``task`` and write one run folder under ``out``; return its record.

    A user mistake (unknown name, bad setting, a results folder that cannot be written) raises one
    :class:`~dlmbench.errors.DlmbenchError` before any model loads; a failure while running raises as it happened.
    """
    if batch_size is not None:
        batch_size = check_batch_size(batch_size, "batch_size")  # a positive integer or "auto"
    run = resolve(model, task, settings=settings, seed=seed, limit=limit, specs=specs, registry=registry)
    if loaded_model is None:
        check_device(device)
    store.check_writable(out)
    return execute(run, batch_size=batch_size, device=device, out=out, force=force, loaded_model=loaded_model)


@dataclass
class SuiteRun:
    """What :func:`run_suite` did: every job of the grid, and the summary (done, cached, failed, submitted)."""

    jobs: list[Job]
    summary: SuiteSummary

    def rows(self) -> list[MetricRow]:
        """The metric rows of every finished job, in job order (read from the store)."""
        return [r for job in self.jobs if store.is_finished(job.folder) for r in store.read_run(job.folder).rows]


def plan_suite(
    suite: str | Path | Mapping[str, Any],
    *,
    out: str | Path = "results",
    settings: Mapping[str, Any] | None = None,
    limit: int | None = None,
    seeds: Sequence[int] | None = None,
    specs: Sequence[str | Path] = (),
    registry: Registry | None = None,
    where: str | None = None,
    checkpoint: str | Path | None = None,
) -> list[Job]:
    """Every job of a suite, resolved and validated, nothing run: a mistake fails here, before any model loads.

    ``suite`` is a suite YAML file or its mapping (``{"models": [...], "tasks": [...], ...}``, see
    :mod:`dlmbench.runner.suite`); ``settings``/``limit``/``seeds`` override the suite's. ``where`` names the
    suite in error messages. ``checkpoint`` (a folder) replaces the weights of the grid's one model card
    (:meth:`dlmbench.specs.ModelSpec.with_checkpoint`): a new checkpoint scored as that card, under its name.
    """
    if isinstance(suite, Mapping):
        data, where = dict(suite), where or "suite"
    else:
        data, where = load_suite(suite), where or str(suite)
    if seeds is not None:
        data["seeds"] = list(seeds)
    reg = registry or Registry.default(specs)
    if checkpoint is not None:
        models = data.get("models")
        models = [models] if isinstance(models, str) else list(models or [])
        if len(models) != 1:
            raise BadSpec(f"--checkpoint scores one model card with new weights; {where} has {len(models)} models (give one --model)")
        spec = reg.model(str(models[0])).with_checkpoint(checkpoint)
        reg.models[spec.name] = spec
        data["models"] = [spec.name]
    return expand_suite(data, registry=reg, out=Path(out), settings=settings, limit=limit, where=where)


def run_suite(
    suite: str | Path | Mapping[str, Any] | Sequence[Job],
    *,
    out: str | Path = "results",
    settings: Mapping[str, Any] | None = None,
    limit: int | None = None,
    seeds: Sequence[int] | None = None,
    specs: Sequence[str | Path] = (),
    registry: Registry | None = None,
    backend: str = "local",
    device: str = "cpu",
    batch_size: int | str | None = None,
    force: bool = False,
    progress: str = "off",
    slurm: Any = None,
    ray: Any = None,
    log: Callable[[str], None] | None = None,
) -> SuiteRun:
    """Run every job of a suite on ``backend`` (``local``, ``slurm``, ``ray``); a failed job does not stop the others.

    ``suite`` is what :func:`plan_suite` takes, or the jobs it returned. The grid is resolved first, so a typo
    fails before any work. ``slurm``/``ray`` are :class:`~dlmbench.runner.backends.SlurmOptions` /
    :class:`~dlmbench.runner.backends.RayOptions`. Under ``torchrun`` every rank calls this and each job is
    data-parallel over the ranks.
    """
    from dlmbench.runner.backends import JobOptions, run_with_backend

    if isinstance(suite, Sequence) and not isinstance(suite, str) and all(isinstance(j, Job) for j in suite):
        jobs = list(suite)
    else:
        jobs = plan_suite(suite, out=out, settings=settings, limit=limit, seeds=seeds, specs=specs, registry=registry)
    if backend == "local":  # other backends run on machines this one cannot see (dlmbench/runner/devices.py)
        check_device(device)
    store.check_writable(out)  # a read-only --out fails before any work, not after the whole job
    if batch_size is not None:
        batch_size = check_batch_size(batch_size, "batch_size")
    opts = JobOptions(out=str(out), device=device, batch_size=batch_size, force=force)
    summary = run_with_backend(jobs, opts, backend=backend, progress=progress, slurm=slurm, ray=ray, log=log)
    return SuiteRun(list(jobs), summary)
