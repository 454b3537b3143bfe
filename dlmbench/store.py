"""The results store: one atomic run folder per job, and the tidy table (one row per metric).

Layout under a results root (default ``results/``)::

    runs/<model>/<task>/<run_id>/
        spec.yaml        the fully resolved RunSpec (model card, task card, overrides, seed, limit)
        metrics.jsonl    one tidy row per metric (columns below)
        examples.jsonl   per-request values (nll, n_tokens, correct, ...) for paired comparisons
        log.txt          what was run, when, on what, and how long it took
    failures/<model>/<task>/<key>.json      the error of a job that failed (removed once it succeeds; runner.resolve.spec_key)

What the store guarantees (each promise has a test under ``tests/faults/``):

* **Atomic runs.** A run folder is written to a hidden temporary sibling and renamed into place (``os.replace``
  on a directory is atomic on POSIX), so a crash, a full disk or a kill at any step (:data:`WRITE_STEPS`) never
  leaves a folder that looks complete.
* **``--force`` keeps the old run until the new one is complete.** The old folder is moved aside to
  ``.<run_id>.old`` only once the new one is complete, the new one is moved in, then the old one is removed; an
  error between the two renames moves the old one back, and after a kill there the old one is moved back the
  next time the job is looked at (:func:`recover`). At every moment one complete run exists.
* **One writer per job.** Writers of one job are serialised by a file lock (``.<run_id>.lock`` beside the run
  folder, :func:`job_lock`); a second process waits and then finds the job finished.
* **Damaged folders are never results.** :func:`is_finished` checks the content (``spec.yaml`` present,
  ``metrics.jsonl`` UTF-8, complete lines, each a JSON object with every column of :class:`MetricRow`), not just
  that a file exists. A damaged (corrupt, empty, truncated, non-UTF-8) folder is not finished, so its job runs
  again and replaces it; readers (:func:`run_folders`, :func:`load_table`, ``regress``) skip it and report it
  once, by path, as one ``warning:`` line on stderr.
* **Paths stay inside the results root.** Every path the store builds is proved to lie inside it
  (:func:`inside`); card names are checked where cards load (``dlmbench.specs.check_name``).
* **Strict JSON.** Rows are written and printed with ``null`` for a missing or non-finite number, never ``NaN``
  (:func:`json_safe`).

The tidy table is the union of all complete ``metrics.jsonl`` files; readers get a pandas DataFrame.

The store is the only judge of "is this job finished?" (:func:`is_finished`): the runner, the backends,
``dlmbench run --dry-run`` and the data-parallel ranks all ask it, so they cannot disagree.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
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
        """The row as strict JSON values: a NaN or infinite number anywhere becomes ``None`` (``null``)."""
        return json_safe(asdict(self))


_ROW_FIELDS = frozenset(f.name for f in fields(MetricRow))


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/infinite float (also numpy/pandas ones, and ``pd.NA``) replaced by ``None``,
    recursively through dicts, lists and tuples, so that ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if hasattr(value, "item") and not isinstance(value, (bytes, bytearray)):  # numpy scalars
        try:
            return json_safe(value.item())
        except (ValueError, TypeError):
            pass
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def dumps(value: Any) -> str:
    """Strict JSON (``null`` for missing or non-finite numbers; ``NaN`` never appears)."""
    return json.dumps(json_safe(value), ensure_ascii=False, allow_nan=False, default=str)


@dataclass
class RunRecord:
    """What one finished job produced."""

    run_id: str
    folder: Path
    rows: list[MetricRow]
    examples: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False


def inside(root: Path | str, path: Path | str) -> Path:
    """``path``, after proving that it lies strictly inside the results root ``root`` (both resolved, so ``..``
    and symbolic links count); :class:`ResultsError` otherwise. Every path the store builds passes here."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target == base or not target.is_relative_to(base):
        raise ResultsError(f"refusing to write {path}: it is outside the results folder {root} (check the model/task names)")
    return Path(path)


def run_folder(root: Path, model: str, task: str, run_id: str) -> Path:
    """Where the job ``run_id`` of ``model`` on ``task`` lives under the results root ``root`` (proved inside it)."""
    return inside(root, Path(root) / "runs" / _safe(model) / _safe(task) / _safe(run_id))


def failure_path(root: Path | str, model: str, task: str, run_id: str) -> Path:
    """The failure record of job ``run_id``: ``failures/<model>/<task>/<run_id>.json`` under ``root``."""
    return inside(root, Path(root) / "failures" / _safe(model) / _safe(task) / f"{_safe(run_id)}.json")


