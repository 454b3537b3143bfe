"""One exception type per kind of user mistake.

Every error a user can cause derives from :class:`DlmbenchError`. The CLI catches these and prints
``error: <message>`` on one line (exit status 2), never a traceback. Messages say what was wrong and
how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DlmbenchError(Exception):
    """Base class of all user-facing errors (printed as one line by the CLI)."""

    exit_code = 2


class UnknownName(DlmbenchError):
    """A name (model, task, setting, family, ...) that is not known."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = ""):
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        elif known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            msg += f"; known: {shown}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.name = name


class UnknownModel(UnknownName):
    def __init__(self, name: str, known: Iterable[str]):
        super().__init__("model", name, known, "see `dlmbench list models`")


class UnknownTask(UnknownName):
    def __init__(self, name: str, known: Iterable[str]):
        super().__init__("task", name, known, "see `dlmbench list tasks`")


class BadSpec(DlmbenchError):
    """A model card, task card, suite or override that does not validate."""


class BadSetting(BadSpec):
    """A setting (card ``settings:``, ``--set KEY=VALUE``, API ``settings=``) that is unknown or out of range."""


class CheckpointError(DlmbenchError):
    """Weights that cannot be found, downloaded or matched to the architecture."""


class DatasetUnavailable(DlmbenchError):
    """A dataset that cannot be loaded (offline hub, missing file, ...)."""


class NotSupported(DlmbenchError):
    """An operation the model family does not support (e.g. infilling with an AR model)."""


class NonFiniteResult(DlmbenchError):
    """A model produced NaN or infinite numbers (broken weights, an overflow in low precision, ...).

    A failure at run time, not a user mistake (exit 1): the job is recorded as failed and no result row is
    written, because a non-finite number is never a result (``value: null`` would pass unnoticed)."""

    exit_code = 1


class ResultsError(DlmbenchError):
    """A results folder that is missing or unreadable."""
