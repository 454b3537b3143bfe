"""LLaDA's block schedule (length a multiple of block_length, steps a multiple of the number of blocks) is
checked when the run is resolved, where the card fixes the sample length, so the mistake exits 2 before any model
loads (issue "Trustworthy results": before, it was found only at run time, exit 1, after the model had loaded)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlmbench.errors import BadSetting
from dlmbench.families.llada.settings import LLaDASettings, block_schedule
from dlmbench.specs.settings import validate_settings


def reference_ok(length: int, block_length: int | None, steps: int) -> bool:
    """The reference's asserts (ML-GSAI/LLaDA generate.py), written out: one block when block_length is None or
    longer than the canvas."""
    b = length if block_length is None or block_length > length else block_length
    return length % b == 0 and steps % (length // b) == 0


@pytest.mark.parametrize("length", [1, 6, 8, 12, 30, 32, 48, 64])
@pytest.mark.parametrize("block_length", [None, 1, 4, 8, 32])
@pytest.mark.parametrize("steps", [1, 3, 4, 8, 12, 128])
def test_block_schedule_accepts_exactly_what_the_reference_accepts(length, block_length, steps):
    if reference_ok(length, block_length, steps):
        block, n_blocks = block_schedule(length, block_length, steps)
        assert block * n_blocks == length and steps % n_blocks == 0
    else:
        with pytest.raises(BadSetting, match=r"LLaDA sampling: (length|steps) \d+ is not a multiple"):
            block_schedule(length, block_length, steps)


def test_gen_length_is_checked_with_the_settings():
    with pytest.raises(BadSetting, match="gen_length 48: LLaDA sampling: length 48 is not a multiple of block_length 32"):
        validate_settings(LLaDASettings, {"gen_length": 48}, "model m (llada)")
    with pytest.raises(BadSetting, match="steps 6 is not a multiple of the number of blocks 4"):
        validate_settings(LLaDASettings, {"gen_length": 128, "steps": 6}, "model m (llada)")
    assert validate_settings(LLaDASettings, {"gen_length": 64, "steps": 8}, "m").gen_length == 64


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlmbench.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, words", [
    (["--task", "genppl-kjv", "--set", "steps=7"], "task genppl-kjv with model zoo-llada-kjv: LLaDA sampling: steps 7"),
    (["--task", "genppl-kjv", "--set", "length=40"], "length 40 is not a multiple of block_length 32"),
    (["--task", "mauve-kjv", "--set", "block_length=24"], "is not a multiple of block_length 24"),
    (["--task", "kjv", "--set", "gen_length=48"], "gen_length 48: LLaDA sampling: length 48"),
])
def test_a_schedule_the_sampler_cannot_run_exits_2_before_loading(tmp_path, args, words):
    out = tmp_path / "out"
    r = run_cli("run", "--model", "zoo-llada-kjv", *args, "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert "loading" not in r.stderr and not out.exists()
