"""Content identity of checkpoints and data: what a job's key covers instead of paths.

A job must be recomputed when the bytes it reads change, and only then. This module gives each input a
digest of its *content*:

- a **local or package checkpoint** (a folder, or one file): ``sha256`` over the sorted relative names and
  per-file sha256 of its weight files and its tokenizer/config files (:data:`CONTENT_SUFFIXES`; files in
  hidden folders and ``__pycache__`` are skipped; when the card names a ``gguf_file`` only that GGUF counts
  among the ``.gguf`` files). Changing one weight byte, or a tokenizer file, changes the digest; touching a
  file's mtime does not.
- a **hub checkpoint**: the commit the loader will read (the hub's answer for the card's revision when the hub
  is reachable, else the local HF cache's ``refs/<revision>``, or the revision itself when it is a commit).
  Git commits are content-addressed, so the commit is the key. Where the snapshot's files exist locally their
  digest is recorded as provenance (:func:`provenance_identity`), not keyed (it would change with which files
  happen to be downloaded).
- a **local or package data file**: its sha256. HF datasets record the cached snapshot commit where the HF
  cache holds one, URL datasets the digest of the downloaded copy (provenance only: both are known only after
  the data is fetched).

Per-file digests are cached by ``(resolved path, size, mtime_ns)`` in ``$DLMBENCH_CACHE/hashes.json`` (default
``~/.cache/dlmbench/hashes.json``), written atomically (temporary file, rename); a corrupt or unreadable cache
is ignored and rebuilt, and an unwritable one only costs rehashing. So a 16 GB checkpoint is hashed once per
machine, not per run. ``HASH_STATS["files_hashed"]`` counts the files actually read (tests use it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlmbench.specs import CheckpointRef, DatasetSpec

#: file suffixes that make up a checkpoint: weights, then configs and tokenizer files
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".npz", ".npy", ".msgpack", ".h5")
CONFIG_SUFFIXES: tuple[str, ...] = (".json", ".txt", ".model", ".tiktoken", ".yaml", ".yml", ".vocab", ".spm")
CONTENT_SUFFIXES: tuple[str, ...] = WEIGHT_SUFFIXES + CONFIG_SUFFIXES
_SKIP_DIRS = {"__pycache__"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

HASH_STATS: dict[str, int] = {"files_hashed": 0, "cache_hits": 0}
_LOCK = threading.Lock()
_CACHE: dict[str, Any] = {"path": None, "entries": None}
_HUB_COMMITS: dict[tuple[str, str, str | None], str | None] = {}


def cache_file() -> Path:
    """Where per-file digests are cached: ``$DLMBENCH_CACHE/hashes.json`` (default ``~/.cache/dlmbench``)."""
    root = os.environ.get("DLMBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dlmbench")
    return Path(root) / "hashes.json"


def _entries() -> dict[str, str]:
    path = cache_file()
    if _CACHE["path"] != path or _CACHE["entries"] is None:
        entries: dict[str, str] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                entries = {str(k): str(v) for k, v in data["files"].items() if isinstance(v, str)}
        except (OSError, ValueError, UnicodeDecodeError):
            entries = {}  # absent or corrupt: rebuilt as files are hashed
        _CACHE["path"], _CACHE["entries"] = path, entries
    return _CACHE["entries"]


def _save(entries: Mapping[str, str]) -> None:
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps({"version": 1, "files": dict(entries)}, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs rehashing next time


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, served from the digest cache when its (path, size, mtime_ns) match."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}\0{st.st_size}\0{st.st_mtime_ns}"
    with _LOCK:
        hit = _entries().get(key)
    if hit is not None:
        HASH_STATS["cache_hits"] += 1
        return hit
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    digest = h.hexdigest()
    HASH_STATS["files_hashed"] += 1
    with _LOCK:
        entries = _entries()
        # drop stale entries of the same file (older size/mtime) so the cache does not grow without bound
        for k in [k for k in entries if k.split("\0", 1)[0] == str(p)]:
            del entries[k]
        entries[key] = digest
        _save(entries)
    return digest


def content_files(folder: Path, gguf_file: str | None = None) -> list[Path]:
    """The files of a checkpoint folder that make up its content (module docstring), sorted by relative name."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in files:
            if name.startswith(".") or not name.lower().endswith(CONTENT_SUFFIXES):
                continue
            p = Path(root) / name
            if gguf_file and name.lower().endswith(".gguf") and p.relative_to(folder).as_posix() != gguf_file:
                continue
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def tree_sha256(paths: Mapping[str, Path]) -> str:
    """sha256 over ``name\\0file-sha256\\n`` lines, names sorted: one digest for a set of named files."""
    h = hashlib.sha256()
    for name in sorted(paths):
        h.update(f"{name}\0{file_sha256(paths[name])}\n".encode())
    return h.hexdigest()


