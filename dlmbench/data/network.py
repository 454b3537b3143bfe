"""Is the network there? One answer for checkpoints (:mod:`dlmbench.data.hub`) and datasets
(:mod:`dlmbench.data.sources`).

Without these checks a hub lookup or ``datasets.load_dataset`` retries for 23-46 s before failing. The
user can ask for no network (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE`` for datasets, or
``DLMBENCH_OFFLINE`` for both); otherwise a host is probed once per process (a HEAD request answered
within a few seconds; ``urllib`` honours the usual proxy variables) and, when it does not answer, callers
read only their local caches and fail at once with one line naming the fix.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0

_TRUE = {"1", "on", "yes", "true"}
_VARIABLES = {
    "hub": ("HF_HUB_OFFLINE", "DLMBENCH_OFFLINE"),
    "datasets": ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "DLMBENCH_OFFLINE"),
}
_reachable_cache: dict[str, bool] = {}
_lock = threading.Lock()


def offline_variables_set(kind: str) -> list[str]:
    """The variables asking for no network for ``kind`` (``hub`` or ``datasets``) that are set to a true value."""
    return [v for v in _VARIABLES[kind] if os.environ.get(v, "").strip().lower() in _TRUE]


def offline_requested(kind: str = "datasets") -> bool:
    """Whether the user asked for no network for ``kind`` (as huggingface_hub reads these variables)."""
    return bool(offline_variables_set(kind))


def hub_endpoint() -> str:
    """The Hugging Face endpoint (``HF_ENDPOINT``, default https://huggingface.co), without a trailing slash."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def host_of(url: str) -> str:
    """The host name of ``url`` (for messages)."""
    return urllib.parse.urlparse(url).hostname or ""


def _probe(url: str, timeout: float, out: list[bool]) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
        out.append(True)
    except urllib.error.HTTPError:
        out.append(True)  # the server answered (4xx/5xx): it is reachable
    except Exception:
        out.append(False)


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server of ``url`` answers a HEAD request within ``timeout`` seconds (cached per server).

    The probe runs in a daemon thread joined with ``timeout``, so a slow DNS lookup cannot stall us.
    """
    u = urllib.parse.urlparse(url)
    root = f"{u.scheme}://{u.netloc}/"
    with _lock:
        if root in _reachable_cache:
            return _reachable_cache[root]
        out: list[bool] = []
        t = threading.Thread(target=_probe, args=(root, timeout, out), daemon=True)
        t.start()
        t.join(timeout + 0.5)
        _reachable_cache[root] = bool(out and out[0])
        return _reachable_cache[root]
