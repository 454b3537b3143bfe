"""The settings reference (docs/settings.md) is generated from the settings types and kept in sync; its rows
say what validation accepts."""

from pathlib import Path

import pytest

from dlmbench.errors import BadSetting
from dlmbench.specs.docs import (
    REGENERATE,
    main,
    markdown,
    setting_rows,
    text_table,
    type_text,
)
from dlmbench.specs.settings import validate_settings
from dlmbench.specs.task_settings import (
    TASK_SETTINGS_TYPES,
    GenPPLSettings,
    PackingSettings,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_committed_reference_is_not_stale():
    assert DOCS.read_text(encoding="utf-8") == markdown(), f"docs/settings.md is stale: {REGENERATE}"
    assert main(["--check"]) == 0


def test_readme_links_the_reference():
    readme = (DOCS.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "(docs/settings.md)" in readme


def test_reference_names_every_task_type_and_field():
    text = markdown()
    for name, cls in TASK_SETTINGS_TYPES.items():
        assert f"### `{name}`" in text
        for field in cls.model_fields:
            if not field.endswith("_card"):  # filled by dlmbench, not a user setting
                assert f"| `{field}` |" in text
    assert "eval_model_card" not in text and "featurizer_card" not in text


def test_rows_state_what_validation_accepts():
    rows = {r.name: r for r in setting_rows(GenPPLSettings, {"n_samples": 64}, "card")}
    assert rows["n_samples"].type == "int ≥ 1" and rows["n_samples"].default == "16" and rows["n_samples"].current == "64 (card)"
    assert rows["length"].current == "128"  # the default applies
    assert rows["convention"].type == '"mdlm" | "sedd" | "bos"'
    assert rows["steps"].type == "int ≥ 1 | None"
    # the bounds printed are the bounds enforced
    validate_settings(GenPPLSettings, {"n_samples": 1}, "t")
    with pytest.raises(BadSetting):
        validate_settings(GenPPLSettings, {"n_samples": 0}, "t")
    for choice in ("mdlm", "sedd", "bos"):
        validate_settings(GenPPLSettings, {"convention": choice}, "t")
    assert type_text(PackingSettings.model_fields["block_size"]) == "int ≥ 2 | None"
    table = text_table(setting_rows(PackingSettings, {"mode": "wrap"}, "card"))
    assert table.splitlines()[0].split() == ["name", "type", "default", "current", "meaning"]
    assert '"wrap" (card)' in table


def test_stale_reference_is_reported(tmp_path, monkeypatch, capsys):
    import dlmbench.specs.docs as docs

    monkeypatch.setattr(docs, "markdown", lambda: "something else\n")
    assert docs.main(["--check"]) == 1
    assert REGENERATE in capsys.readouterr().err
