"""Data-parallel inside one job with ``torch.distributed`` (launched by ``torchrun`` or a Slurm job step).

When ``WORLD_SIZE > 1`` every rank loads the model and runs the task's code; the model is wrapped in a
:class:`ShardedModel`, which answers each scoring call (``conditional_nll``, ``nll``, ``greedy_match``)
for its shard of the requests only — request ``i`` belongs to rank ``i mod world_size``, a fixed rule —
and writes that shard's per-request values to one JSONL file (atomically, under
``<out>/.shards/<run_id>/``). The ranks then exchange their shards (a gloo all-gather, so no shared
file system is needed), every rank merges them back into request order and carries on with the task's
code, and rank 0 alone scores the metrics into the run folder. Because every Monte Carlo draw is seeded
from (run seed, request identity) (:mod:`dlmbench.seeding`), the merged values are those of a single
process, whatever the number of ranks.

A rank that fails makes every rank raise at the same point (the error is part of the exchange), so the
job is recorded as failed and the ranks move on to the next job together. A shard file left by a killed
launch is reused when the same job (same run id, call and world size) is launched again, unless
``--force``; the shard folder is removed once the run folder is written.

Calls that cannot be split without changing their numbers (``sample(n, ...)`` draws its ``n`` samples
from one seed; generation loops call it once per request) run on every rank: same numbers, no speed-up.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_TIMEOUT_ENV = "DLMBENCH_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a data-parallel job (from ``torchrun``'s environment variables)."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info(environ: dict[str, str] | None = None) -> DistInfo | None:
    """``DistInfo`` when launched with ``WORLD_SIZE > 1`` (torchrun sets RANK/WORLD_SIZE/LOCAL_RANK); else None."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1:
        return None
    rank = int(env.get("RANK", "0"))
    return DistInfo(rank=rank, world_size=world, local_rank=int(env.get("LOCAL_RANK", str(rank))))


def is_main_process() -> bool:
    info = dist_info()
    return info is None or info.is_main


def rank_device(device: str, info: DistInfo | None) -> str:
    """``cuda`` means ``cuda:<local rank>`` in a data-parallel job; an explicit index is kept."""
    if info is not None and device == "cuda":
        return f"cuda:{info.local_rank}"
    return device


class ShardError(RuntimeError):
    """A rank of a data-parallel job failed; raised on every rank at the same point."""


class RanksOutOfStep(ShardError):
    """The ranks reached different collective calls (a rank failed outside the shared error checks).

    The job is recorded as failed and the launch stops (the remaining collectives could not be matched);
    launching the same command again resumes with the finished jobs cached.
    """


@dataclass
class DistContext:
    """The process group used for coordination: always gloo (CPU), whatever device the model uses."""

    info: DistInfo
    group: Any = field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    def gather(self, obj: Any, tag: str = "") -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (also a barrier).

        ``tag`` names the point of the code; ranks that reach different points (one failed where the
        others did not) raise :class:`RanksOutOfStep` instead of mixing up their messages.
        """
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, (tag, obj), group=self.group)
        tags = [t for t, _o in out]
        if any(t != tag for t in tags):
            raise RanksOutOfStep(f"ranks out of step: this rank at {tag!r}, others at {sorted(set(tags) - {tag})}")
        return [o for _t, o in out]

    def agree(self, value: Any, tag: str = "agree") -> Any:
        """Rank 0's ``value`` on every rank."""
        return self.gather(value, tag)[0]

    def share(self, error: BaseException | None, what: str) -> None:
        """Every rank learns of a failure: this rank's own exception is re-raised as it was, and a rank
        whose peers failed raises :class:`ShardError` naming the first failing rank and its error."""
        try:
            self.check(f"{type(error).__name__}: {error}" if error is not None else None, what)
        except ShardError:
            if error is not None:
                raise error from None
            raise

    def check(self, error: str | None, what: str) -> None:
        """Raise :class:`ShardError` on every rank if any rank reports an error."""
        errors = self.gather(error, f"check:{what}")
        bad = [(r, e) for r, e in enumerate(errors) if e]
        if bad:
            r, e = bad[0]
            raise ShardError(f"{what}: rank {r} of {self.world_size} failed: {e}")


_CONTEXT: DistContext | None = None