def damage(folder: Path | str) -> str | None:
    """Why ``folder`` is not a complete run folder, or ``None`` when it is one.

    Complete: ``spec.yaml`` is there, ``metrics.jsonl`` is UTF-8 and non-empty, ends with a newline (no
    truncated last line), and every non-blank line is a JSON object holding every column of :class:`MetricRow`.
    """
    folder = Path(folder)
    metrics = folder / "metrics.jsonl"
    if not metrics.is_file():
        return "no metrics.jsonl"
    if not (folder / "spec.yaml").is_file():
        return "no spec.yaml"
    try:
        data = metrics.read_bytes()
    except OSError as e:
        return f"metrics.jsonl cannot be read ({e.strerror or e})"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"metrics.jsonl is not UTF-8 (byte {e.start})"
    if not text.strip():
        return "metrics.jsonl is empty"
    if not text.endswith("\n"):
        return "metrics.jsonl is truncated (its last line is incomplete)"
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            return f"metrics.jsonl line {i} is not JSON ({e.msg})"
        if not isinstance(row, dict):
            return f"metrics.jsonl line {i} is not a JSON object"
        missing = _ROW_FIELDS - set(row)
        if missing:
            return f"metrics.jsonl line {i} lacks {', '.join(sorted(missing))}"
    return None


def is_finished(folder: Path | str) -> bool:
    """Whether ``folder`` holds a finished run. The one place this is decided.

    A run folder only appears by the atomic rename of a complete temporary folder (:func:`write_run`), so a
    folder whose name is not a hidden temporary one (``.name.tmp-...``, ``.name.old``) and whose content is
    complete (:func:`damage`) is finished. A run moved aside by a ``--force`` that was killed is moved back
    first (:func:`recover`).
    """
    folder = Path(folder)
    if folder.name.startswith("."):
        return False
    recover(folder)
    return damage(folder) is None


_REPORTED: set[str] = set()


def report_damaged(folder: Path | str, reason: str) -> None:
    """One ``warning:`` line on stderr naming the damaged run folder and why; once per folder per process."""
    key = str(folder)
    if key in _REPORTED:
        return
    _REPORTED.add(key)
    print(f"warning: skipping damaged run folder {folder}: {reason} (its job runs again; --force replaces it)", file=sys.stderr)


def _backup(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def _lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def job_lock(folder: Path | str, timeout: float = -1) -> Iterator[None]:
    """Hold the file lock of the job whose run folder is ``folder`` (``.<run_id>.lock`` beside it).

    Reentrant within a process (one lock object per path); another process waits (``timeout`` -1: forever;
    0: raise ``filelock.Timeout`` at once). The operating system releases it when its holder dies."""
    from filelock import FileLock

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(_lock_path(folder)), is_singleton=True)
    lock.acquire(timeout=timeout)
    try:
        yield
    finally:
        lock.release()


