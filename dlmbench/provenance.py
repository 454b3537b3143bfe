"""Provenance of every number: package versions, git commit, device, time."""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from dlmbench._version import __version__

_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "safetensors", "gguf", "lm_eval")


@functools.cache
def package_versions() -> dict[str, str]:
    """Versions of the packages that can change numbers (absent ones omitted)."""
    out = {"dlmbench": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@functools.cache
def git_commit() -> str:
    """Commit of the dlmbench source tree (``+dirty`` if modified), or ``unknown`` for an installed wheel."""
    src = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "dlmbench"],
            cwd=src,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