def path_sha256(path: Path, gguf_file: str | None = None) -> str | None:
    """Digest of a checkpoint folder (its content files) or of a single file; None when it does not exist
    or holds no content file."""
    if path.is_file():
        return tree_sha256({path.name: path})
    if not path.is_dir():
        return None
    files = content_files(path, gguf_file)
    if not files:
        return None
    return tree_sha256({p.relative_to(path).as_posix(): p for p in files})


# ----------------------------------------------------------------------------------------------- hub


def _hf_cache_repo(repo: str, kind: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"{kind}--{repo.replace('/', '--')}"


def cached_commit(repo: str, revision: str | None, kind: str = "models") -> str | None:
    """The commit the local HF cache holds for ``repo`` at ``revision`` (default ``main``), or None."""
    rev = revision or "main"
    base = _hf_cache_repo(repo, kind)
    if _COMMIT.match(rev):
        return rev if (base / "snapshots" / rev).is_dir() else None
    try:
        commit = (base / "refs" / rev).read_text().strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def hub_commit(ref: CheckpointRef) -> str | None:
    """The commit a load of hub checkpoint ``ref`` reads: the hub's answer when it is reachable, else the
    local cache's (:func:`cached_commit`); None when neither knows (the load will then fail with its own
    message). Asked once per process per (repo, revision)."""
    from dlmbench.data.hub import hub_offline

    key = ("models", ref.location, ref.revision)
    if key in _HUB_COMMITS:
        return _HUB_COMMITS[key]
    commit = None
    if ref.revision and _COMMIT.match(ref.revision):
        commit = ref.revision
    elif not hub_offline():
        try:
            from huggingface_hub import HfApi

            commit = HfApi().model_info(ref.location, revision=ref.revision).sha
        except Exception:  # noqa: BLE001 — any hub trouble: fall back to what the cache holds
            commit = None
    commit = commit or cached_commit(ref.location, ref.revision)
    _HUB_COMMITS[key] = commit
    return commit


def hub_dataset_commit(path: str) -> str | None:
    """The commit of hub dataset ``path`` (its ``main``) that a load reads: the hub's answer when it is reachable,
    else the local HF cache's; None when neither knows (the load then fails offline with its own message, or
    downloads it). Asked once per process per dataset."""
    from dlmbench.data.hub import hub_offline

    key = ("datasets", path, None)
    if key in _HUB_COMMITS:
        return _HUB_COMMITS[key]
    commit = None
    if not hub_offline():
        try:
            from huggingface_hub import HfApi

            commit = HfApi().dataset_info(path).sha
        except Exception:  # noqa: BLE001 — any hub trouble: fall back to what the cache holds
            commit = None
    commit = commit or cached_commit(path, None, "datasets")
    _HUB_COMMITS[key] = commit
    return commit


# ------------------------------------------------------------------------------------------ identity


@dataclass(frozen=True)
class Identity:
    """What one input is, by content. ``sha256``: digest of local files (None when there are none);
    ``commit``: the hub commit (hub sources only). ``key()`` is what the job key covers."""

    source: str
    sha256: str | None = None
    commit: str | None = None

    def key(self) -> dict[str, Any]:
        if self.source == "hub":
            return {"commit": self.commit}
        return {"sha256": self.sha256}


def _ref_folder(ref: CheckpointRef) -> Path | None:
    from dlmbench.data.hub import package_folder
    from dlmbench.errors import CheckpointError

    if ref.source == "local":
        return Path(ref.location).expanduser()
    try:
        return package_folder(ref.location)
    except CheckpointError:
        return None  # not installed: the load fails with the install hint


def checkpoint_identity(ref: CheckpointRef) -> Identity:
    """The content identity of a checkpoint (or tokenizer) reference, for the job key (module docstring)."""
    if ref.source == "hub":
        return Identity("hub", commit=hub_commit(ref))
    folder = _ref_folder(ref)
    if folder is None:
        return Identity(ref.source)
    return Identity(ref.source, sha256=path_sha256(folder, ref.gguf_file))


def data_identity(ds: DatasetSpec) -> Identity:
    """The content identity of a task's data for the job key: the file's digest for local and package files, the
    hub commit of an HF dataset (:func:`hub_dataset_commit`: a new revision of the dataset is a new job); nothing
    for URL datasets (known only once fetched, see :func:`data_provenance`)."""
    from dlmbench.data.sources import package_file
    from dlmbench.errors import DlmbenchError

    if ds.source == "local":
        p = Path(ds.path).expanduser()
        if p.is_dir():  # a data folder (e.g. several JSONL files): every file in it
            files = sorted(f for f in p.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts))
            return Identity("local", sha256=tree_sha256({f.relative_to(p).as_posix(): f for f in files}) if files else None)
        return Identity("local", sha256=file_sha256(p) if p.is_file() else None)
    if ds.source == "package":
        try:
            return Identity("package", sha256=file_sha256(package_file(ds.path, ds.file)))
        except DlmbenchError:
            return Identity("package")
    if ds.source == "hf":
        return Identity("hub", commit=hub_dataset_commit(ds.path))
    return Identity(ds.source)


