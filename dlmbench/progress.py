"""Progress bars on stderr: one switch for every bar dlmbench draws.

The job bar of a grid (:mod:`dlmbench.runner.backends`), the adapters' request bars
(:mod:`dlmbench.families.ar.adapter`, :mod:`dlmbench.diffusion.adapter`) and the tokenizing bar of large
corpora (:mod:`dlmbench.data.pipeline`) all come from :func:`bar`, so they follow one rule:
``DLMBENCH_NO_PROGRESS=1`` (set by ``dlmbench run --progress off``, and by the tests) turns every bar
off; otherwise a bar is drawn when stderr is a terminal, or always with ``mode="on"``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

ENV_VAR = "DLMBENCH_NO_PROGRESS"
MODES = ("auto", "on", "off")


def enabled(mode: str = "auto") -> bool:
    """``off``: never; ``on``: always; ``auto``: when stderr is a terminal and ``DLMBENCH_NO_PROGRESS`` is unset/0."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return False
    if mode == "on":
        return True
    return os.environ.get(ENV_VAR, "").strip() in ("", "0") and sys.stderr.isatty()


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
        leave: bool = True, mode: str = "auto") -> Any:
    """A ``tqdm`` bar on stderr, drawn only when :func:`enabled` says so (a disabled bar costs nothing)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=not enabled(mode), dynamic_ncols=True)
