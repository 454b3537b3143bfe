"""A store that survives faults (issue "Trustworthy results", item 7).

Damaged run folders are reported once by path, skipped by every reader and never treated as finished; a crash,
a full disk or a kill at any step of a write leaves the earlier run complete; writers of one job are serialised;
a results folder that cannot be written fails before any work; JSON output is strict.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dlmbench import store
from harness import snapshot

OTHER_ID = "0123456789abcdef"


def _strict(line: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(line, parse_constant=refuse)


# ---------------------------------------------------------------------------------------------- damage


def _empty(m: Path) -> None:
    m.write_bytes(b"")


def _truncated(m: Path) -> None:
    data = m.read_bytes()
    m.write_bytes(data[: len(data) - 40])


def _not_utf8(m: Path) -> None:
    m.write_bytes(b"\xff\xfe" + m.read_bytes())


def _not_json(m: Path) -> None:
    m.write_bytes(m.read_bytes() + b"{not json\n")


def _not_object(m: Path) -> None:
    m.write_bytes(b"[1, 2]\n" + m.read_bytes())


def _missing_column(m: Path) -> None:
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    rows[0].pop("value")
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _no_spec(m: Path) -> None:
    (m.parent / "spec.yaml").unlink()


DAMAGE = {
    "empty": _empty,
    "truncated": _truncated,
    "not-utf8": _not_utf8,
    "not-json": _not_json,
    "not-an-object": _not_object,
    "missing-column": _missing_column,
    "no-spec": _no_spec,
}


def _damaged_sibling(world, kind: str) -> Path:
    """A copy of the earlier run under another run id, damaged in the way ``kind`` says."""
    other = world.earlier.parent / OTHER_ID
    shutil.copytree(world.earlier, other)
    DAMAGE[kind](other / "metrics.jsonl")
    return other


def _warnings(err: str, folder: Path) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:") and str(folder) in line]


@pytest.mark.parametrize("kind", DAMAGE)
def test_results_skips_a_damaged_folder_and_says_so_once(world, capsys, kind):
    other = _damaged_sibling(world, kind)
    capsys.readouterr()
    from dlmbench.cli import main

    # --all: the copy has the same settings, so the default selection would show one of the two runs
    assert main(["results", "--out", str(world.out), "--format", "json", "--all"]) == 0
    cap = capsys.readouterr()
    assert len(_warnings(cap.err, other)) == 1, cap.err
    assert "Traceback" not in cap.err
    rows = [_strict(x) for x in cap.out.splitlines()]
    assert rows and {r["run_id"] for r in rows} == {world.earlier.name}
    world.assert_intact()


@pytest.mark.parametrize("kind", DAMAGE)
def test_report_skips_a_damaged_folder(world, capsys, kind, tmp_path):
    other = _damaged_sibling(world, kind)
    capsys.readouterr()
    from dlmbench.cli import main

    assert main(["report", "--out", str(world.out), "--dest", str(tmp_path / "board")]) == 0
    cap = capsys.readouterr()
    assert len(_warnings(cap.err, other)) == 1, cap.err
    assert "Traceback" not in cap.err and "(4 rows)" in cap.err
    world.assert_intact()


@pytest.mark.parametrize("kind", DAMAGE)
def test_regress_skips_a_damaged_candidate_folder(world, capsys, kind):
    other = _damaged_sibling(world, kind)
    capsys.readouterr()
    from dlmbench.cli import main

    assert main(["regress", "--baseline", str(world.earlier), "--candidate", str(world.out)]) == 0
    cap = capsys.readouterr()
    assert len(_warnings(cap.err, other)) == 1, cap.err
    assert "Traceback" not in cap.err
    world.assert_intact()


def test_regress_on_a_named_damaged_run_folder_is_one_error(world, capsys):
    other = _damaged_sibling(world, "truncated")
    err = world.cli(capsys, "regress", "--baseline", str(world.earlier), "--candidate", str(other), code=2)
    assert "damaged" in err and str(other) in err
    world.assert_intact()


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_run_is_never_finished_and_its_job_runs_again(world, capsys, kind):
    DAMAGE[kind](world.earlier / "metrics.jsonl")
    assert not store.is_finished(world.earlier)
    err = world.run(capsys)
    assert "cached" not in err
    assert store.damage(world.earlier) is None and store.is_finished(world.earlier)
    assert [p.name for p in world.earlier.parent.iterdir() if not p.name.endswith(".lock")] == [world.earlier.name]


# ------------------------------------------------------------------------------------- crashes in a write


class Crash(Exception):
    pass


def _mark(world) -> None:
    """Make the earlier run distinguishable from a recomputed one (same spec, maybe the same second)."""
    with open(world.earlier / "log.txt", "a") as f:
        f.write("the earlier run\n")
    world.earlier_files = snapshot(world.earlier)


@pytest.mark.parametrize("step", [s for s in store.WRITE_STEPS if s != "remove old"])
def test_force_that_fails_at_a_step_keeps_the_earlier_run(world, capsys, monkeypatch, step):
    def boom(name, folder):
        if name == step:
            raise Crash(f"injected at {name}")

    _mark(world)
    monkeypatch.setattr(store, "_step", boom)
    err = world.run(capsys, "--force", code=1)
    assert "injected at" in err
    world.assert_intact()
    hidden = [p.name for p in world.earlier.parent.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert hidden == []


def test_force_that_fails_removing_the_old_run_still_finishes(world, capsys, monkeypatch):
    def boom(name, folder):
        if name == "remove old":
            raise Crash("injected")

    _mark(world)
    monkeypatch.setattr(store, "_step", boom)
    world.run(capsys, "--force")
    assert store.is_finished(world.earlier) and snapshot(world.earlier) != world.earlier_files  # the new run
    monkeypatch.undo()
    world.run(capsys, "--force")  # the stale backup is cleaned by the next write
    assert [p.name for p in world.earlier.parent.iterdir() if not p.name.endswith(".lock")] == [world.earlier.name]


def test_crash_between_the_two_renames_of_force_keeps_a_complete_run(world, capsys, monkeypatch):
    """Fails on the old code: it moved the old run aside, then the second rename failed, and nothing was left
    in place. Injected at the primitive (``os.replace``), independent of the store's own step names."""
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(errno.EIO, "injected I/O error")
        return real(src, dst)

    _mark(world)
    monkeypatch.setattr(os, "replace", flaky)
    world.run(capsys, "--force", code=1)
    monkeypatch.undo()
    world.assert_intact()
    assert store.is_finished(world.earlier)


