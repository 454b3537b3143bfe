"""Typed settings: the base class every family's and every task type's settings derive from.

One pydantic v2 model per family (``dlmbench/families/<name>/settings.py``, named in the family table,
:mod:`dlmbench.plugins`) and per task type. Each default is written once, in the field definition, with its
type, range or choices, and a ``description`` (shown by ``dlmbench show`` and in the generated settings
reference). ``extra="forbid"`` turns a misspelled key into an error; :func:`validate_settings` turns any
validation failure into one line that names the key, the value and what is allowed (with "did you mean" for
an unknown key), raised as :class:`~dlmbench.errors.BadSetting` before any model loads.

Cards and ``--set`` hold *overrides*; the typed object holds overrides plus defaults. What a result row
records is decided by the code that writes it (see :mod:`dlmbench.runner.execute`), not here.

This module must not import torch (validation stays cheap).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from dlmbench.errors import BadSetting

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """Base of all settings types: unknown keys are errors, values are validated, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, protected_namespaces=())

    def overrides(self) -> dict[str, Any]:
        """The values that were given explicitly (card or ``--set``), not filled from defaults."""
        return self.model_dump(exclude_unset=True)


def _one_line(err: dict[str, Any], cls: type[Settings], where: str, values: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    key = str(err["loc"][0]) if err.get("loc") else ""
    if err.get("type") == "extra_forbidden":
        known = sorted(cls.model_fields)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        return f"{where}: unknown setting {loc!r}; {hint}"
    value = err.get("input", values.get(key))
    msg = str(err.get("msg", "invalid value"))
    field = cls.model_fields.get(key)
    allowed = ""
    if field is not None and field.description and "allowed" not in msg:
        allowed = f" ({field.description.split('.')[0].strip()})"
    return f"{where}: setting {loc!r} = {value!r} is not allowed: {msg}{allowed}"


def validate_settings(cls: type[S], values: Mapping[str, Any] | None, where: str) -> S:
    """``cls(**values)``, or :class:`BadSetting` with one line naming the first bad key (``where`` says whose)."""
    values = dict(values or {})
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        errors = e.errors()
        raise BadSetting(_one_line(errors[0], cls, where, values) + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from None
