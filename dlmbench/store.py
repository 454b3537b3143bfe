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
    "limit",
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
    """The tidy table: every metric row under ``root`` as a pandas DataFrame (columns: ``COLUMNS``).

    ``limit`` is the run's ``--limit`` as its ``spec.yaml`` records it (``None`` for a full run); a run folder
    whose ``spec.yaml`` lacks it falls back to ``settings.limit``.
    """
    import pandas as pd

    root = Path(root)
    if not root.exists():
        raise ResultsError(f"results folder {root} does not exist; run `dlmbench run ...` first or pass --out DIR")
    records: list[dict[str, Any]] = []
    for folder in run_folders(root):
        limit = _spec_limit(folder)
        for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                rec["limit"] = limit if limit is not _MISSING else (rec.get("settings") or {}).get("limit")
                records.append(rec)
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df["limit"] = df["limit"].astype("Int64")  # integer or <NA> (a full run), never a float
    return df


_MISSING = object()


def _spec_limit(folder: Path) -> Any:
    """``limit`` of the run's ``spec.yaml``, or ``_MISSING`` when the file or the key is absent."""
    try:
        spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return _MISSING
    return spec.get("limit", _MISSING) if isinstance(spec, dict) else _MISSING


#: candidate names of a checkpoint content digest: a column of the table, or a key of ``settings``
DIGEST_FIELDS: tuple[str, ...] = ("checkpoint_digest", "checkpoint_sha256", "checkpoint_hash", "sha256")


def checkpoint_identity(row: Any) -> str:
    """What identifies the weights a row was computed with: the ``checkpoint`` string, plus
    ``@<digest>``: the run's recorded content identity (``settings.identity.checkpoint_sha256``, or the hub
    commit), else for older rows the first digest found among :data:`DIGEST_FIELDS` (a column first, then a
    ``settings`` key). Two rows with different identities are never treated as re-runs of each other.

    ``row`` is a mapping (a record or a pandas row). This is the one place that decides it.
    """
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    settings = get("settings") or {}
    digest = None
    ident = settings.get("identity") if isinstance(settings, dict) else None
    if isinstance(ident, dict):  # the content identity every run records (dlmbench/data/identity.py)
        digest = ident.get("checkpoint_sha256") or ident.get("checkpoint_commit")
        if digest:
            return f"{get('checkpoint') or ''}@{digest}"
    for f in DIGEST_FIELDS:
        v = get(f)
        if v is None or (isinstance(v, float) and v != v):
            v = settings.get(f) if isinstance(settings, dict) else None
        if v not in (None, ""):
            digest = str(v)
            break
    ckpt = str(get("checkpoint") or "")
    return f"{ckpt}@{digest}" if digest else ckpt


#: prefixes of the flattened settings columns of an export
SETTING_PREFIX = "setting."
TASK_SETTING_PREFIX = "task_setting."


def wide_table(df):
    """The tidy table for export: the columns of ``df`` (``settings``/``versions`` as JSON strings, so the
    export reads back), plus ``checkpoint_identity`` (:func:`checkpoint_identity`) and one column per setting:
    ``setting.<key>`` for each key of ``settings`` and ``task_setting.<key>`` for each key of
    ``settings.task_settings`` (nested mappings as dotted keys, e.g. ``setting.sampler.steps``; lists as JSON;
    ``settings.limit`` is the ``limit`` column).
    A row without a setting has an empty cell, so a pivot over the setting columns never merges runs whose
    settings differ."""
    import pandas as pd

    out = df.copy()
    out["checkpoint_identity"] = [checkpoint_identity(r) for r in df.to_dict("records")]
    flat = []
    for s in df["settings"]:
        s = dict(s) if isinstance(s, dict) else {}
        task = s.pop("task_settings", None)
        s.pop("limit", None)  # the ``limit`` column (from spec.yaml)
        row = {SETTING_PREFIX + k: v for k, v in _flatten(s).items()}
        if isinstance(task, dict):
            row.update({TASK_SETTING_PREFIX + k: v for k, v in _flatten(task).items()})
        flat.append(row)
    cols = list(dict.fromkeys(k for r in flat for k in r))
    wide = pd.DataFrame.from_records(flat, columns=cols, index=out.index)
    for col in ("settings", "versions"):
        out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
    return pd.concat([out, wide], axis=1)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple, dict)):
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True, default=str)
        else:
            out[f"{prefix}{k}"] = v
    return out


def export_table(df, path: Path) -> Path:
    """Write :func:`wide_table` of ``df`` to CSV, Parquet or JSON lines (by extension: ``.csv``,
    ``.parquet``, ``.json``/``.jsonl``), atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv", ".json", ".jsonl"):
        raise ResultsError(f"cannot export to {path.name}: use a .csv, .parquet or .json(l) file name")
    out = wide_table(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".parquet":
        # mixed-type setting columns (e.g. a sampler that is a name in one row and absent in another) as text
        for col in out.columns:
            if out[col].dtype == object and out[col].map(type).nunique() > 1:
                out[col] = out[col].map(lambda v: None if v is None else json.dumps(v) if not isinstance(v, str) else v)
        out.to_parquet(tmp, index=False)
    elif path.suffix == ".csv":
        out.to_csv(tmp, index=False)
    else:
        out.to_json(tmp, orient="records", lines=True, force_ascii=False)
    os.replace(tmp, path)
    return path
