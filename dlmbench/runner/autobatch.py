"""``batch_size: auto`` (``--batch-size auto``): the largest batch that fits the device, found once per
(model, device, call kind, sequence length) and cached on disk, then used. lm-eval's ``--batch_size auto``
(``HFLM._detect_batch_size``) does the same on CUDA with accelerate's ``find_executable_batch_size``: start
large, halve on out-of-memory. Here:

- **CUDA**: :func:`largest_fitting` halves from :data:`CUDA_START` rows until one real call of the adapter
  (its own scoring path: one network forward of ``B`` rows of the probe length, Monte Carlo draws set to 1 so
  the ``B`` rows are one forward) runs without ``torch.OutOfMemoryError``; no backward pass (evaluation has none).
- **CPU** (and other devices): a memory-based choice, :func:`cpu_choice`: ``B = floor(RAM_FRACTION x available
  RAM / bytes per sequence)`` capped at :data:`CPU_CAP` (on a CPU throughput stops growing long before memory
  runs out). Bytes per sequence = the larger of a measured one (peak resident memory above the start, sampled
  by a thread during a probe call of :data:`CPU_PROBE_ROWS` rows, divided by the rows) and a floor of
  ``length x vocab x 12`` bytes (float32 logits and their float64 log-probabilities).

Shapes: the probe length is the call's longest sequence (context + continuation, or prefix + sampled length)
rounded up to a power of two and capped at the model's context (:func:`probe_length`), so one probe serves every
call of a task and of tasks of similar length. Kinds: ``score`` (``nll``, ``conditional_nll``, ``greedy_match``:
one forward per batch) and ``sample`` (``sample``, ``infill``): samplers keep a little more per row (float64
categorical draws, a KV cache), so they use half the scoring size of the same length (:data:`SAMPLE_SHARE`).

A result never depends on the size chosen: every Monte Carlo draw and sample is seeded per request
(docs/architecture.md, "Randomness: per request"); ``tests/runner/test_autobatch.py`` checks the rows of batch 1, a fixed batch and
auto are equal. So ``batch_size`` is not part of a job's key (:func:`dlmbench.runner.resolve.cache_key`) and
``dlmbench regress`` ignores it; the row records the size actually used (``settings.batch_size``) and the
probes' choices (``settings.batch_size_auto``).

The cache: ``$DLMBENCH_CACHE/batch_sizes.json`` (default ``~/.cache/dlmbench``), written atomically (temporary
file, rename); an unreadable one is ignored and rebuilt. Its key hashes the model card (without
``batch_size``), the device's description (GPU name and memory, or CPU), torch's version, the kind and length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dlmbench.specs.settings import AUTO_BATCH, check_batch_size, without_auto_batch

CUDA_START = 1024  # rows of the first CUDA probe (halved on out-of-memory)
CPU_CAP = 64  # largest CPU choice
CPU_PROBE_ROWS = 2  # rows of the CPU memory probe
RAM_FRACTION = 0.5  # share of the available RAM a batch may take
SAMPLE_SHARE = 2  # sampling uses the scoring size // SAMPLE_SHARE
LOGIT_BYTES = 12  # per (position, vocabulary id): float32 logits + float64 log-probabilities


def cache_file() -> Path:
    root = os.environ.get("DLMBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dlmbench")
    return Path(root) / "batch_sizes.json"


def read_cache(path: Path | None = None) -> dict[str, Any]:
    path = path or cache_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["entries"]) if isinstance(data, dict) and isinstance(data.get("entries"), dict) else {}
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        return {}


def write_cache_entry(key: str, entry: Mapping[str, Any], path: Path | None = None) -> None:
    """Add one entry, atomically (temporary file, rename); an unwritable cache only costs a new probe later."""
    path = path or cache_file()
    entries = read_cache(path)
    entries[key] = dict(entry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps({"version": 1, "entries": entries}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


# -- pure choices ---------------------------------------------------------------------------------------


def probe_length(longest: int, max_length: int | None) -> int:
    """The call's longest sequence rounded up to a power of two, capped at the model's context."""
    n = 1
    while n < max(1, int(longest)):
        n *= 2
    return min(n, int(max_length)) if max_length else n


def largest_fitting(fits: Callable[[int], bool], start: int = CUDA_START) -> int:
    """The first of ``start, start/2, start/4, ..., 1`` for which ``fits`` is true (accelerate's
    ``find_executable_batch_size``); 0 when not even 1 fits."""
    b = int(start)
    while b >= 1:
        if fits(b):
            return b
        b //= 2
    return 0


def cpu_choice(available_bytes: float, bytes_per_row: float, cap: int = CPU_CAP, fraction: float = RAM_FRACTION) -> int:
    """``floor(fraction x available / bytes_per_row)`` in ``[1, cap]``."""
    if bytes_per_row <= 0:
        return cap
    return int(max(1, min(cap, (fraction * available_bytes) // bytes_per_row)))


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def available_ram() -> float:
    """MemAvailable from ``/proc/meminfo`` (bytes), else the free physical pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2.0**32