def recover(folder: Path | str) -> None:
    """Undo what a kill in the middle of a ``--force`` swap left (:func:`write_run`): if the run folder is gone
    and the old run waits complete at ``.<run_id>.old``, move it back. Nothing happens while another process
    holds the job's lock (it is in the middle of its swap)."""
    folder = Path(folder)
    backup = _backup(folder)
    if folder.exists() or not backup.is_dir():
        return
    from filelock import Timeout

    try:
        with job_lock(folder, timeout=0):
            if not folder.exists() and backup.is_dir() and damage(backup) is None:
                os.replace(backup, folder)
    except (Timeout, OSError):
        pass


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
    """A path component: characters other than letters, digits, ``-_.`` become ``_``; ``.``/``..``/empty are
    refused (card names are checked where cards load; this is the store's own guard)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    if safe in ("", ".", "..") or safe.startswith("."):
        raise ResultsError(f"{name!r} cannot name a folder of the results store (names start with a letter or digit)")
    return safe


#: The steps of :func:`write_run`, in order; :func:`_step` is called with each name just before it happens
#: (the fault tests make it fail or kill the process there). The last three only happen when an old run folder
#: is replaced (``--force``, or a damaged folder).
WRITE_STEPS = (
    "write spec.yaml",
    "write metrics.jsonl",
    "write examples.jsonl",
    "write log.txt",
    "sync",
    "move old aside",
    "move new in",
    "remove old",
)


def _step(name: str, folder: Path) -> None:
    """Called before each step of :func:`write_run` (a no-op; a hook for fault injection in tests)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    """Write a complete run folder atomically, replacing an old one only once the new one is complete.

    Under the job's lock (:func:`job_lock`): leftovers of a killed earlier write are cleaned (:func:`recover`,
    stale temporaries), the files are written and synced into a hidden temporary folder, then (when an old
    folder exists) the old one is moved aside to ``.<run_id>.old``, the new one moved in and the old one removed.
    An error before the new folder is in place leaves the old one in place (moved back if need be) and no
    temporary; an error while removing the old one is ignored (the new run is complete)."""
    folder = Path(folder)
    if not rows:
        raise ResultsError(f"refusing to write {folder}: a run folder needs at least one metric row")
    with job_lock(folder):
        recover(folder)
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        backup = _backup(folder)
        if folder.exists() and backup.exists():  # a kill after the new run moved in: the old one is stale
            shutil.rmtree(backup, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: a shared results folder must stay readable
        moved_aside = False
        try:
            _step("write spec.yaml", folder)
            _write_text(tmp / "spec.yaml", yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
            _step("write metrics.jsonl", folder)
            _write_text(tmp / "metrics.jsonl", "".join(dumps(r.to_json()) + "\n" for r in rows))
            _step("write examples.jsonl", folder)
            _write_text(tmp / "examples.jsonl", "".join(dumps(e) + "\n" for e in examples))
            _step("write log.txt", folder)
            _write_text(tmp / "log.txt", log)
            _step("sync", folder)
            _fsync_dir(tmp)
            if os.path.lexists(folder):
                _step("move old aside", folder)
                os.replace(folder, backup)
                moved_aside = True
            _step("move new in", folder)
            os.replace(tmp, folder)
            _fsync_dir(folder.parent)
        except BaseException:
            if moved_aside and not os.path.lexists(folder):
                with contextlib.suppress(OSError):
                    os.replace(backup, folder)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if moved_aside:
            try:
                _step("remove old", folder)
                shutil.rmtree(backup)
            except Exception:  # noqa: BLE001 — the new run is complete; a stale backup is removed next time
                pass


def _rows(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "metrics.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_run(folder: Path) -> RunRecord:
    """The rows of a complete run folder (check :func:`is_finished` first); columns unknown to this version
    of :class:`MetricRow` are dropped."""
    folder = Path(folder)
    rows = [MetricRow(**{k: v for k, v in d.items() if k in _ROW_FIELDS}) for d in _rows(folder)]
    return RunRecord(run_id=folder.name, folder=folder, rows=rows, cached=True)


def scan(root: Path | str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(complete run folders, damaged ones with the reason) under the results root ``root``.

    Candidates are the folders ``runs/<model>/<task>/<run_id>/`` whose name does not start with a dot (hidden
    ones are temporaries of a write in progress or killed) and that hold any file; a ``--force`` killed between
    its two renames is recovered first (:func:`recover`)."""
    runs = Path(root) / "runs"
    if not runs.is_dir():
        return [], []
    for backup in runs.glob("*/*/.*.old"):
        recover(backup.parent / backup.name[1 : -len(".old")])
    good, bad = [], []
    for folder in sorted(runs.glob("*/*/*")):
        if folder.name.startswith(".") or not folder.is_dir() or not any(folder.iterdir()):
            continue
        why = damage(folder)
        if why is None:
            good.append(folder)
        else:
            bad.append((folder, why))
    return good, bad


def run_folders(root: Path) -> list[Path]:
    """Every complete run folder under ``root``; damaged ones are reported (:func:`report_damaged`) and skipped,
    temporary ones skipped silently."""
    good, bad = scan(root)
    for folder, why in bad:
        report_damaged(folder, why)
    return good


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
        for rec in _rows(folder):
            rec["limit"] = limit if limit is not _MISSING else (rec.get("settings") or {}).get("limit")
            records.append(rec)
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df["limit"] = df["limit"].astype("Int64")  # integer or <NA> (a full run), never a float
    return df


def _umask() -> int:
    """The process umask (read by setting it and putting it back; there is no getter before Python 3.14's os)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(root: Path | str) -> Path:
    """Create the results root ``root`` if needed and prove a file can be written in it (a probe file, removed);
    :class:`ResultsError` (one line, exit 2) otherwise. Called before any work, so a read-only ``--out`` fails
    at once instead of after the whole job."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = e.strerror or str(e)
        if isinstance(e, (FileExistsError, NotADirectoryError)) or e.errno in (errno.EEXIST, errno.ENOTDIR):
            why = "a file is in the way, not a folder"
        raise ResultsError(f"cannot write to the results folder {root} ({why}); give a writable folder with --out DIR") from None
    return root


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
