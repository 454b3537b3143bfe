"""The settings reference, read from the settings types themselves: ``dlmbench show`` and ``docs/settings.md``.

Every row (name, type with its range or choices, default, meaning) comes from a pydantic field
(:mod:`dlmbench.specs.task_settings`, each family's ``settings`` type in :mod:`dlmbench.plugins`), so the
reference cannot drift from what validation accepts. Regenerate the committed reference with::

    python -m dlmbench.specs.docs > docs/settings.md

(``tests/specs/test_settings_docs.py`` fails when the committed file is stale; ``--check`` does the same here.)
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dlmbench.specs.settings import Settings

DOCS_PATH = "docs/settings.md"
REGENERATE = "python -m dlmbench.specs.docs > docs/settings.md"


@dataclass(frozen=True)
class SettingRow:
    name: str
    type: str
    default: str
    meaning: str
    current: str | None = None  # the value in effect (show), with where it came from


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "None"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (dict, Mapping):
        return "mapping"
    if origin in (list, tuple, Sequence):
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


_BOUNDS = ((annotated_types.Ge, "≥", "ge"), (annotated_types.Gt, ">", "gt"), (annotated_types.Le, "≤", "le"), (annotated_types.Lt, "<", "lt"))


def type_text(field: FieldInfo) -> str:
    """``int ≥ 1 | None``-style text of a field's type with its range."""
    text = _type_name(field.annotation)
    bounds = []
    for meta in field.metadata:
        for kind, sign, attr in _BOUNDS:
            if isinstance(meta, kind):
                bounds.append(f"{sign} {getattr(meta, attr)}")
        if isinstance(meta, annotated_types.MinLen) and meta.min_length > 0:
            bounds.append("non-empty")
    if bounds:
        head, sep, rest = text.partition(" | ")
        text = f"{head} {', '.join(bounds)}{sep}{rest}"
    return text


def value_text(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    return json.dumps(value, ensure_ascii=False, default=str)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def setting_rows(cls: type[Settings], values: Mapping[str, Any] | None = None, source: str = "") -> list[SettingRow]:
    """One row per user-settable field of ``cls``; with ``values`` (the overrides in effect), ``current`` is
    the value that applies (``source`` says where an override came from, e.g. ``card``)."""
    inherited = {n for base in cls.__mro__[1:] if isinstance(base, type) and issubclass(base, Settings) for n in base.model_fields}
    order = [n for n in cls.model_fields if n not in inherited] + [n for n in cls.model_fields if n in inherited]
    rows = []
    for name in order:
        field = cls.model_fields[name]
        if (field.json_schema_extra or {}).get("internal"):
            continue
        current = None
        if values is not None:
            if name in values:
                current = value_text(values[name]) + (f" ({source})" if source else "")
            else:
                current = value_text(_default(field))
        rows.append(SettingRow(name, type_text(field), value_text(_default(field)), (field.description or "").strip(), current))
    return rows


def text_table(rows: Sequence[SettingRow]) -> str:
    """Aligned plain-text table (``dlmbench show``)."""
    with_current = any(r.current is not None for r in rows)
    head = ("name", "type", "default", *(("current",) if with_current else ()), "meaning")
    body = [(r.name, r.type, r.default, *((r.current or "",) if with_current else ()), r.meaning) for r in rows]
    if not body:
        return "  (no settings)\n"
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head) - 1)]
    out = []
    for line in (head, *body):
        cells = [str(c).ljust(w) for c, w in zip(line[:-1], widths)]
        out.append(("  " + "  ".join(cells) + "  " + line[-1]).rstrip())
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[SettingRow]) -> str:
    if not rows:
        return "No settings of its own.\n"
    out = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    out += [f"| `{r.name}` | {_md_cell(r.type)} | `{_md_cell(r.default)}` | {_md_cell(r.meaning)} |" for r in rows]
    return "\n".join(out) + "\n"


def _class_ref(cls: type) -> str:
    return f"`{cls.__module__}.{cls.__qualname__}`"


def _first_line(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split("\n\n")[0].split())


def markdown() -> str:
    """The whole settings reference (``docs/settings.md``): every built-in family, every task type, the
    ``packing`` and ``dataset`` blocks."""
    from dlmbench.plugins import BUILTIN_FAMILIES
    from dlmbench.specs.task_settings import (
        TASK_SETTINGS_TYPES,
        DatasetSettings,
        PackingSettings,
    )

    parts = [
        "# Settings reference\n",
        f"Generated from the settings types by `{REGENERATE}`; do not edit by hand "
        "(`tests/specs/test_settings_docs.py` fails when this file is stale).\n",
        "Set any of these in a card's `settings:` block, with `--set KEY=VALUE` on the command line, or with "
        "`settings={...}` in `dlmbench.evaluate`. A bare `KEY` goes to the task if its type knows it, else to the "
        "model; `model.KEY`, `task.KEY`, `packing.KEY` and `dataset.KEY` pick a side. Every value is checked before "
        "any model loads; `dlmbench show model NAME` / `dlmbench show task NAME` print a card's values.\n",
        "## Model families\n",
    ]
    for fam in BUILTIN_FAMILIES:
        parts.append(f"### `{fam.name}`\n")
        if fam.description:
            parts.append(f"{fam.description}.\n")
        cls = fam.load("settings")
        if cls is None:
            parts.append("This family declares no settings type yet; its adapter checks its settings when it loads.\n")
        else:
            parts.append(f"Type {_class_ref(cls)}.\n")
            parts.append(markdown_table(setting_rows(cls)))
    parts.append("## Task types\n")
    for name, cls in TASK_SETTINGS_TYPES.items():
        parts.append(f"### `{name}`\n")
        parts.append(f"{_first_line(cls)} Type {_class_ref(cls)}.\n")
        parts.append(markdown_table(setting_rows(cls)))
    for title, cls in (("packing", PackingSettings), ("dataset", DatasetSettings)):
        parts.append(f"## Task card `{title}` block\n")
        parts.append(f"{_first_line(cls)} Type {_class_ref(cls)}; `--set {title}.KEY=VALUE` overrides one key.\n")
        parts.append(markdown_table(setting_rows(cls)))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    text = markdown()
    if args == ["--check"]:
        from pathlib import Path

        path = Path(__file__).resolve().parents[2] / DOCS_PATH
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"error: {DOCS_PATH} is stale; regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    if args:
        print("usage: python -m dlmbench.specs.docs [--check]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