@pytest.mark.parametrize("step", store.WRITE_STEPS)
def test_sigkill_at_each_write_step_leaves_old_or_new_complete(world, capsys, step):
    """A child process replaces the earlier run (as ``--force`` does) and is killed with SIGKILL at ``step``:
    no exception handler runs. The job must still be finished (old or new run, complete), and the next
    ``dlmbench run`` reads it back."""
    rec = store.read_run(world.earlier)
    new_rows = [store.MetricRow(**{**r.to_json(), "duration_s": 12345.0}) for r in rec.rows]
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, no cleanup
        try:
            def kill(name, folder):
                if name == step:
                    os.kill(os.getpid(), signal.SIGKILL)

            store._step = kill
            store.write_run(world.earlier, {"run_id": world.earlier.name}, new_rows, [], "new")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert store.is_finished(world.earlier)
    now = snapshot(world.earlier)
    if now != world.earlier_files:  # then it is the new run, complete
        assert {r.duration_s for r in store.read_run(world.earlier).rows} == {12345.0}
    err = world.run(capsys)
    assert "cached" in err
    assert store.run_folders(world.out) == [world.earlier]


# ------------------------------------------------------------------------------------------- a full disk


def _disk_full_at(monkeypatch, file: str) -> None:
    real = store._write_text

    def write(path, text):
        if Path(path).name == file:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, text)

    monkeypatch.setattr(store, "_write_text", write)


@pytest.mark.parametrize("file", ["spec.yaml", "metrics.jsonl", "examples.jsonl", "log.txt"])
def test_disk_full_while_writing_a_new_run(world, capsys, monkeypatch, file):
    _disk_full_at(monkeypatch, file)
    err = world.run(capsys, "--seed", "1", code=1)
    assert "No space left" in err
    world.assert_intact()
    assert store.run_folders(world.out) == [world.earlier]
    leftovers = [p for p in world.earlier.parent.iterdir() if p.is_dir() and p != world.earlier]
    assert leftovers == []


def test_disk_full_while_replacing_a_run_with_force(world, capsys, monkeypatch):
    _mark(world)
    _disk_full_at(monkeypatch, "metrics.jsonl")
    world.run(capsys, "--force", code=1)
    world.assert_intact()


# -------------------------------------------------------------------------------------- one writer per job