def _rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_during(fn: Callable[[], Any], interval: float = 0.0005) -> int:
    """Peak resident memory above the start (bytes) while ``fn()`` runs, sampled by a thread (0 where
    ``/proc`` is missing)."""
    start = _rss()
    peak = [start]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(interval)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return max(0, max(peak[0], _rss()) - start)


# -- the wrapper ----------------------------------------------------------------------------------------


def _with_setting(settings: Any, **update: Any) -> Any:
    if hasattr(settings, "model_copy"):
        fields = type(settings).model_fields
        return settings.model_copy(update={k: v for k, v in update.items() if k in fields})
    out = dict(settings or {})
    out.update({k: v for k, v in update.items() if k == "batch_size" or k in out})
    return out


class AutoBatchModel:
    """An adapter whose batch size is chosen per call: before each call the size for (kind, probe length) is
    looked up (memory, then the disk cache) or probed, written into the adapter's settings, and the call runs.
    Everything else is the adapter's (attributes are forwarded)."""

    def __init__(self, lm: Any, *, device: str, key_base: Mapping[str, Any], cache_path: Path | None = None,
                 cuda_start: int = CUDA_START):
        self._lm = lm
        self._device = str(device)
        self._key_base = dict(key_base)
        self._cache_path = cache_path
        self._cuda_start = int(cuda_start)
        self._chosen: dict[str, int] = {}
        self.batch_size_used: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lm, name)

    @property
    def wrapped(self) -> Any:
        return self._lm

    # -- the interface ------------------------------------------------------------------------------
    def conditional_nll(self, requests):
        return self._run("score", self._score_probe(requests), lambda: self._lm.conditional_nll(requests))

    def nll(self, sequences, seeds=None):
        from dlmbench.interface import ScoreRequest

        reqs = [ScoreRequest((), tuple(s), 0) for s in sequences]
        return self._run("score", self._score_probe(reqs), lambda: self._lm.nll(sequences, seeds))

    def greedy_match(self, requests):
        return self._run("score", self._score_probe(requests), lambda: self._lm.greedy_match(requests))

    def sample(self, n, length, *, prefix=None, **kwargs):
        probe = self._canvas_probe(list(prefix or []) + [None] * int(length))
        return self._run("sample", probe, lambda: self._lm.sample(n, length, prefix=prefix, **kwargs))

    def infill(self, tokens, **kwargs):
        return self._run("sample", self._canvas_probe(list(tokens)), lambda: self._lm.infill(tokens, **kwargs))

    def describe(self) -> dict[str, Any]:
        out = dict(self._lm.describe()) if hasattr(self._lm, "describe") else {}
        if self.batch_size_used is not None:
            out["batch_size"] = self.batch_size_used
        out["batch_size_auto"] = dict(sorted(self._chosen.items()))
        return out

    # -- choosing -----------------------------------------------------------------------------------
    def _score_probe(self, requests) -> Any:
        if not requests:
            return None
        longest = max(requests, key=lambda r: len(r.context) + len(r.continuation))
        return list(longest.context) + list(longest.continuation)

    def _canvas_probe(self, canvas: list[Any]) -> Any:
        filler = next((t for t in canvas if t is not None), None)
        if filler is None:
            tok = getattr(self._lm, "tokenizer", None)
            filler = getattr(tok, "eos_id", None) or getattr(tok, "bos_id", None) or 0
        return [filler if t is None else t for t in canvas] or None

    def _run(self, kind: str, tokens: list[int] | None, call: Callable[[], Any]) -> Any:
        if tokens:
            length = probe_length(len(tokens), getattr(self._lm, "max_length", None))
            b = self._size(kind, length, tokens)
            self._lm.settings = _with_setting(self._lm.settings, batch_size=b)
            self.batch_size_used = b if self.batch_size_used is None else max(self.batch_size_used, b)
        return call()

    def _size(self, kind: str, length: int, tokens: list[int]) -> int:
        label = f"{kind}@{length}"
        if label in self._chosen:
            return self._chosen[label]
        key = self._cache_key(kind, length)
        entry = read_cache(self._cache_path).get(key)
        if isinstance(entry, dict) and isinstance(entry.get("batch_size"), int) and entry["batch_size"] >= 1:
            b = int(entry["batch_size"])
        else:
            score_b, method = self._probe(length, tokens)
            b = max(1, score_b // SAMPLE_SHARE) if kind == "sample" else score_b
            write_cache_entry(key, {"batch_size": b, "kind": kind, "length": length, "method": method,
                                    "model": self._key_base.get("model", {}).get("name"),
                                    "device": self._key_base.get("device")}, self._cache_path)
        self._chosen[label] = b
        return b

    def _cache_key(self, kind: str, length: int) -> str:
        payload = json.dumps({**self._key_base, "kind": kind, "length": length}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def _probe_call(self, rows: int, length: int, tokens: list[int]) -> None:
        """One real scoring call of ``rows`` copies of a ``length``-token sequence, one forward of ``rows`` rows."""
        from dlmbench.interface import ScoreRequest

        seq = [tokens[i % len(tokens)] for i in range(length)]
        req = ScoreRequest(tuple(seq[:1]), tuple(seq[1:]), 0) if length > 1 else ScoreRequest((), tuple(seq), 0)
        before = self._lm.settings
        self._lm.settings = _with_setting(before, batch_size=rows, mc_samples=1)
        try:
            self._lm.conditional_nll([req] * rows)
        finally:
            self._lm.settings = before

    def _probe(self, length: int, tokens: list[int]) -> tuple[int, str]:
        if self._device.startswith("cuda"):
            import torch

            def fits(b: int) -> bool:
                try:
                    self._probe_call(b, length, tokens)
                    return True
                except Exception as e:  # noqa: BLE001 — only out-of-memory means "too large"
                    if not is_oom(e):
                        raise
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    return False

            b = largest_fitting(fits, self._cuda_start)
            if b == 0:
                raise RuntimeError(f"batch_size auto: even one sequence of {length} tokens runs out of memory on {self._device}")
            return b, f"cuda: halved from {self._cuda_start} on out-of-memory"
        measured = peak_rss_during(lambda: self._probe_call(CPU_PROBE_ROWS, length, tokens)) / CPU_PROBE_ROWS
        vocab = int(getattr(getattr(self._lm, "tokenizer", None), "vocab_size", 0) or 0)
        per_row = max(measured, length * vocab * LOGIT_BYTES)
        avail = available_ram()
        return cpu_choice(avail, per_row), f"cpu: {RAM_FRACTION} x {avail / 2**30:.1f} GiB available / {per_row / 2**20:.1f} MiB per row, cap {CPU_CAP}"


def device_key(device: str) -> str:
    """What the memory a batch may take depends on: the GPU's name and memory, or the machine's RAM."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.device(device))
        return f"{p.name} {p.total_memory / 2**30:.1f} GiB"
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        ram = 0.0
    return f"{str(device).split(':')[0]} {ram:.1f} GiB RAM"


# -- loading for a run ----------------------------------------------------------------------------------


def wants_auto(spec: Any, batch_size: Any) -> bool:
    """Whether a job runs with the automatic batch size: ``--batch-size auto``, or ``batch_size: auto`` in the
    card, suite or ``--set`` (a number on the command line wins over the card's ``auto``)."""
    if batch_size is not None:
        return check_batch_size(batch_size, "--batch-size") == AUTO_BATCH
    _given, auto = without_auto_batch(spec.settings, f"model {spec.name}")
    return auto


def load_for_run(spec: Any, *, device: str, batch_size: Any = None) -> Any:
    """:func:`dlmbench.plugins.load_model`, wrapped in :class:`AutoBatchModel` when the job asks for ``auto``."""
    from dlmbench.plugins import load_model

    if batch_size is not None:
        batch_size = check_batch_size(batch_size, "--batch-size")
    if not wants_auto(spec, batch_size):
        given, _auto = without_auto_batch(spec.settings, f"model {spec.name}")
        if given != dict(spec.settings):
            spec = dataclasses.replace(spec, settings=given)
        return load_model(spec, device=device, batch_size=batch_size)
    given, _auto = without_auto_batch(spec.settings, f"model {spec.name}")
    given.pop("batch_size", None)
    spec = dataclasses.replace(spec, settings=given)
    lm = load_model(spec, device=device, batch_size=None)
    import torch

    card = spec.to_dict()
    card.pop("description", None)
    key_base = {"model": card, "device": device_key(device), "torch": torch.__version__}
    return AutoBatchModel(lm, device=device, key_base=key_base)
