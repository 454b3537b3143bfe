"""Progress on stderr: one switch for every bar dlmbench draws, and log lines where no terminal is watching.

The job bar of a grid (:mod:`dlmbench.runner.backends`), the adapters' request bars
(:mod:`dlmbench.families.ar.adapter`, :mod:`dlmbench.diffusion.adapter`) and the tokenizing bar of large
corpora (:mod:`dlmbench.data.pipeline`) all come from :func:`bar`, so they follow one rule:

* ``DLMBENCH_NO_PROGRESS=1`` (set by ``dlmbench run --progress off``, and by the tests) turns all of it off;
* on a terminal (``mode="auto"``, stderr a TTY) or with ``mode="on"``: a ``tqdm`` bar;
* elsewhere (CI logs, ``nohup``, Slurm output files; ``mode="auto"``): a :class:`LogBar`, which prints one
  plain line at most every ``DLMBENCH_PROGRESS_EVERY`` seconds (default 30) with done/total, rate and ETA,
  so a long job is never silent until it ends.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

ENV_VAR = "DLMBENCH_NO_PROGRESS"
EVERY_VAR = "DLMBENCH_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0
MODES = ("auto", "on", "off")


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")


def _silenced() -> bool:
    return os.environ.get(ENV_VAR, "").strip() not in ("", "0")


def enabled(mode: str = "auto") -> bool:
    """Whether a drawn (``tqdm``) bar is shown: ``off`` never; ``on`` always; ``auto`` when stderr is a terminal
    and ``DLMBENCH_NO_PROGRESS`` is unset/0."""
    _check(mode)
    if mode == "off":
        return False
    if mode == "on":
        return True
    return not _silenced() and sys.stderr.isatty()


def log_lines(mode: str = "auto") -> bool:
    """Whether progress goes out as periodic log lines instead: ``auto`` mode, stderr not a terminal, not silenced."""
    _check(mode)
    return mode == "auto" and not _silenced() and not sys.stderr.isatty()


def every_s() -> float:
    """Seconds between two log lines (``DLMBENCH_PROGRESS_EVERY``, default 30; a bad value falls back to 30)."""
    try:
        value = float(os.environ.get(EVERY_VAR, DEFAULT_EVERY_S))
    except ValueError:
        return DEFAULT_EVERY_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_EVERY_S


def format_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3725`` → ``1h02m``; under a minute: ``42s``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class LogBar:
    """The part of ``tqdm``'s interface dlmbench uses, printing a line at most every ``every`` seconds.

    A line reads ``desc: 120/500 (24%), 3.2 seq/s, ETA 1m58s`` (without a total: ``desc: 120 seq, 3.2 seq/s``).
    A last line is printed on :meth:`close` when the work took longer than one interval, so the log shows
    that it finished. ``clock`` and ``write`` are injectable for tests.
    """

    disable = False

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 every: float | None = None, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.every = every_s() if every is None else every
        self._clock = clock
        self._write = write or _print_line
        self._start = clock()
        self._last = self._start
        self._printed = False
        self._closed = False
        self.postfix = ""

    def line(self) -> str:
        elapsed = self._clock() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            pct = 100.0 * self.n / self.total
            text = f"{head}{self.n}/{self.total} ({pct:.0f}%), {rate:.3g} {self.unit}/s"
            if 0 < rate and self.n < self.total:
                text += f", ETA {format_duration((self.total - self.n) / rate)}"
        else:
            text = f"{head}{self.n} {self.unit}, {rate:.3g} {self.unit}/s"
        text += f", elapsed {format_duration(elapsed)}"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            self._printed = True
            self._write(self.line())

    def set_postfix(self, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def write(self, msg: str, file: Any = None) -> None:
        print(msg, file=file or sys.stderr, flush=True)

    def refresh(self) -> None:  # tqdm compatibility
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._printed or self._clock() - self._start >= self.every:
            self._write(self.line() + " — finished")

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("LogBar without an iterable is not iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_last_line_at = [0.0]  # monotonic time of the last progress line printed (LogBar or Heartbeat)


def _print_line(line: str) -> None:
    _last_line_at[0] = time.monotonic()
    print(line, file=sys.stderr, flush=True)


class Heartbeat:
    """While a job runs with :func:`log_lines` on, a line ``label: still running, elapsed 1m30s`` whenever no other
    progress line was printed for ``every`` seconds (a sampler or a model load with no bar of its own is
    never silent for longer). A daemon thread; a no-op when log lines are off."""

    def __init__(self, label: str, *, mode: str = "auto", every: float | None = None):
        self.label = label
        self.every = every_s() if every is None else every
        self.active = log_lines(mode) and self.every > 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(min(self.every, 1.0)):
            now = time.monotonic()
            if now - max(_last_line_at[0], start) >= self.every:
                _print_line(f"{self.label}: still running, elapsed {format_duration(now - start)}")

    def __enter__(self) -> Heartbeat:
        if self.active:
            self._thread = threading.Thread(target=self._loop, name="dlmbench-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
        leave: bool = True, mode: str = "auto") -> Any:
    """A progress reporter on stderr: a ``tqdm`` bar where :func:`enabled`, a :class:`LogBar` where
    :func:`log_lines`, else a disabled ``tqdm`` (costs nothing)."""
    if log_lines(mode):
        return LogBar(iterable, total=total, desc=desc, unit=unit)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=not enabled(mode), dynamic_ncols=True)
