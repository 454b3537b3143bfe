"""The results store: one atomic run folder per job, and the tidy table (one row per metric).

Layout under a results root (default ``results/``)::

    runs/<model>/<task>/<run_id>/
        spec.yaml        the fully resolved RunSpec (model card, task card, overrides, seed, limit)
        metrics.jsonl    one tidy row per metric (columns below)
        examples.jsonl   per-request values (nll, n_tokens, correct, ...) for paired comparisons
        log.txt          what was run, when, on what, and how long it took
    failures/<model>/<task>/<key>.json      the error of a job that failed (removed once it succeeds; runner.resolve.spec_key)

A run folder is written to a temporary sibling and renamed into place (``os.replace`` on a directory is
atomic on POSIX), so a crash or kill never leaves a folder that looks complete. The tidy table is the
union of all ``metrics.jsonl`` files; readers get a pandas DataFrame.

The store is the only judge of "is this job finished?" (:func:`is_finished`): the runner, the backends,
``dlmbench run --dry-run`` and the data-parallel ranks all ask it, so they cannot disagree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlmbench.errors import ResultsError

COLUMNS = [
    "run_id",
    "model",
    "family",
    "checkpoint",
    "task",
    "metric",
    "value",
    "stderr",
    "n",
    "bound",
    "higher_is_better",
    "seed",
    "settings",
    "dataset",
    "split",
    "dlmbench_version",
    "git_commit",
    "torch_version",
    "versions",
    "device",
    "started_at",
    "duration_s",
]


@dataclass
class MetricRow:
    """One observation of the tidy table (docs/architecture.md, "Conventions")."""

    run_id: str
    model: str
    family: str
    checkpoint: str
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    bound: str
    higher_is_better: bool
    seed: int
    settings: dict[str, Any]
    dataset: str
    split: str | None
    dlmbench_version: str
    git_commit: str
    torch_version: str
    versions: dict[str, str]
    device: str
    started_at: str
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("value", "stderr"):
            v = d[k]
            if v is not None and isinstance(v, float) and (v != v):  # NaN → null (valid JSON)
                d[k] = None
        return d


@dataclass
class RunRecord:
    """What one finished job produced."""

    run_id: str
    folder: Path
    rows: list[MetricRow]
    examples: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False


def run_folder(root: Path, model: str, task: str, run_id: str) -> Path:
    """Where the job ``run_id`` of ``model`` on ``task`` lives under the results root ``root``."""
    return Path(root) / "runs" / _safe(model) / _safe(task) / run_id


def is_finished(folder: Path | str) -> bool:
    """Whether ``folder`` holds a finished run. The one place this is decided.

    A run folder only appears by the atomic rename of a complete temporary folder (:func:`write_run`), so
    a folder holding ``metrics.jsonl`` whose name is not a temporary one (``.name.tmp-...``) is finished.
    """
    folder = Path(folder)
    return not folder.name.startswith(".") and (folder / "metrics.jsonl").is_file()


def failure_path(root: Path | str, model: str, task: str, run_id: str) -> Path:
    """The failure record of job ``run_id``: ``failures/<model>/<task>/<run_id>.json`` under ``root``."""
    return Path(root) / "failures" / _safe(model) / _safe(task) / f"{run_id}.json"


def write_failure(path: Path, record: dict[str, Any]) -> Path:
    """Write a failure record atomically (temporary file, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return path


def clear_failure(path: Path) -> None:
    """A job that succeeds after an earlier failure drops its stale failure record."""
    Path(path).unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_run(
    folder: Path,
    spec: dict[str, Any],
    rows: Sequence[MetricRow],
    examples: Iterable[dict[str, Any]] = (),
    log: str = "",
) -> None:
    """Write a complete run folder atomically (temp folder, fsync, rename; replaces an old one)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        _write_text(tmp / "spec.yaml", yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        _write_text(tmp / "metrics.jsonl", "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows))
        _write_text(tmp / "examples.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
        _write_text(tmp / "log.txt", log)
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.getpid()}"
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_run(folder: Path) -> RunRecord:
    folder = Path(folder)
    rows = [MetricRow(**json.loads(line)) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return RunRecord(run_id=folder.name, folder=folder, rows=rows, cached=True)


def run_folders(root: Path) -> list[Path]:
    """Every complete run folder under ``root`` (temporary and half-written folders are skipped)."""
    root = Path(root)
    runs = root / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.parent for p in runs.glob("*/*/*/metrics.jsonl") if is_finished(p.parent))


def load_table(root: Path | str = "results"):
    """The tidy table: every metric row under ``root`` as a pandas DataFrame (columns: ``COLUMNS``)."""
    import pandas as pd

    root = Path(root)
    if not root.exists():
        raise ResultsError(f"results folder {root} does not exist; run `dlmbench run ...` first or pass --out DIR")
    records: list[dict[str, Any]] = []
    for folder in run_folders(root):
        for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    return df


def export_table(df, path: Path) -> Path:
    """Write the tidy table to CSV or Parquet (by extension); settings/versions as JSON strings."""
    path = Path(path)
    out = df.copy()
    for col in ("settings", "versions"):
        out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".parquet":
        out.to_parquet(tmp, index=False)
    elif path.suffix == ".csv":
        out.to_csv(tmp, index=False)
    else:
        raise ResultsError(f"cannot export to {path.name}: use a .csv or .parquet file name")
    os.replace(tmp, path)
    return path
