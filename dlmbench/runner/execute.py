"""Execute: run one resolved job and write its run folder (the store decides whether it is finished).

Every caller (``dlmbench run``, :func:`dlmbench.api.evaluate`, suites, and the local, torchrun, Slurm and Ray
backends) runs a job through :func:`execute`; it is a plain top-level function so backends can pickle it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import yaml

from dlmbench.provenance import device_description, git_commit, now_iso, package_versions
from dlmbench.runner.resolve import cache_key, key_identity
from dlmbench.specs import RunSpec
from dlmbench.store import MetricRow, RunRecord, is_finished, job_lock, read_run, run_folder, write_run
from dlmbench.tasks.base import require_finite_output


def execute(run: RunSpec, **options: Any) -> RunRecord:
    """Run one job and write its run folder (or read it back when finished and not ``force``); options as
    :func:`_execute`. Outside ``torchrun`` the job's file lock (:func:`dlmbench.store.job_lock`) is held from the
    "is it finished?" check to the written folder, so two processes running the same job are serialised: the
    second one waits and reads the first one's run back."""
    from dlmbench.runner.distributed import dist_info

    if options.get("distributed") is False or dist_info() is None:
        folder = run_folder(Path(options.get("out", "results")), run.model.name, run.task.name, cache_key(run))
        with job_lock(folder):
            return _execute(run, **options)
    return _execute(run, **options)


def _execute(
    run: RunSpec,
    *,
    batch_size: int | str | None = None,
    device: str = "cpu",
    out: str | Path = "results",
    force: bool = False,
    loaded_model: Any = None,
    distributed: bool | None = None,
) -> RunRecord:
    """Run one job and write its run folder (or read it back when finished and not ``force``).

    Under ``torchrun`` (``WORLD_SIZE > 1``; ``distributed=None`` detects it, ``False`` ignores it) every
    rank calls this: the requests are sharded over the ranks and merged (:mod:`dlmbench.runner.distributed`)
    and rank 0 alone writes the run folder; the other ranks return the same rows without writing.
    """
    from dlmbench.runner import distributed as dp
    from dlmbench.runner.autobatch import load_for_run as load_model
    from dlmbench.tasks.registry import task_runner

    run_id = cache_key(run)
    folder = run_folder(Path(out), run.model.name, run.task.name, run_id)
    ctx = dp.context() if distributed is not False else None
    finished = not force and is_finished(folder)
    if ctx is not None:
        finished = ctx.agree(finished)  # rank 0's store decides (no shared file system needed)
    if finished:
        if ctx is not None and ctx.rank != 0:
            return RunRecord(run_id=run_id, folder=folder, rows=[], cached=True)
        return read_run(folder)

    runner = task_runner(run.task.type)
    t0 = time.time()
    started = now_iso()
    if ctx is None:
        lm = loaded_model if loaded_model is not None else load_model(run.model, device=device, batch_size=batch_size)  # auto: wrapped
    else:
        lm, error = loaded_model, None
        if lm is None:
            try:
                lm = load_model(run.model, device=device, batch_size=batch_size)
            except Exception as e:  # noqa: BLE001 — every rank must learn that the load failed
                error = e
        ctx.share(error, f"loading {run.model.name}")
    load_s = time.time() - t0
    load_note = ""
    if loaded_model is not None:  # loaded by the caller (a suite loads a model once for consecutive jobs)
        uses = getattr(lm, "jobs_run", 0) + 1
        try:
            lm.jobs_run = uses
        except AttributeError:  # an object that refuses attributes: just no count
            pass
        real = getattr(lm, "load_seconds", None)
        if isinstance(real, (int, float)):
            load_s = float(real)
            load_note = " (loaded once before this job)" if uses == 1 else f" (loaded once, reused: job {uses} on this load)"
    if ctx is not None:
        lm = dp.ShardedModel(lm, ctx, dp.shard_dir(Path(out), run_id), resume=not force)
        output, error = None, None
        try:
            output = runner(lm, run.task, seed=run.seed, limit=run.limit)
        except dp.ShardError:
            raise
        except Exception as e:  # noqa: BLE001 — a failure after the last sharded call: tell every rank
            error = e
        ctx.share(error, f"running {run.task.name}")
    else:
        output = runner(lm, run.task, seed=run.seed, limit=run.limit)
    # the one place rows and examples are built: a NaN or infinite number fails the job, no run folder is written
    require_finite_output(output, f"{run.model.name} × {run.task.name}")
    duration = time.time() - t0

    versions = package_versions()
    describe = lm.describe() if hasattr(lm, "describe") else {}
    from dlmbench.data.identity import provenance_identity

    identity = provenance_identity(run.model.checkpoint, run.model.tokenizer, run.task.dataset)
    base_settings = {
        **{k: v for k, v in describe.items() if k not in ("family", "bound", "checkpoint")},
        **output.settings,
        "limit": run.limit,
        "task_settings": dict(run.task.settings),
        # content digests (provenance; `dlmbench regress` ignores them by default, see regress.matching)
        "identity": identity,
    }
    rows = [
        MetricRow(
            run_id=run_id,
            model=run.model.name,
            family=run.model.family,
            checkpoint=run.model.checkpoint.describe(),
            task=run.task.name,
            metric=m.metric,
            value=float(m.value),
            stderr=None if m.stderr is None or not math.isfinite(m.stderr) else float(m.stderr),  # undefined for n < 2
            n=int(m.n),
            bound=m.bound,
            higher_is_better=bool(m.higher_is_better),
            seed=run.seed,
            settings={**base_settings, **m.settings},
            dataset=output.dataset,
            split=output.split,
            dlmbench_version=versions["dlmbench"],
            git_commit=git_commit(),
            torch_version=versions.get("torch", "?"),
            versions=versions,
            device=device_description(device),
            started_at=started,
            duration_s=round(duration, 3),
        )
        for m in output.metrics
    ]
    log = (
        f"dlmbench {versions['dlmbench']} (git {git_commit()})\n"
        f"started {started}, model load {load_s:.1f}s{load_note}, total {duration:.1f}s on {device_description(device)}\n"
        f"model {run.model.name} ({run.model.family}, {run.model.checkpoint.describe()})\n"
        f"task {run.task.name} ({run.task.type}), seed {run.seed}, limit {run.limit}\n"
        f"identity {identity}\n"
        f"versions {versions}\n"
        + "".join(f"{r.metric} = {r.value:.6g} ± {r.stderr if r.stderr is not None else float('nan'):.3g} (n={r.n}, {r.bound})\n" for r in rows)
    )
    spec = {"run_id": run_id, **run.to_dict(), "identity": key_identity(run), "batch_size": batch_size, "device": device}
    if ctx is not None:
        spec["world_size"] = ctx.world_size
        log += f"data-parallel over {ctx.world_size} ranks (requests sharded by index, merged before scoring)\n"
    if ctx is None:
        write_run(folder, yaml.safe_load(yaml.safe_dump(spec, sort_keys=False)), rows, output.examples, log)
    else:
        error = None
        if ctx.rank == 0:
            try:
                write_run(folder, yaml.safe_load(yaml.safe_dump(spec, sort_keys=False)), rows, output.examples, log)
            except Exception as e:  # noqa: BLE001 — every rank must learn that the job failed
                error = f"{type(e).__name__}: {e}"
        ctx.check(error, "writing the run folder")
        dp.remove_shards(Path(out), run_id, ctx)
    return RunRecord(run_id=run_id, folder=folder, rows=rows, examples=output.examples, cached=False)
