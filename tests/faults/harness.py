"""Shared harness of the fault suite (issue "Trustworthy results", item 8).

Every fault case asserts three things:

1. the exit code: 2 for a user mistake found before any work, 1 for a failure at run time;
2. the message: one line on stderr starting with ``error:``, no traceback;
3. nothing finished earlier was lost or altered: :class:`World` runs one job before the fault
   (``tiny-gpt2 × tiny-ppl``) and :meth:`World.assert_intact` compares every file of its run folder, byte for
   byte, with the snapshot taken then.

Use the ``world`` fixture (``tests/faults/conftest.py``): a fresh tiny zoo (``tests/tiny_zoo.py``: a random
2-layer GPT-2 with its own BPE, a six-document perplexity task) and a results root holding one finished run.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dlmbench.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_zoo import make_zoo  # noqa: E402


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path → digest)."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def finished_runs(out: Path) -> list[Path]:
    """Run folders in place under the results root ``out`` (temporary folders start with a dot)."""
    runs = Path(out) / "runs"
    if not runs.exists():
        return []
    return sorted(p.parent for p in runs.rglob("metrics.jsonl") if not p.parent.name.startswith("."))


@dataclass
class World:
    """A tiny zoo (``specs``), a results root (``out``) holding one finished run, and that run's snapshot."""

    root: Path
    specs: Path
    out: Path
    earlier: Path = field(init=False)
    earlier_files: dict[str, str] = field(init=False)

    def cli(self, capsys, *argv: str, code: int) -> str:
        """Run ``dlmbench --specs SPECS ARGV`` in-process; assert exit ``code`` and a one-line ``error:`` message
        without traceback (for ``code`` 0: just the exit code). Returns stderr, stripped."""
        capsys.readouterr()
        rc = main(["--specs", str(self.specs), *argv])
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
        assert "Traceback" not in err and "Traceback" not in captured.out, err
        if code != 0:
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, f"expected one 'error:' line, got:\n{err}"
            if code == 2:  # a user mistake found before any work: nothing but the error line
                assert err.count("\n") == 0, err
        return err

    def run(self, capsys, *argv: str, code: int = 0, model: str = "tiny-gpt2", task: str = "tiny-ppl") -> str:
        """``dlmbench run --model MODEL --task TASK --out OUT --progress off ARGV`` (see :meth:`cli`)."""
        return self.cli(capsys, "run", "--model", model, "--task", task, "--out", str(self.out), "--progress", "off", *argv, code=code)

    def assert_intact(self) -> None:
        """The run finished before the fault is still in place, every file byte for byte unchanged."""
        assert self.earlier.is_dir(), f"the earlier run {self.earlier} was lost"
        assert snapshot(self.earlier) == self.earlier_files, f"the earlier run {self.earlier} was altered"


def make_world(root: Path, capsys) -> World:
    root = Path(root)
    specs = make_zoo(root / "zoo", llada=False)
    world = World(root=root, specs=specs, out=root / "results")
    world.run(capsys)
    runs = finished_runs(world.out)
    assert len(runs) == 1, runs
    world.earlier = runs[0]
    world.earlier_files = snapshot(runs[0])
    return world
