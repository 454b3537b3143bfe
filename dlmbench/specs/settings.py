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

    def check_sampling(self, length: int, steps: int | None, where: str) -> None:
        """Raise :class:`~dlmbench.errors.BadSetting` if sampling ``length`` tokens in ``steps`` steps (None: the
        settings' own) cannot run with these settings. Called at resolve time for tasks whose sample length is
        known from the card, so such a mistake exits 2 before any model loads; no-op unless a family overrides it."""


def _public_fields(cls: type[Settings]) -> list[str]:
    """Fields a user may set: those not marked ``json_schema_extra={"internal": True}`` (filled by dlmbench)."""
    return [k for k, f in cls.model_fields.items() if not (f.json_schema_extra or {}).get("internal")]


def _one_line(err: dict[str, Any], cls: type[Settings], where: str, values: Mapping[str, Any], msg: str) -> str:
    loc = key = str(err["loc"][0]) if err.get("loc") else ""
    if err.get("type") == "extra_forbidden":
        known = sorted(_public_fields(cls))
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
        return f"{where}: unknown setting {loc!r} = {err.get('input')!r}; {hint}"
    if not key:  # a check across fields (model_validator): its own message says what is wrong
        return f"{where}: {msg.removeprefix('Value error, ')}"
    if err.get("type") == "missing":
        return f"{where}: setting {loc!r} is required"
    value = err.get("input", values.get(key))
    field = cls.model_fields.get(key)
    allowed = ""
    if field is not None and field.description and "allowed" not in msg:
        allowed = f" ({field.description.strip().rstrip('.')})"
    return f"{where}: setting {loc!r} = {value!r} is not allowed: {msg}{allowed}"


def validate_settings(cls: type[S], values: Mapping[str, Any] | None, where: str) -> S:
    """``cls(**values)``, or :class:`BadSetting` with one line naming the first bad key (``where`` says whose)."""
    values = dict(values or {})
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        # one line per setting: the members of a union (``"auto" | int``) each report an error for the same key
        by_key: dict[str, list[dict[str, Any]]] = {}
        for err in e.errors():
            by_key.setdefault(str(err["loc"][0]) if err.get("loc") else "", []).append(err)
        first = next(iter(by_key.values()))
        msg = " or ".join(dict.fromkeys(str(x.get("msg", "invalid value")).removeprefix("Value error, ") for x in first))
        more = f" (and {len(by_key) - 1} more)" if len(by_key) > 1 else ""
        raise BadSetting(_one_line(first[0], cls, where, values, msg) + more) from None


#: the one word ``batch_size`` takes besides a positive integer (:mod:`dlmbench.runner.autobatch`)
AUTO_BATCH = "auto"


def check_batch_size(value: Any, where: str) -> int | str:
    """A batch size as given (``--batch-size``, a card's or suite's ``batch_size``, ``--set batch_size=``): a
    positive integer (``int`` or digits) or ``"auto"`` (any case); anything else is one :class:`BadSetting` line,
    with "did you mean 'auto'?" for a near miss (``auot``), raised before any model loads."""
    if isinstance(value, bool):
        raise BadSetting(f"{where}: batch_size must be a positive integer or 'auto', not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise BadSetting(f"{where}: batch_size must be a positive integer or 'auto', not {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == AUTO_BATCH:
            return AUTO_BATCH
        if text.lstrip("+-").isdigit():
            return check_batch_size(int(text), where)
        close = difflib.get_close_matches(text.lower(), [AUTO_BATCH], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadSetting(f"{where}: batch_size must be a positive integer or 'auto', not {value!r}{hint}")
    raise BadSetting(f"{where}: batch_size must be a positive integer or 'auto', not {value!r}")


def without_auto_batch(settings: Mapping[str, Any], where: str) -> tuple[dict[str, Any], bool]:
    """``settings`` with ``batch_size: auto`` taken out (the typed settings then hold their default until the
    runner picks the size), and whether it was there; a bad ``batch_size`` raises :class:`BadSetting`."""
    out = dict(settings or {})
    if "batch_size" not in out:
        return out, False
    value = check_batch_size(out["batch_size"], where)
    if value == AUTO_BATCH:
        del out["batch_size"]
        return out, True
    out["batch_size"] = value
    return out, False