def context(info: DistInfo | None = None) -> DistContext | None:
    """The process-wide :class:`DistContext`, initialising ``torch.distributed`` (env://) on first use."""
    global _CONTEXT
    info = info or dist_info()
    if info is None:
        return None
    if _CONTEXT is not None and _CONTEXT.info == info:
        return _CONTEXT
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=float(os.environ.get(_TIMEOUT_ENV, 24 * 3600)))
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=timeout)
        group = None
    else:
        group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    _CONTEXT = DistContext(info=info, group=group)
    return _CONTEXT


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The requests of one rank: ``i`` with ``i mod world_size == rank`` (fixed, balanced, order kept)."""
    return list(range(rank, n, world_size))


# -- per-shard values: encode, write atomically, merge -------------------------------------------------


def _f(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def encode_nll(indices: Sequence[int], result) -> dict[str, Any]:
    rows = [
        {"index": int(i), "nll": float(result.nll[k]), "n_tokens": int(result.n_tokens[k]), "stderr": _f(result.stderr[k])}
        for k, i in enumerate(indices)
    ]
    meta = {"kind": "nll", "bound": result.bound, "mc_samples": int(result.mc_samples), "settings": result.settings}
    return {"meta": meta, "rows": rows}


def encode_greedy(indices: Sequence[int], result) -> dict[str, Any]:
    rows = [{"index": int(i), "match": bool(result.matches[k])} for k, i in enumerate(indices)]
    return {"meta": {"kind": "greedy", "method": result.method}, "rows": rows}


def merge_shards(shards: Sequence[dict[str, Any]], n: int):
    """Put the shards' rows back in request order: an ``NLLResult`` or a ``GreedyResult`` of ``n`` requests."""
    from dlmbench.interface import GreedyResult, NLLResult

    metas = [s["meta"] for s in shards if s["rows"]]
    rows = sorted((r for s in shards for r in s["rows"]), key=lambda r: r["index"])
    if [r["index"] for r in rows] != list(range(n)):
        raise ShardError(f"shards cover {len(rows)} of {n} requests")
    meta = metas[0]
    if meta["kind"] == "nll":
        return NLLResult(
            nll=np.array([r["nll"] for r in rows], dtype=np.float64),
            n_tokens=np.array([r["n_tokens"] for r in rows], dtype=np.int64),
            stderr=np.array([np.nan if r["stderr"] is None else r["stderr"] for r in rows], dtype=np.float64),
            bound=meta["bound"],
            mc_samples=meta["mc_samples"],
            settings=dict(meta["settings"]),
        )
    return GreedyResult(matches=np.array([r["match"] for r in rows], dtype=bool), method=meta["method"])


def write_shard(path: Path, shard: dict[str, Any]) -> None:
    """One JSONL file: a ``meta`` line, then one line of per-request values per request (atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": shard["meta"]}, default=str) + "\n")
        for r in shard["rows"]:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_shard(path: Path) -> dict[str, Any]:
    lines = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    return {"meta": lines[0]["meta"], "rows": lines[1:]}


def shard_dir(out: Path, run_id: str) -> Path:
    return Path(out) / ".shards" / run_id


class ShardedModel:
    """Wraps an adapter so that each scoring call is split over the ranks and merged back.

    Everything else (``tokenizer``, ``max_length``, ``describe``, ``sample``, ...) is the wrapped
    adapter's, unchanged.
    """

    def __init__(self, inner: Any, ctx: DistContext, folder: Path, *, resume: bool = True):
        self._inner = inner
        self._ctx = ctx
        self._folder = Path(folder)
        self._resume = resume
        self._calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def conditional_nll(self, requests):
        return self._sharded("conditional_nll", list(requests), lambda sub: self._inner.conditional_nll(sub), encode_nll)

    def nll(self, sequences, seeds=None):
        seqs = list(sequences)
        seeds = list(seeds) if seeds is not None else [0] * len(seqs)
        items = list(zip(seqs, seeds))
        return self._sharded("nll", items, lambda sub: self._inner.nll([s for s, _ in sub], [z for _, z in sub]), encode_nll)

    def greedy_match(self, requests):
        return self._sharded("greedy_match", list(requests), lambda sub: self._inner.greedy_match(sub), encode_greedy)

    def _sharded(self, method: str, items: list, call, encode):
        ctx = self._ctx
        k = self._calls
        self._calls += 1
        n = len(items)
        if n == 0:
            return call(items)
        idx = shard_indices(n, ctx.rank, ctx.world_size)
        path = self._folder / f"call-{k:03d}-{method}.shard-{ctx.rank}-of-{ctx.world_size}.jsonl"
        shard, error = None, None
        try:
            if self._resume and path.is_file():
                shard = read_shard(path)
                if [r["index"] for r in shard["rows"]] != idx:
                    shard = None
            if shard is None:
                shard = encode(idx, call([items[i] for i in idx])) if idx else {"meta": None, "rows": []}
                write_shard(path, shard)
        except Exception as e:  # noqa: BLE001 — reported to every rank below
            error = f"{type(e).__name__}: {e}"
        # one exchange: every rank's (error, shard); also the barrier between calls
        gathered = ctx.gather((error, None if error else shard), f"shard:{k}:{method}")
        bad = [(r, e) for r, (e, _s) in enumerate(gathered) if e]
        if bad:
            raise ShardError(f"{method} (call {k}): rank {bad[0][0]} of {ctx.world_size} failed: {bad[0][1]}")
        return merge_shards([s for _e, s in gathered], n)


def _register() -> None:
    from dlmbench.interface import LanguageModel

    LanguageModel.register(ShardedModel)  # isinstance checks see the wrapped adapter's interface


_register()


def remove_shards(out: Path, run_id: str, ctx: DistContext) -> None:
    """Each rank removes its own shard files (works without a shared file system), then the folder."""
    folder = shard_dir(out, run_id)
    for p in folder.glob(f"*.shard-{ctx.rank}-of-{ctx.world_size}.jsonl"):
        p.unlink(missing_ok=True)
    ctx.gather(None, "remove shards")
    if ctx.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.parent.rmdir()
        except OSError:
            pass
