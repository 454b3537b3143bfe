"""Specs validate with one-line errors; the registry finds packaged and user cards; hashes are stable."""

import textwrap

import pytest

from dlmbench.errors import BadSetting, BadSpec, UnknownModel, UnknownName, UnknownTask
from dlmbench.registry import Registry
from dlmbench.specs import ModelSpec, RunSpec, TaskSpec, split_overrides

MODEL = {"name": "toy", "family": "ar", "checkpoint": {"local": "/tmp/toy"}, "settings": {"batch_size": 2}}
TASK = {"name": "toy-ppl", "type": "perplexity", "dataset": {"source": "local", "path": "/tmp/x.txt"}}


def test_model_spec_roundtrip_and_validation():
    spec = ModelSpec.from_dict(MODEL)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(BadSpec, match="unknown field 'famly'; did you mean 'family'"):
        ModelSpec.from_dict({**MODEL, "famly": "ar"})
    with pytest.raises(UnknownName, match="did you mean 'mdlm'"):
        ModelSpec.from_dict({**MODEL, "family": "mdml"})
    with pytest.raises(BadSpec, match="exactly one of hub / local / package"):
        ModelSpec.from_dict({**MODEL, "checkpoint": {"hub": "gpt2", "local": "/x"}})
    with pytest.raises(BadSpec, match="missing required field 'checkpoint'"):
        ModelSpec.from_dict({"name": "x", "family": "ar"})


def test_task_spec_validation():
    spec = TaskSpec.from_dict(TASK)
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(BadSpec, match="packing: setting 'mode' = 'zip' is not allowed: Input should be 'wrap', 'sliding', 'document' or 'rolling'"):
        TaskSpec.from_dict({**TASK, "packing": {"mode": "zip"}})
    with pytest.raises(UnknownName, match="did you mean 'perplexity'"):
        TaskSpec.from_dict({**TASK, "type": "perplexty"})


def test_overrides_go_to_the_right_side_and_typos_fail():
    m, t = ModelSpec.from_dict(MODEL), TaskSpec.from_dict(TASK)
    m2, t2 = split_overrides(m, t, {"batch_size": 4, "block_size": 128})
    assert m2.settings["batch_size"] == 4 and t2.packing["block_size"] == 128
    with pytest.raises(BadSetting, match="task toy-ppl \\(perplexity\\): unknown setting 'nonsense' = 1; known: regress"):
        split_overrides(m, t, {"task.nonsense": 1})


def test_spec_hash_changes_with_anything_that_changes_numbers():
    m, t = ModelSpec.from_dict(MODEL), TaskSpec.from_dict(TASK)
    base = RunSpec(m, t, seed=0).spec_hash()
    assert base == RunSpec(ModelSpec.from_dict(MODEL), TaskSpec.from_dict(TASK), seed=0).spec_hash()
    assert base != RunSpec(m, t, seed=1).spec_hash()
    assert base != RunSpec(m, t, seed=0, limit=5).spec_hash()
    assert base != RunSpec(m.with_settings({"stride": 3}), t, seed=0).spec_hash()


def test_registry_user_folder_env_and_did_you_mean(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.yaml").write_text(
        textwrap.dedent(
            """
            name: my-model
            family: ar
            aliases: [mm]
            checkpoint: {local: ./weights}
            """
        )
    )
    (tmp_path / "t.yaml").write_text("name: my-task\ntype: perplexity\ndataset: {source: local, path: data.txt}\n")
    reg = Registry.default([tmp_path])
    assert reg.model("mm").name == "my-model"
    # relative paths are relative to the card
    assert reg.model("my-model").checkpoint.location == str((tmp_path / "models" / "weights").resolve())
    assert reg.task("my-task").dataset.path == str((tmp_path / "data.txt").resolve())
    with pytest.raises(UnknownModel, match="did you mean 'my-model'"):
        reg.model("my-modle")
    with pytest.raises(UnknownTask, match="did you mean 'my-task'"):
        reg.task("my-tsak")
    monkeypatch.setenv("DLMBENCH_SPECS", str(tmp_path))
    assert Registry.default().model("my-model").family == "ar"
    monkeypatch.setenv("DLMBENCH_SPECS", str(tmp_path / "nope"))
    with pytest.raises(BadSpec, match="does not exist"):
        Registry.default()


def test_broken_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(BadSpec) as e:
        Registry.default([tmp_path])
    assert "\n" not in str(e.value) and "not valid YAML" in str(e.value)


def test_packaged_cards_all_validate():
    reg = Registry.default()
    for name in reg.model_names():
        assert reg.model(name).name == name
    for name in reg.task_names():
        assert reg.task(name).name == name


def test_dataset_overrides_point_a_task_at_local_files(tmp_path, monkeypatch):
    m, t = ModelSpec.from_dict(MODEL), TaskSpec.from_dict({**TASK, "dataset": {"source": "hf", "path": "wikitext", "split": "test"}})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadSpec, match="split 'test': a file source takes 'mod:K=R'"):  # an hf split means nothing for a file
        split_overrides(m, t, {"dataset.source": "local", "dataset.path": "copy.jsonl"})
    _, t2 = split_overrides(m, t, {"dataset.source": "local", "dataset.path": "copy.jsonl", "dataset.split": "mod:2=0"})
    assert t2.dataset.source == "local" and t2.dataset.path == str(tmp_path / "copy.jsonl")
    assert t2.dataset.split == "mod:2=0"
    with pytest.raises(BadSpec, match="did you mean 'field'"):
        split_overrides(m, t, {"dataset.feild": "x"})
