"""Names and inputs (issue "Trustworthy results", item 6): card names cannot steer a run folder out of
``--out``; ``max_length`` beyond the network's positions is one line, not an ``IndexError``; a data record
without the card's field is an error naming the file and line unless ``dataset.skip_missing: true``, and then
it is counted in the result; an empty data file is one clear error, a zero-length document is skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlmbench import store
from dlmbench.errors import ResultsError
from harness import snapshot

BAD_NAMES = ["..", ".", "../escape", "a/b", "/abs", ".hidden", "-dash", "a b", "a\\b", "ü-name", "a:b"]


def _card(world, kind: str, base: str, **changes) -> Path:
    data = yaml.safe_load((world.specs / kind / f"{base}.yaml").read_text())
    data.update(changes)
    path = world.specs / kind / f"{base}-changed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tree(world) -> dict[str, str]:
    """Every file under the world's root except the zoo's own (so anything written anywhere shows up)."""
    return {k: v for k, v in snapshot(world.root).items() if not k.startswith("zoo/")}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_model_card_name_that_is_not_a_plain_name(world, capsys, name):
    _card(world, "models", "tiny-gpt2", name=name)
    before = _tree(world)
    err = world.run(capsys, code=2)
    assert "name" in err and "not allowed" in err
    assert _tree(world) == before
    world.assert_intact()


@pytest.mark.parametrize("name", ["..", "x/..", ".hidden"])
def test_a_task_card_name_that_is_not_a_plain_name(world, capsys, name):
    _card(world, "tasks", "tiny-ppl", name=name)
    before = _tree(world)
    err = world.run(capsys, code=2)
    assert "task name" in err
    assert _tree(world) == before
    world.assert_intact()


def test_model_and_task_named_dotdot_cannot_write_outside_out(world, capsys):
    """Fails on the old code: ``runs/../..`` is the folder above ``--out``."""
    _card(world, "models", "tiny-gpt2", name="..")
    _card(world, "tasks", "tiny-ppl", name="..")
    before = _tree(world)
    world.run(capsys, model="..", task="..", code=2)
    assert _tree(world) == before
    world.assert_intact()


def test_a_suite_name_that_is_not_a_plain_name(world, capsys):
    suite = world.root / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "../x", "models": ["tiny-gpt2"], "tasks": ["tiny-ppl"]}))
    err = world.cli(capsys, "run", "--suite", str(suite), "--out", str(world.out), code=2)
    assert "suite name" in err
    world.assert_intact()


@pytest.mark.parametrize("model,task", [("..", "t"), ("m", ".."), (".", "t"), ("", "t")])
def test_the_store_refuses_a_folder_outside_its_root(tmp_path, model, task):
    with pytest.raises(ResultsError):
        store.run_folder(tmp_path / "res", model, task, "abc")


def test_the_store_proves_paths_inside_through_symlinks(tmp_path):
    root = tmp_path / "res"
    (root / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "runs" / "m").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ResultsError, match="outside the results folder"):
        store.run_folder(root, "m", "t", "abc")
    assert store.inside(root, root / "runs" / "ok" / "t") == root / "runs" / "ok" / "t"


# -------------------------------------------------------------------------------------------- max_length


def _long_docs(world, n_words: int = 120) -> None:
    data = Path(yaml.safe_load((world.specs / "tasks" / "tiny-ppl.yaml").read_text())["dataset"]["path"])
    data.write_text(json.dumps({"text": " ".join(["the quick brown fox"] * (n_words // 4))}) + "\n")


def test_card_max_length_beyond_the_network_positions(world, capsys):
    """The card says 128 tokens of context, the network has 64 positions: one line at load (exit 1), not a raw
    IndexError from the embedding."""
    _card(world, "models", "tiny-gpt2", name="tiny-gpt2-long", max_length=128)
    _long_docs(world)
    err = world.run(capsys, model="tiny-gpt2-long", code=1)
    assert "IndexError" not in err and "64 positions" in err
    world.assert_intact()


def test_set_max_length_beyond_the_card_is_caught_before_work(world, capsys):
    _card(world, "models", "tiny-gpt2", name="tiny-gpt2-64", max_length=64)
    err = world.run(capsys, "--set", "max_length=100", model="tiny-gpt2-64", code=2)
    assert "max_length" in err and "64" in err
    world.assert_intact()


def test_set_max_length_beyond_the_network_without_a_card_value(world, capsys):
    _long_docs(world)
    err = world.run(capsys, "--set", "max_length=100", "--seed", "1", code=1)
    assert "IndexError" not in err and "64 positions" in err
    world.assert_intact()


# ----------------------------------------------------------------------------------------- data records


def _data(world, lines: list[str], file: str = "data.jsonl", **dataset) -> None:
    path = world.root / file
    path.write_text("".join(x + "\n" for x in lines))
    _card(world, "tasks", "tiny-ppl", name="tiny-data", dataset={"source": "local", "path": str(path), "field": "text", **dataset})


ROWS = [json.dumps({"text": "the quick brown fox"}), "", json.dumps({"body": "no text here"}), json.dumps({"text": "a lazy dog"})]


def test_a_record_without_the_field_is_an_error_naming_file_and_line(world, capsys):
    """Fails on the old code: the record was silently dropped (n shrank, nothing said so)."""
    _data(world, ROWS)
    err = world.run(capsys, task="tiny-data", code=1)
    assert "data.jsonl line 3" in err and "skip_missing" in err
    world.assert_intact()


def test_a_null_field_is_missing_too(world, capsys):
    _data(world, [json.dumps({"text": "the quick brown fox"}), json.dumps({"text": None})])
    err = world.run(capsys, task="tiny-data", code=1)
    assert "data.jsonl line 2" in err
    world.assert_intact()


def test_skip_missing_counts_the_skipped_records_in_the_result(world, capsys):
    _data(world, ROWS, skip_missing=True)
    world.run(capsys, task="tiny-data")
    from dlmbench.store import load_table

    df = load_table(world.out)
    rows = df[df["task"] == "tiny-data"]
    assert len(rows) and set(rows["n"]) == {2}
    assert {r["skipped_missing"] for r in rows["settings"]} == {1}
    world.assert_intact()


def test_skip_missing_is_a_typed_dataset_setting(world, capsys):
    _data(world, ROWS, skip_missing="perhaps")
    err = world.run(capsys, task="tiny-data", code=2)
    assert "skip_missing" in err
    world.assert_intact()


def test_an_empty_data_file_is_one_clear_error(world, capsys):
    _data(world, [])
    err = world.run(capsys, task="tiny-data", code=1)
    assert "no records" in err and "data.jsonl" in err
    world.assert_intact()


def test_a_zero_length_document_is_skipped_and_changes_no_number(world, capsys):
    _data(world, [json.dumps({"text": "the quick brown fox"}), json.dumps({"text": ""}), json.dumps({"text": "a lazy dog"})])
    world.run(capsys, task="tiny-data")
    _data(world, [json.dumps({"text": "the quick brown fox"}), json.dumps({"text": "a lazy dog"})], file="data2.jsonl")
    world.run(capsys, task="tiny-data")
    from dlmbench.store import load_table

    df = load_table(world.out)
    rows = df[(df["task"] == "tiny-data") & (df["metric"] == "perplexity")]
    assert len(rows) == 2 and rows["value"].nunique() == 1 and set(rows["n"]) == {2}
    world.assert_intact()


def test_a_bad_file_split_is_caught_before_work(world, capsys):
    err = world.run(capsys, "--set", "dataset.split=abc", code=2)
    assert "mod:K=R" in err
    world.assert_intact()


def test_skip_missing_is_counted_by_the_lambada_task_too(world, capsys):
    """Every task that reads texts records how many records it skipped (not only perplexity)."""
    import yaml

    path = world.root / "data.jsonl"
    path.write_text("".join(x + "\n" for x in ROWS))
    card = {"name": "tiny-lastword", "type": "lambada",
            "dataset": {"source": "local", "path": str(path), "field": "text", "skip_missing": True}}
    (world.specs / "tasks" / "tiny-lastword.yaml").write_text(yaml.safe_dump(card))
    world.run(capsys, task="tiny-lastword")
    from dlmbench.store import load_table

    rows = load_table(world.out)
    rows = rows[rows["task"] == "tiny-lastword"]
    assert len(rows) and {r["skipped_missing"] for r in rows["settings"]} == {1}
    world.assert_intact()
