"""No committed file names a folder of the machine it was made on (issue "Trustworthy results", item 5).

An absolute path into a machine's own folders (the workspace root, a user's home folder on Linux or macOS, a
Windows user folder) in a card, a suite, a test or a committed result works on one machine only (the reversal data
were once read from such a path). Every file that ``git ls-files`` lists is checked; the system scratch folder is
also refused inside committed results (``results/``), where it can only be a leftover of the machine that wrote
them. The patterns are assembled from their parts (:func:`_root`), so this file holds no such path itself; a file
that must hold one goes into :data:`ALLOWED` with its reason.

The committed baselines record checkpoints by content and package-relative names (``package:dlmbench/...``), so
they pass too. :data:`KNOWN_BASELINE_DEBT` would hold a baseline folder that still records machine paths, as an
explicit ``xfail(strict=True)`` case (none today).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

def _root(name: str) -> str:
    """``/<name>/``: a top-level folder of a machine, spelled so that this file does not contain it."""
    return "/" + name + "/"


WORK, HOME, USERS, TMP = _root("work"), _root("home"), _root("Users"), _root("tmp")
MACHINE_PATHS = {
    WORK: re.compile(re.escape(WORK).encode()),
    HOME + "<user>/": re.compile(re.escape(HOME).encode() + rb"[A-Za-z0-9._-]+/"),
    USERS: re.compile(re.escape(USERS).encode()),
    "C:" + "\\" + "Users": re.compile(rb"[A-Za-z]:(?:\\\\|\\|/)" + b"Users", re.IGNORECASE),
}
RESULTS_ONLY = {TMP: re.compile(re.escape(TMP).encode())}  # scratch paths are fine in examples and scripts, not in results

ALLOWED: dict[str, str] = {}  # path -> why it must hold a machine path (none today)

# Committed baselines that still record absolute checkpoint paths (spec.yaml, metrics.jsonl, log.txt): fixed by
# recording checkpoints by content and regenerating the baselines (issue "Trustworthy results", items 1 and 5).
KNOWN_BASELINE_DEBT: dict[str, str] = {}  # all four baselines were regenerated with checkpoints recorded by content


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


FILES = tracked_files()


def group_of(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:3]) if parts[:2] == ["results", "baselines"] and len(parts) > 3 else "everything else"


GROUPS = sorted({group_of(p) for p in FILES} | {"everything else"})


def offences(path: str) -> list[str]:
    file = REPO / path
    if path in ALLOWED or not file.is_file():
        return []
    data = file.read_bytes()
    patterns = dict(MACHINE_PATHS)
    if path.startswith("results/"):
        patterns.update(RESULTS_ONLY)
    found = []
    for name, pattern in patterns.items():
        m = pattern.search(data)
        if m:
            line = data.count(b"\n", 0, m.start()) + 1
            found.append(f"{path}:{line}: {name}")
    return found


def _param(group: str):
    if group in KNOWN_BASELINE_DEBT:
        return pytest.param(group, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BASELINE_DEBT[group]), id=group)
    return pytest.param(group, id=group)


@pytest.mark.skipif(not FILES, reason="not a git checkout (an installed package has no tracked files)")
@pytest.mark.parametrize("group", [_param(g) for g in GROUPS])
def test_no_tracked_file_holds_a_machine_path(group):
    bad = [o for p in FILES if group_of(p) == group for o in offences(p)]
    assert not bad, f"{len(bad)} absolute machine path(s) in tracked files (make them relative or package paths):\n" + "\n".join(bad[:20])


def test_the_checker_sees_each_pattern(tmp_path, monkeypatch):
    """The patterns catch what they are meant to (and a relative path passes)."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    samples = {
        "a.yaml": f"path: {WORK}shared/data\n".encode(),
        "b.py": f"x = '{HOME}alice/models'\n".encode(),
        "c.md": f"see {USERS}bob/x\n".encode(),
        "d.json": b'{"p": "C:' + b"\\\\" + b'Users\\\\carol"}\n',
        "results/e.jsonl": f'{{"checkpoint": "local:{TMP}zoo"}}\n'.encode(),
        "ok.yaml": f"path: data/reversal_curse\nscratch: {TMP}x\n".encode(),
    }
    for name, data in samples.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert {name: bool(offences(name)) for name in samples} == {**{n: True for n in samples}, "ok.yaml": False}


def test_the_reversal_data_ship_with_the_package():
    """The reversal task cards and the zoo read Berglund's files from the package (no network, no machine path)."""
    from dlmbench.data.sources import load_records
    from dlmbench.registry import default_registry
    from dlmbench.tasks.reversal import _file_spec
    from dlmbench.zoo.corpus import REVERSAL_PACKAGE_DIR

    folder = REPO / "dlmbench" / REVERSAL_PACKAGE_DIR
    assert (folder / "LICENSE").is_file() and "6af5f418755d528304e406361e86477637d21c84" in (folder / "SOURCE.md").read_text()
    assert "cards/data/**/*" in (REPO / "pyproject.toml").read_text()
    for name in ("reversal-d2p", "reversal-p2d"):
        task = default_registry().task(name)
        assert task.dataset.source == "package"
        st = task.typed_settings
        for file in (st.same_file, st.reverse_file):
            records = load_records(_file_spec(task.dataset, file))
            assert len(records) == 300 and {"prompt", "completion"} <= set(records[0])
    assert sum(len(p.read_bytes()) for p in folder.iterdir()) < 1_000_000
