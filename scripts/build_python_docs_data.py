"""Rebuild dlmbench/cards/data/python_docs/sentences.jsonl: out-of-domain English prose for the zoo.

The zoo models are trained on the King James Bible; finding 1 is also measured on text unlike it. This script
takes the prose of the Python Language Reference as shipped with CPython (``pydoc_data.topics``, the text of
``help('if')`` and friends; PSF License, see SOURCE.md next to the data) and writes one sentence per line:

* topics in their stored order; each topic split into paragraphs at blank lines;
* only prose paragraphs: no indented line (code, grammar rules), no heading underline (``***``, ``===``, ``---``);
* whitespace collapsed; paragraphs split into sentences after ``.``, ``?`` or ``!`` followed by a space and a
  capital letter; sentences of 8 to 30 words and at most 160 characters kept (short enough for the zoo's 128-token context).

Run ``python scripts/build_python_docs_data.py`` to regenerate (the committed file was built with the Python
version recorded in SOURCE.md; another version gives slightly different text).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pydoc_data.topics

OUT = Path(__file__).resolve().parents[1] / "dlmbench" / "cards" / "data" / "python_docs" / "sentences.jsonl"
MIN_WORDS, MAX_WORDS, MAX_CHARS = 8, 30, 160


def prose_paragraphs(text: str):
    for para in re.split(r"\n\s*\n", text):
        lines = [line for line in para.splitlines() if line.strip()]
        if not lines or any(line[0].isspace() for line in lines):
            continue
        if any(re.fullmatch(r"[*=\-^~]{3,}", line.strip()) for line in lines):
            continue
        yield " ".join(" ".join(lines).split())


def sentences(paragraph: str):
    for s in re.split(r"(?<=[.?!])\s+(?=[A-Z])", paragraph):
        if MIN_WORDS <= len(s.split()) <= MAX_WORDS and len(s) <= MAX_CHARS:
            yield s


def build_rows() -> list[dict[str, str]]:
    """The sentences (with their topic) in the order written, duplicates dropped."""
    rows, seen = [], set()
    for topic, text in pydoc_data.topics.topics.items():
        for para in prose_paragraphs(text):
            for s in sentences(para):
                if s not in seen:
                    seen.add(s)
                    rows.append({"text": s, "topic": topic})
    return rows


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else OUT
    rows = build_rows()
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} sentences from {len(pydoc_data.topics.topics)} topics -> {out} "
          f"(Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
