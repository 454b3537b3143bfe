"""Where the jobs of a grid run: here (``local``), on a Slurm cluster (``slurm``, via submitit) or on Ray.

Every backend runs the same job function, :func:`run_job` (resolve nothing, run one
:class:`~dlmbench.runner.suite.Job`, write its run folder, never raise): finished jobs are skipped
before anything is submitted (unless ``force``), a failed job is recorded under ``failures/`` and does
not stop the others, and the caller gets one :class:`JobResult` per job for the summary.

* ``local``: jobs one after another in this process, loading a model once for its consecutive jobs.
  Under ``torchrun`` every rank runs the same loop and each job is data-parallel over the ranks
  (:mod:`dlmbench.runner.distributed`).
* ``slurm``: one Slurm job-array task per job through ``submitit`` (``pip install 'dlmbench[slurm]'``),
  one GPU per job by default; with ``ranks > 1`` a job is data-parallel over that many tasks.
  ``cluster="local"`` runs the array as local processes (submitit's ``LocalExecutor``), for testing.
* ``ray``: one ``ray.remote`` task per job (``pip install 'dlmbench[ray]'``), on the cluster at
  ``address`` / ``$RAY_ADDRESS``, an already initialised Ray, or a new local instance.

Results go to the results folder given by the caller, which remote workers must see (a shared file
system), exactly as the run folders of a local run.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmbench import progress as bars
from dlmbench import store
from dlmbench.errors import BadSpec, DlmbenchError, NotSupported
from dlmbench.runner.suite import Job, SuiteSummary, record_failure

BACKENDS = ("local", "slurm", "ray")
_EXTRA = {"submitit": "slurm", "ray": "ray"}


def require(module: str, backend: str) -> Any:
    """Import an optional engine or raise one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotSupported(
            f"--backend {backend} needs the {module} package: pip install 'dlmbench[{_EXTRA.get(module, backend)}]' "
            f"(or pip install {module})"
        ) from None


@dataclass(frozen=True)
class JobOptions:
    """What every job of one invocation shares (picklable: shipped to Slurm and Ray workers)."""

    out: str
    device: str = "cpu"
    batch_size: int | str | None = None  # a positive integer or "auto" (dlmbench.runner.autobatch)
    force: bool = False
    cwd: str | None = None  # relative paths in cards resolve against the submitting directory


@dataclass(frozen=True)
class JobResult:
    run_id: str
    label: str
    status: str  # done | cached | failed
    error: str | None = None
    seconds: float = 0.0
    folder: str = ""


def _error_line(e: BaseException) -> str:
    return str(e) if isinstance(e, DlmbenchError) else f"{type(e).__name__}: {e}"


def _failed(job: Job, opts: JobOptions, error: BaseException, t0: float) -> JobResult:
    from dlmbench.runner.distributed import is_main_process

    if is_main_process():
        try:
            record_failure(Path(opts.out), job, error)
        except OSError:
            pass
    return JobResult(job.run_id, job.label, "failed", _error_line(error), time.time() - t0, str(job.folder))


def run_job(job: Job, opts: JobOptions, loaded_model: Any = None) -> JobResult:
    """Run one job (or read it back if finished); record a failure instead of raising. Backend-neutral."""
    from dlmbench.runner.execute import execute
    from dlmbench.runner.distributed import dist_info, is_main_process, rank_device

    t0 = time.time()
    try:
        if opts.cwd and os.path.isdir(opts.cwd) and os.getcwd() != opts.cwd:
            os.chdir(opts.cwd)
        rec = execute(
            job.run,
            batch_size=opts.batch_size,
            device=rank_device(opts.device, dist_info()),
            out=opts.out,
            force=opts.force,
            loaded_model=loaded_model,
        )
        if not rec.cached and is_main_process():
            store.clear_failure(job.failure_path(opts.out))
        return JobResult(job.run_id, job.label, "cached" if rec.cached else "done", None, time.time() - t0, str(rec.folder))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 — a failed job must not stop the others
        from dlmbench.runner.distributed import RanksOutOfStep

        res = _failed(job, opts, e, t0)
        if isinstance(e, RanksOutOfStep):
            raise  # the ranks cannot go on together; a relaunch resumes (finished jobs are cached)
        return res


def run_job_slurm(job: Job, opts: JobOptions) -> JobResult:
    """Entry point of one Slurm array task: with several tasks per job, set up torch.distributed first."""
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return run_job(job, opts)


# -- progress and the summary --------------------------------------------------------------------------


