"""Can this card run with no network? Answered from the card and the local caches, without loading anything.

``dlmbench list`` shows the answer in its ``offline`` column:

* ``yes``: everything is on disk for sure (an installed package's files, a local folder or file that exists,
  data dlmbench generates itself);
* ``cached``: it comes from a hub or a URL, and a copy is in the local cache (Hugging Face hub cache for
  checkpoints, dlmbench's download cache for URLs), so it runs offline on this machine;
* ``no``: it needs the network (a hub id, a Hugging Face dataset, an lm-eval task, a URL not downloaded yet) or
  a local path that does not exist. Hugging Face *datasets* are always ``no``: their cache layout depends on
  the ``datasets`` version and a lookup would have to import it, so the column does not promise what it cannot
  check cheaply.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dlmbench.specs import CheckpointRef, DatasetSpec

YES, CACHED, NO = "yes", "cached", "no"


def _package_has(package: str, file: str | None = None) -> bool:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return file is None or (Path(list(spec.submodule_search_locations)[0]) / file).exists()


def _hub_cached(repo: str, filename: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False
    try:
        found = try_to_load_from_cache(repo, filename, revision=revision)
    except Exception:  # noqa: BLE001 — a malformed id is simply not cached
        return False
    return isinstance(found, str)


def checkpoint_offline(ref: CheckpointRef) -> str:
    """``yes`` / ``cached`` / ``no`` for a model card's checkpoint (see the module docstring)."""
    if ref.source == "package":  # ``pkg`` or ``pkg/inner/path``
        package, _, inner = ref.location.partition("/")
        return YES if _package_has(package, inner or None) else NO
    if ref.source == "local":
        return YES if Path(ref.location).expanduser().exists() else NO
    probe = ref.gguf_file or "config.json"
    return CACHED if _hub_cached(ref.location, probe, ref.revision) else NO


def dataset_offline(ds: DatasetSpec, task_type: str = "") -> str:
    """``yes`` / ``cached`` / ``no`` for a task card's data (see the module docstring)."""
    if task_type == "lmeval":  # lm-eval task definitions read Hugging Face datasets
        return NO
    if ds.source == "generated":  # made by dlmbench's own generator with a fixed seed
        return YES
    if ds.source == "package":
        return YES if _package_has(ds.path, ds.file) else NO
    if ds.source == "local":
        return YES if Path(ds.path).expanduser().exists() else NO
    if ds.source == "url":
        from dlmbench.data.sources import cached_path

        return CACHED if cached_path(ds.path).exists() else NO
    return NO
