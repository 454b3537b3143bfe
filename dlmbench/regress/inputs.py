"""Reading one side of a comparison: a results root, a single run folder, or a tidy-table export.

* a directory holding ``metrics.jsonl``: one run folder;
* any other directory: every complete run folder below it (``runs/<model>/<task>/<run_id>/`` under a
  results root; folders whose name starts with ``.`` are half-written temporaries and skipped; a damaged
  folder (:func:`dlmbench.store.damage`) is reported once on stderr and skipped);
* a ``.csv`` or ``.parquet`` file written by ``dlmbench results --export``: rows only, no per-example
  values, so only stderr-based tests are possible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlmbench.errors import ResultsError
from dlmbench.store import damage, is_finished, report_damaged


@dataclass
class Entry:
    """One tidy row and where it came from; ``load_examples`` gives its run's per-request values."""

    row: dict[str, Any]
    origin: str
    task_type: str | None = None
    load_examples: Callable[[], list[dict[str, Any]]] | None = field(default=None, repr=False)


def load_side(path: str | Path, role: str) -> list[Entry]:
    """Every row of ``path`` (see module docstring); ``role`` ("baseline"/"candidate") is for messages."""
    p = Path(path)
    if not p.exists():
        raise ResultsError(f"{role} {p} does not exist (give a results folder, a run folder, or a .csv/.parquet export)")
    if p.is_file():
        if p.suffix not in (".csv", ".parquet"):
            raise ResultsError(f"{role} {p} is a file but not a .csv or .parquet tidy-table export")
        entries = _load_table_file(p)
    else:
        if (p / "metrics.jsonl").is_file() and not is_finished(p):  # the run folder named is damaged
            raise ResultsError(f"{role} {p} is a damaged run folder: {damage(p)}")
        folders = [p] if is_finished(p) else _find_run_folders(p)
        entries = [e for folder in folders for e in _load_run_folder(folder)]
    if not entries:
        raise ResultsError(f"{role} {p} holds no result rows (no run folder with metrics.jsonl below it)")
    return entries


def _find_run_folders(root: Path) -> list[Path]:
    out = []
    for m in sorted(root.rglob("metrics.jsonl")):
        rel = m.parent.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if is_finished(m.parent):
            out.append(m.parent)
        else:
            report_damaged(m.parent, damage(m.parent) or "incomplete")
    return out


def _load_run_folder(folder: Path) -> list[Entry]:
    rows = []
    for i, line in enumerate((folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ResultsError(f"{folder / 'metrics.jsonl'} line {i} is not JSON ({e.msg})") from None
    task_type = _task_type(folder)
    loader = _examples_loader(folder / "examples.jsonl")
    return [Entry(r, str(folder), task_type, loader) for r in rows]


def _task_type(folder: Path) -> str | None:
    spec_file = folder / "spec.yaml"
    if not spec_file.is_file():
        return None
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    task = spec.get("task") if isinstance(spec, dict) else None
    return str(task["type"]) if isinstance(task, dict) and "type" in task else None


def _examples_loader(path: Path) -> Callable[[], list[dict[str, Any]]]:
    cache: list[list[dict[str, Any]]] = []

    def load() -> list[dict[str, Any]]:
        if not cache:
            out = []
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        out.append(json.loads(line))
            cache.append(out)
        return cache[0]

    return load


def _load_table_file(path: Path) -> list[Entry]:
    import pandas as pd

    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise ResultsError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    needed = {"model", "task", "metric", "value", "stderr"}
    missing = needed - set(df.columns)
    if missing:
        raise ResultsError(f"{path} is not a tidy table: columns {', '.join(sorted(missing))} missing")
    entries = []
    for i, rec in enumerate(df.to_dict("records")):
        row = {k: _clean(v) for k, v in rec.items()}
        for col in ("settings", "versions"):
            if isinstance(row.get(col), str):
                try:
                    row[col] = json.loads(row[col])
                except json.JSONDecodeError:
                    raise ResultsError(f"{path} row {i + 1}: column {col} is not JSON") from None
        row.setdefault("settings", {})
        if isinstance(row.get("higher_is_better"), str):
            row["higher_is_better"] = row["higher_is_better"].strip().lower() == "true"
        entries.append(Entry(row, f"{path}:row {i + 1}"))
    return entries


def _clean(v: Any) -> Any:
    """pandas NaN/NA → None; numpy scalars → Python scalars."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