class Progress:
    """The overall bar (jobs finished, with done/cached/failed counts) on stderr, and log lines beside it.

    Each job's own bars (requests scored or sampled) come from the adapters, under this one.
    """

    def __init__(self, total: int, *, enabled: bool, log: Callable[[str], None] | None = None):
        self.total = total
        self.count = 0
        self.summary = SuiteSummary()
        self._log = log
        self.bar = bars.bar(total=total, desc="jobs", unit="job", mode="on" if enabled else "off")

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)
        elif not self.bar.disable:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def result(self, job: Job, res: JobResult) -> None:
        self.count += 1
        k = f"[{self.count}/{self.total}]"
        if res.status == "cached":
            self.summary.cached.append(job)
            self.log(f"{k} cached  {job.label}")
        elif res.status == "done":
            self.summary.done.append(job)
            self.log(f"{k} done    {job.label} in {res.seconds:.1f}s")
        else:
            self.summary.failed.append((job, res.error or "failed"))
            self.log(f"{k} FAILED  {job.label}: {res.error}")
        s = self.summary
        self.bar.set_postfix(done=len(s.done), cached=len(s.cached), failed=len(s.failed), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def progress_enabled(mode: str) -> bool:
    """The job bar: :func:`dlmbench.progress.enabled` on the main process (other torchrun ranks stay quiet)."""
    from dlmbench.runner.distributed import is_main_process

    return is_main_process() and bars.enabled(mode)


# -- backends ---------------------------------------------------------------------------------------------


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 240
    gpus: int = 1  # per job
    ranks: int = 1  # data-parallel processes per job (tasks per node)
    cpus: int | None = None  # per task
    mem_gb: float | None = None
    array_parallelism: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # any other submitit slurm_* parameter
    cluster: str | None = None  # None: Slurm (must be present); "local"/"debug": submitit's local executors
    logs: str | None = None
    wait: bool = True
    poll_s: float | None = None


@dataclass
class RayOptions:
    address: str | None = None
    gpus: float = 1  # per job
    cpus: float = 1  # per job


def _skip_finished(jobs: Sequence[Job], opts: JobOptions, progress: Progress) -> list[Job]:
    """Count finished jobs as cached (never submitted) and return the rest."""
    todo = []
    for job in jobs:
        if not opts.force and store.is_finished(job.folder):
            progress.result(job, JobResult(job.run_id, job.label, "cached", folder=str(job.folder)))
        else:
            todo.append(job)
    return todo


def run_local(jobs: Sequence[Job], opts: JobOptions, progress: Progress) -> SuiteSummary:
    """Jobs in order in this process (each rank, under torchrun), one model load per consecutive group."""
    import json

    from dlmbench.runner.autobatch import load_for_run
    from dlmbench.runner import distributed as dp

    ctx = dp.context()
    device = dp.rank_device(opts.device, dp.dist_info())
    loaded: tuple[str, Any] | None = None
    for job in jobs:
        finished = not opts.force and store.is_finished(job.folder)
        if ctx is not None:
            finished = ctx.agree(finished)
        if finished:
            progress.result(job, JobResult(job.run_id, job.label, "cached", folder=str(job.folder)))
            continue
        t0 = time.time()
        key = json.dumps(job.run.model.to_dict(), sort_keys=True, default=str)
        if loaded is None or loaded[0] != key:
            loaded = None
            m = job.run.model
            progress.log(f"loading {m.name} ({m.family}, {m.checkpoint.describe()}) on {device} ...")
            error: BaseException | None = None
            try:
                with bars.Heartbeat(f"loading {m.name}"):
                    model = load_for_run(m, device=device, batch_size=opts.batch_size)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001
                error = e
            try:
                if ctx is not None:  # every rank learns of a load that failed on one of them
                    ctx.share(error, f"loading {m.name}")
            except Exception as e:  # noqa: BLE001
                error = e
            if error is not None:
                progress.result(job, _failed(job, opts, error, t0))
                continue
            loaded = (key, model)
        progress.log(f"running {job.label} ...")
        with bars.Heartbeat(job.label):
            res = run_job(job, opts, loaded_model=loaded[1])
        progress.result(job, res)
    return progress.summary


def run_slurm(jobs: Sequence[Job], opts: JobOptions, progress: Progress, sopts: SlurmOptions) -> SuiteSummary:
    """One Slurm job-array task per job to run (submitit); wait and collect unless ``wait=False``."""
    submitit = require("submitit", "slurm")
    todo = _skip_finished(jobs, opts, progress)
    if not todo:
        return progress.summary
    cluster = sopts.cluster
    if cluster in (None, "slurm"):
        import shutil

        if shutil.which("sbatch") is None:
            raise NotSupported(
                "--backend slurm: no Slurm here (sbatch is not on PATH); run from a Slurm login node, or pass "
                "--slurm-cluster local to run the job array as local processes"
            )
        cluster = "slurm"
    logs = Path(sopts.logs) if sopts.logs else Path(opts.out) / ".slurm"
    executor = submitit.AutoExecutor(folder=str(logs), cluster=cluster)
    params: dict[str, Any] = {
        "name": "dlmbench",
        "timeout_min": int(sopts.time_min),
        "gpus_per_node": int(sopts.gpus),
        "tasks_per_node": int(sopts.ranks),
        "nodes": 1,
    }
    if sopts.cpus:
        params["cpus_per_task"] = int(sopts.cpus)
    if sopts.mem_gb:
        params["mem_gb"] = float(sopts.mem_gb)
    if sopts.partition:
        params["slurm_partition"] = sopts.partition
    if sopts.array_parallelism:
        params["slurm_array_parallelism"] = int(sopts.array_parallelism)
    params.update({(k if k.startswith("slurm_") else f"slurm_{k}"): v for k, v in sopts.extra.items()})
    try:
        executor.update_parameters(**params)
    except (NameError, ValueError, TypeError) as e:
        raise BadSpec(f"--backend slurm: bad option: {str(e).splitlines()[0]}") from None
    sjobs = executor.map_array(run_job_slurm, todo, [opts] * len(todo))
    ids = sorted({j.job_id.split("_")[0] for j in sjobs})
    progress.log(f"submitted {len(sjobs)} job(s) as Slurm array {', '.join(ids)} ({cluster}); logs under {logs}")
    if not sopts.wait:
        progress.summary.submitted.extend(todo)
        return progress.summary
    by_id = {id(s): job for s, job in zip(sjobs, todo)}
    poll = sopts.poll_s if sopts.poll_s is not None else (0.5 if cluster != "slurm" else 15.0)
    try:
        for sjob in submitit.helpers.as_completed(sjobs, poll_frequency=poll):
            job = by_id[id(sjob)]
            try:
                res = sjob.results()[0]  # task 0 (rank 0) reports for a data-parallel job
            except Exception as e:  # noqa: BLE001 — killed, timed out, preempted: recorded here
                res = _failed(job, opts, RuntimeError(f"Slurm job {sjob.job_id}: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}"), time.time())
            progress.result(job, res)
    except KeyboardInterrupt:
        progress.log(f"stopped waiting; the Slurm jobs keep running (scancel {' '.join(ids)} to stop them)")
        raise
    return progress.summary


def run_ray(jobs: Sequence[Job], opts: JobOptions, progress: Progress, ropts: RayOptions) -> SuiteSummary:
    """One ``ray.remote`` task per job to run; results collected as they finish."""
    ray = require("ray", "ray")
    todo = _skip_finished(jobs, opts, progress)
    if not todo:
        return progress.summary
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False}
        address = ropts.address or os.environ.get("RAY_ADDRESS")
        if address:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    try:
        remote = ray.remote(num_gpus=ropts.gpus, num_cpus=ropts.cpus, max_retries=0)(run_job)
        refs = {remote.remote(job, opts): job for job in todo}
        progress.log(f"submitted {len(refs)} job(s) to Ray ({'new local instance' if started and not ropts.address else 'cluster'})")
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                job = refs[ref]
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 — a worker that died, ...
                    res = _failed(job, opts, RuntimeError(f"Ray task: {str(e).strip().splitlines()[0]}"), time.time())
                progress.result(job, res)
    finally:
        if started:
            ray.shutdown()
    return progress.summary


def run_with_backend(
    jobs: Sequence[Job],
    opts: JobOptions,
    *,
    backend: str = "local",
    progress: str = "auto",
    slurm: SlurmOptions | None = None,
    ray: RayOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> SuiteSummary:
    """Run ``jobs`` on ``backend``; return the summary (done, cached, failed, submitted)."""
    from dlmbench.runner.distributed import dist_info

    if backend not in BACKENDS:
        raise BadSpec(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "local" and dist_info() is not None:
        raise BadSpec(f"--backend {backend} submits the jobs from one process; do not launch it with torchrun")
    if backend != "local":
        opts = JobOptions(**{**opts.__dict__, "out": str(Path(opts.out).resolve()), "cwd": opts.cwd or os.getcwd()})
    bar = Progress(len(jobs), enabled=progress_enabled(progress), log=log)
    try:
        if backend == "local":
            return run_local(jobs, opts, bar)
        if backend == "slurm":
            return run_slurm(jobs, opts, bar, slurm or SlurmOptions())
        return run_ray(jobs, opts, bar, ray or RayOptions())
    finally:
        bar.close()