def test_two_writers_of_one_job_are_serialised(world):
    """Writer A stops just before its swap; writer B (another thread, its own lock handle) must not reach
    any step of its own until A has finished."""
    rec = store.read_run(world.earlier)
    order: list[str] = []
    a_at_swap, release_a = threading.Event(), threading.Event()
    real_step = store._step

    def step(name, folder):
        who = threading.current_thread().name
        order.append(f"{who}:{name}")
        if who == "A" and name == "move old aside":
            a_at_swap.set()
            release_a.wait(10)
        real_step(name, folder)

    store._step = step
    try:
        a = threading.Thread(target=store.write_run, args=(world.earlier, {}, rec.rows, [], "A"), name="A")
        b = threading.Thread(target=store.write_run, args=(world.earlier, {}, rec.rows, [], "B"), name="B")
        a.start()
        assert a_at_swap.wait(10)
        b.start()
        time.sleep(0.5)
        assert not any(x.startswith("B:") for x in order), order
        release_a.set()
        a.join(10)
        b.join(10)
    finally:
        store._step = real_step
    first_b = next(i for i, x in enumerate(order) if x.startswith("B:"))
    assert all(x.startswith("A:") for x in order[:first_b]) and "A:move new in" in order[:first_b]
    assert store.is_finished(world.earlier)
    assert (world.earlier / "log.txt").read_text() == "B"


def test_a_second_process_waits_for_the_job_lock(world, capsys):
    """Another process holds the job's lock for 3 s (as a running `dlmbench run` of the same job does); a
    `--force` run here must wait for it and write only after it let go."""
    marker = world.root / "released"
    code = (
        "import sys, time; from dlmbench import store; "
        "cm = store.job_lock(sys.argv[1]); cm.__enter__(); print('held', flush=True); time.sleep(3); "
        "open(sys.argv[2], 'w').write(repr(time.time())); cm.__exit__(None, None, None)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(world.earlier), str(marker)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        world.run(capsys, "--force")
    finally:
        child.wait(30)
    released = float(marker.read_text())
    assert (world.earlier / "metrics.jsonl").stat().st_mtime >= released


# ------------------------------------------------------------------------------ a results folder we cannot write


def _no_load(monkeypatch):
    import dlmbench.families as families

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before --out was checked")

    monkeypatch.setattr(families, "load_model", refuse)


def test_out_is_a_file(world, capsys, monkeypatch):
    _no_load(monkeypatch)
    f = world.root / "a-file"
    f.write_text("x")
    err = world.cli(capsys, "run", "--model", "tiny-gpt2", "--task", "tiny-ppl", "--out", str(f), "--progress", "off", code=2)
    assert "cannot write" in err and str(f) in err
    world.assert_intact()


def test_out_below_a_file(world, capsys, monkeypatch):
    _no_load(monkeypatch)
    f = world.root / "a-file"
    f.write_text("x")
    err = world.cli(capsys, "run", "--model", "tiny-gpt2", "--task", "tiny-ppl", "--out", str(f / "sub"), "--progress", "off", code=2)
    assert "cannot write" in err
    world.assert_intact()


def test_out_on_a_read_only_file_system(world, capsys, monkeypatch):
    """A read-only --out (simulated: every create under it fails with EROFS, which also holds for root, unlike
    chmod) fails before any model loads, with one line and exit 2."""
    _no_load(monkeypatch)
    out = str(world.out.resolve())

    def guard(real):
        def wrapped(*args, **kwargs):
            target = kwargs.get("dir") or (args[0] if args else "")
            if str(Path(str(target)).resolve()).startswith(out):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(os, "mkdir", guard(os.mkdir))
    monkeypatch.setattr(tempfile, "mkstemp", guard(tempfile.mkstemp))
    monkeypatch.setattr(tempfile, "mkdtemp", guard(tempfile.mkdtemp))
    err = world.run(capsys, "--seed", "1", code=2)
    assert "Read-only file system" in err and "--out" in err
    monkeypatch.undo()
    world.assert_intact()


# ------------------------------------------------------------------------------------------- strict JSON


def _row_without_stderr(world) -> None:
    rec = store.read_run(world.earlier)
    rows = [store.MetricRow(**{**r.to_json(), "run_id": OTHER_ID, "stderr": None, "value": float("nan") if i == 0 else r.value}) for i, r in enumerate(rec.rows)]
    store.write_run(world.earlier.parent / OTHER_ID, {}, rows, [], "")


def test_results_json_is_strict(world, capsys):
    _row_without_stderr(world)
    capsys.readouterr()
    from dlmbench.cli import main

    # --all: the copy has the same settings, so the default selection would show one of the two runs
    assert main(["results", "--out", str(world.out), "--format", "json", "--all"]) == 0
    out = capsys.readouterr().out
    rows = [_strict(x) for x in out.splitlines()]
    assert len(rows) == 8 and "NaN" not in out
    assert {r["stderr"] for r in rows if r["run_id"] == OTHER_ID} == {None}
    world.assert_intact()


def test_json_safe_turns_every_non_finite_number_into_null():
    import numpy as np
    import pandas as pd

    value = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": np.float64("nan"), "d": pd.NA, "e": np.int64(3)}
    assert _strict(store.dumps(value)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": None, "e": 3}