def data_provenance(ds: DatasetSpec) -> dict[str, Any]:
    """What a row records about its data: ``data_sha256`` (file sources, URL copies once downloaded) and
    ``data_revision`` (the hub commit of an HF dataset: the hub's answer, else the local cache's; None when
    neither was known when the job was planned)."""
    from dlmbench.data.sources import cached_path

    if ds.source == "url":
        p = cached_path(ds.path)
        return {"data_sha256": file_sha256(p) if p.is_file() else None}
    if ds.source == "hf":
        return {"data_revision": hub_dataset_commit(ds.path)}
    return {"data_sha256": data_identity(ds).sha256}


def job_identity(model_checkpoint: CheckpointRef, tokenizer: CheckpointRef | None, data: DatasetSpec) -> dict[str, Any]:
    """The content part of a job key: checkpoint, tokenizer (when the card names its own) and data."""
    out: dict[str, Any] = {"checkpoint": checkpoint_identity(model_checkpoint).key(), "data": data_identity(data).key()}
    if tokenizer is not None:
        out["tokenizer"] = checkpoint_identity(tokenizer).key()
    return out


def provenance_identity(model_checkpoint: CheckpointRef, tokenizer: CheckpointRef | None, data: DatasetSpec) -> dict[str, Any]:
    """What every row records (``settings["identity"]``): ``checkpoint_sha256`` (local files; for a hub
    checkpoint the snapshot's files where they exist), ``checkpoint_commit`` (hub), ``tokenizer_sha256`` /
    ``tokenizer_commit`` when the card names its own tokenizer, and the data's (:func:`data_provenance`).
    ``dlmbench regress`` ignores this block by default (a new checkpoint is compared, not refused)."""
    out: dict[str, Any] = {}
    for name, ref in (("checkpoint", model_checkpoint), ("tokenizer", tokenizer)):
        if ref is None:
            continue
        ident = checkpoint_identity(ref)
        if ref.source == "hub":
            out[f"{name}_commit"] = ident.commit
            snap = _hf_cache_repo(ref.location, "models") / "snapshots" / str(ident.commit)
            out[f"{name}_sha256"] = path_sha256(snap, ref.gguf_file) if ident.commit and snap.is_dir() else None
        else:
            out[f"{name}_sha256"] = ident.sha256
    out.update(data_provenance(data))
    return out
