"""Citations point into this repository or at public sources, never at notes kept outside it.

Two checks:

* no file under ``dlmbench/``, ``tests/``, ``benchmarks/``, ``scripts/``, ``docs/`` or
  ``README.md`` mentions the team's out-of-repo design and reference notes (the patterns are assembled
  below so that this file does not match itself);
* every ``docs/...md``, ``dlmbench/...py`` or ``tests/...py`` path named in a module docstring exists in
  the repository (a path inside a URL or after another folder, e.g. lm-eval's ``.../docs/x.md``, is not
  ours and is not checked).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("dlmbench", "tests", "benchmarks", "scripts", "docs", "README.md")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}

_NOTES = ("DESIGN", "mdlm-sedd", "llada-plaid-gpt2", "tasks-and-metrics", "offline-assets", "architecture-examples")
_OTHER = ("references" + "/", "references" + " §")
OUT_OF_REPO = re.compile("|".join(re.escape(s) for s in (*(name + ".md" for name in _NOTES), *_OTHER)))
CITED_PATH = re.compile(r"(?<![\w/.-])((?:docs/[\w./-]*\w\.md)|(?:(?:dlmbench|tests)/[\w./-]*\w\.py))")


def _text_files() -> list[Path]:
    out = []
    for name in SCANNED:
        top = ROOT / name
        if top.is_file():
            out.append(top)
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
                out.append(path)
    return out


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary files (images, checkpoints) cite nothing


def test_no_file_cites_notes_outside_the_repository() -> None:
    found = []
    for path in _text_files():
        text = _read_text(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            m = OUT_OF_REPO.search(line)
            if m:
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {m.group(0)!r}")
    assert not found, (
        "cite docs/architecture.md, README.md or the public source (paper URL, reference repository and file) "
        "instead of notes kept outside the repository:\n" + "\n".join(found)
    )


def _python_modules() -> list[Path]:
    return [p for p in _text_files() if p.suffix == ".py"]


def test_paths_cited_in_module_docstrings_exist() -> None:
    missing = []
    for path in _python_modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False) or ""
        for cited in CITED_PATH.findall(doc):
            if not (ROOT / cited).exists():
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert not missing, "module docstrings cite paths that are not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "text, hit",
    [
        ("see " + "DESIGN" + ".md", True),
        ("(" + "references" + "/x §2)", True),
        ("(" + "mdlm-sedd" + ".md §2)", True),
        ("(" + "tasks-and-metrics" + ".md 5.5)", True),
        ('(docs/architecture.md, "Conventions")', False),
        ("kuleshov-group/mdlm dataloader.py, https://arxiv.org/abs/2406.07524", False),
    ],
)
def test_the_pattern_catches_the_notes_and_spares_real_sources(text: str, hit: bool) -> None:
    assert bool(OUT_OF_REPO.search(text)) is hit


@pytest.mark.parametrize(
    "text, cited",
    [
        ("see docs/architecture.md and dlmbench/seeding.py", ["docs/architecture.md", "dlmbench/seeding.py"]),
        ("``tests/data/test_hub_offline.py`` checks it", ["tests/data/test_hub_offline.py"]),
        ("https://github.com/EleutherAI/lm-evaluation-harness/blob/main/docs/new_task_guide.md", []),
        ("lm-eval lambada/lambada_openai.yaml; cal_path_acc.py", []),
    ],
)
def test_the_path_pattern_reads_only_our_paths(text: str, cited: list[str]) -> None:
    assert CITED_PATH.findall(text) == cited
