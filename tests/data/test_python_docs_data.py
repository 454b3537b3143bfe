"""The vendored out-of-domain text (dlmbench/cards/data/python_docs/) is what SOURCE.md says it is.

The ``python-docs`` task (finding 1 out of domain) reads it through the package source, so its content must be
pinned: the sha256 recorded in SOURCE.md matches the file, every sentence obeys the builder's rule, every
sentence occurs in the CPython help text it names (whitespace collapsed), and on the Python version recorded in
SOURCE.md the builder reproduces the file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pydoc_data.topics
import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "dlmbench" / "cards" / "data" / "python_docs"
DATA = FOLDER / "sentences.jsonl"
SOURCE = (FOLDER / "SOURCE.md").read_text()


def rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def test_sha256_recorded_in_source_md_matches_the_file():
    recorded = re.search(r"sha256 of `sentences.jsonl`: `([0-9a-f]{64})`", SOURCE)
    assert recorded, "SOURCE.md does not record the sha256 of sentences.jsonl"
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == recorded.group(1)


def test_every_sentence_follows_the_rule_and_is_unique():
    texts = [r["text"] for r in rows()]
    assert len(texts) == len(set(texts)) == int(re.search(r"holds (\d+) English sentences", SOURCE).group(1))
    for t in texts:
        assert 8 <= len(t.split()) <= 30 and len(t) <= 160, t
        assert t == " ".join(t.split()), f"whitespace not collapsed: {t!r}"


def test_every_sentence_occurs_in_the_help_topic_it_names():
    """Independent of the builder's paragraph rule: each sentence is a substring of its topic's text once the
    whitespace is collapsed (true on any Python version whose topic text still holds the sentence)."""
    version = re.search(r"Python (\d+\.\d+\.\d+)", SOURCE).group(1)
    if sys.version.split()[0] != version:
        pytest.skip(f"the data was built from Python {version}'s help text; this is Python {sys.version.split()[0]}")
    collapsed = {k: " ".join(v.split()) for k, v in pydoc_data.topics.topics.items()}
    for r in rows():
        assert r["text"] in collapsed[r["topic"]], r


def test_builder_reproduces_the_file_on_the_recorded_python(tmp_path):
    version = re.search(r"Python (\d+\.\d+\.\d+)", SOURCE).group(1)
    if sys.version.split()[0] != version:
        pytest.skip(f"the data was built from Python {version}'s help text; this is Python {sys.version.split()[0]}")
    out = tmp_path / "sentences.jsonl"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_python_docs_data.py"), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == DATA.read_bytes()


def test_the_task_card_reads_the_vendored_file():
    from dlmbench.registry import default_registry
    from dlmbench.data.sources import load_texts

    task = default_registry().task("python-docs")
    texts = load_texts(task.dataset)
    assert list(texts) == [r["text"] for r in rows()][::4]
