"""Every task card shipped in dlmbench/cards/tasks is valid and self-consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlmbench.data.detokenizers import DETOKENIZERS
from dlmbench.specs import DATASET_SOURCES, PACKING_MODES, TaskSpec, load_yaml
from dlmbench.specs.task_settings import task_settings_type, user_fields

CARDS = Path(__file__).resolve().parents[2] / "dlmbench" / "cards" / "tasks"
FILES = sorted(CARDS.glob("*.yaml"))


def _spec(path: Path) -> TaskSpec:
    return TaskSpec.from_dict(load_yaml(path), str(path))


def test_cards_exist() -> None:
    names = {_spec(p).name for p in FILES}
    expected = {
        "ptb", "wikitext2", "wikitext103", "lm1b", "lambada-ppl", "ag-news", "pubmed", "arxiv", "owt",
        "wikitext2-sliding", "wikitext103-sliding", "ptb-sliding", "lambada", "kjv", "kjv-lastword",
    }  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_card_is_valid(path: Path) -> None:
    spec = _spec(path)
    assert spec.name == path.stem, "file name and card name agree"
    assert len(spec.description) > 40, "every card states its protocol and source"
    for name in spec.detokenizer:
        assert name in DETOKENIZERS
    assert spec.dataset.source in DATASET_SOURCES
    if spec.dataset.source == "hf":
        assert spec.dataset.split, "hf datasets name their split"
    if spec.dataset.source == "package":
        assert spec.dataset.file
    for key in spec.settings:
        assert key in user_fields(task_settings_type(spec.type))
    assert spec.typed_settings.overrides() == {k: spec.typed_settings.model_dump()[k] for k in spec.settings}
    if spec.type == "perplexity":
        packing = spec.typed_packing  # presets resolved
        assert packing.mode in PACKING_MODES
        if packing.mode in ("wrap", "sliding"):
            assert isinstance(packing.block_size, int)
        if packing.mode == "sliding":
            assert 1 <= packing.stride < packing.block_size


def test_names_and_aliases_unique() -> None:
    seen: dict[str, str] = {}
    for path in FILES:
        spec = _spec(path)
        for name in (spec.name, *spec.aliases):
            assert name not in seen, f"{name} used by {seen.get(name)} and {path.name}"
            seen[name] = path.name


def test_mdlm_zero_shot_cards_follow_the_reference() -> None:
    # kuleshov-group/mdlm dataloader.py (get_dataset, get_dataloaders): load call, split, field, detokenizer
    expected = {
        "ptb": ("ptb_text_only", None, "validation", "sentence", ("ptb",)),
        "wikitext2": ("wikitext", "wikitext-2-raw-v1", "validation", "text", ("wikitext",)),
        "wikitext103": ("wikitext", "wikitext-103-raw-v1", "validation", "text", ("wikitext",)),
        "lm1b": ("lm1b", None, "test", "text", ("lm1b",)),
        "ag-news": ("ag_news", None, "test", "text", ()),
        "pubmed": ("scientific_papers", "pubmed", "validation", "article", ("wikitext", "lm1b")),
        "arxiv": ("scientific_papers", "arxiv", "validation", "article", ("wikitext", "lm1b")),
        "owt": ("openwebtext", None, "train[-100000:]", "text", ()),
    }
    for name, (path, config, split, field, detok) in expected.items():
        spec = _spec(CARDS / f"{name}.yaml")
        ds = spec.dataset
        assert (ds.source, ds.path, ds.name, ds.split, ds.field, spec.detokenizer) == ("hf", path, config, split, field, detok)
        assert dict(spec.packing) == {"preset": "mdlm-wrap"}
        assert spec.typed_packing.resolved() == {
            "preset": "mdlm-wrap", "mode": "wrap", "block_size": 1024, "stride": None, "first_token": "prefixed",
            "add_eos": True, "separator": None, "partial_last_block": "drop",
        }
    lp = _spec(CARDS / "lambada-ppl.yaml")
    assert lp.dataset.source == "url" and lp.dataset.path.endswith("gpt-2/data/lambada_test.jsonl")
    assert lp.detokenizer == ("lambada",)


def test_kjv_cards_load_offline() -> None:
    from dlmbench.data.sources import load_texts

    for name in ("kjv", "kjv-lastword"):
        spec = _spec(CARDS / f"{name}.yaml")
        assert load_texts(spec.dataset, limit=1) == ["In the beginning God created the heaven and the earth."]
    assert _spec(CARDS / "kjv-lastword.yaml").type == "lambada"
