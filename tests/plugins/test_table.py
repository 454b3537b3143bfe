"""The family table's rules: what a record must hold, built-ins first, entry-point plugins (found in a
subprocess through a temporary ``*.dist-info/entry_points.txt``), clashes refused with one line, card
validation and every family listing reading the table, capabilities asked instead of family names."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toyfam  # noqa: E402

from dlmbench import plugins  # noqa: E402
from dlmbench.errors import BadSpec, UnknownName  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_builtin_records_import_and_name_what_exists():
    assert plugins.BUILTIN_NAMES == {"ar", "mdlm", "sedd", "llada", "plaid", "bd3lm", "duo", "dream"} <= set(plugins.family_names())
    for name in plugins.BUILTIN_NAMES:
        fam = plugins.family(name)
        assert callable(fam.load("loader"))
        assert fam.capabilities <= plugins.CAPABILITIES and {"nll", "sample", "greedy_match"} <= fam.capabilities
    # the only exact family is the only left-to-right one; infilling: the families whose adapters implement infill()
    assert [f.name for f in plugins.families_with("exact_likelihood")] == ["ar"]
    assert {f.name for f in plugins.families_with("infill")} == {"mdlm", "sedd", "plaid", "dream"}


def test_a_record_is_checked_when_written():
    with pytest.raises(BadSpec, match="unknown capabilities"):
        plugins.Family("x", loader="m:f", capabilities={"nll", "telepathy"})
    with pytest.raises(BadSpec, match="module:object"):
        plugins.Family("x", loader="m.f", capabilities={"nll"})
    with pytest.raises(BadSpec, match="lower-case"):
        plugins.Family("My Family", loader="m:f", capabilities={"nll"})
    with pytest.raises(UnknownName, match="did you mean 'exact_likelihood'"):
        plugins.family("ar").has("exact_likelihod")
    broken = plugins.Family("broken", loader="no_such_module_xyz:load", capabilities={"nll"})
    with pytest.raises(BadSpec, match="cannot import its loader"):
        broken.load("loader")


def test_register_refuses_a_taken_name_with_one_line():
    clash = dataclasses.replace(toyfam.FAMILY, name="ar")
    with pytest.raises(BadSpec) as e:
        plugins.register(clash)
    assert "built-in families cannot be replaced" in str(e.value) and "\n" not in str(e.value)
    assert plugins.family("ar").loader == "dlmbench.families.ar.adapter:load_ar"
    with plugins.registered(toyfam.FAMILY):
        with pytest.raises(BadSpec, match="clashes"):
            plugins.register(dataclasses.replace(toyfam.FAMILY, description="another bigram"))
        plugins.register(plugins.family("bigram"), exist_ok=True)  # the very same record again is fine
    with pytest.raises(UnknownName, match="bigram"):
        plugins.family("bigram")
    with pytest.raises(BadSpec, match="built in"):
        plugins.unregister("mdlm")


def test_card_validation_asks_the_table(tmp_path):
    from dlmbench.specs import ModelSpec

    card = {"name": "toy", "family": "bigram", "checkpoint": {"local": str(tmp_path)}}
    with pytest.raises(UnknownName, match="unknown model family 'bigram'"):
        ModelSpec.from_dict(card)
    with pytest.raises(UnknownName, match="did you mean 'mdlm'"):
        ModelSpec.from_dict({**card, "family": "mdml"})
    with plugins.registered(toyfam.FAMILY):
        assert ModelSpec.from_dict(card).family == "bigram"


def test_zoo_lists_and_dispatches_through_the_table():
    from dlmbench.zoo import ZooRecipe, recipe, zoo_families

    assert zoo_families() == sorted(plugins.BUILTIN_NAMES)
    assert all(isinstance(recipe(f), ZooRecipe) for f in zoo_families())
    assert recipe("plaid").bos is False and recipe("llada").mask == "in_vocab" and recipe("ar").tokenizer_subfolder == ""
    with plugins.registered(toyfam.FAMILY):  # a family without a zoo recipe is refused by name
        assert "bigram" not in zoo_families()
        with pytest.raises(UnknownName, match="names no zoo recipe"):
            recipe("bigram")


def test_no_package_module_branches_on_a_family_name():
    """Outside a family's own folder and the zoo's recipes, code asks capabilities; it never compares
    ``family`` with a built-in name nor lists the built-in families."""
    import re

    pkg = REPO / "dlmbench"
    allowed = {"plugins.py", "zoo/recipes.py"}
    pattern = re.compile(r"family\s*(==|!=|in)\s*[(\[{\"']|\(\s*\"ar\",\s*\"mdlm\"|FAMILIES\s*=")
    hits = []
    for f in pkg.rglob("*.py"):
        rel = f.relative_to(pkg).as_posix()
        if rel in allowed or rel.startswith(("families/", "nets/")):
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert hits == []


def test_the_genppl_evaluator_card_is_checked_at_resolve_time_before_any_load(tmp_path):
    """A diffusion card as the gen-PPL evaluator (or MAUVE featurizer) fails when the job is resolved: one line
    naming the missing capability, and no model is loaded (the card's checkpoint does not even exist)."""
    from dlmbench.runner.resolve import resolve

    (tmp_path / "ghost.yaml").write_text(yaml.safe_dump(
        {"name": "ghost-mdlm", "family": "mdlm", "checkpoint": {"local": str(tmp_path / "missing")}}))
    with pytest.raises(BadSpec) as e:
        resolve("ghost-mdlm", "genppl-kjv", settings={"eval_model": "ghost-mdlm"}, specs=[tmp_path])
    msg = str(e.value)
    assert "eval_model ghost-mdlm is a mdlm model, which lacks exact_likelihood" in msg and "\n" not in msg
    with pytest.raises(BadSpec, match="featurizer ghost-mdlm is a mdlm model, which lacks hidden_states"):
        resolve("ghost-mdlm", "mauve-kjv", settings={"featurizer": "ghost-mdlm"}, specs=[tmp_path])


# --------------------------------------------------------------------------------------------------
# entry points, in a subprocess (the table reads them once per process)


def _site(tmp_path: Path, entry_points: str, extra: dict[str, str] | None = None) -> Path:
    site = tmp_path / "site"
    info = site / "toyfam_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dlmbench.families]\n" + entry_points)
    for name, text in (extra or {}).items():
        (site / name).write_text(text)
    return site


def _dlmbench(site: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(site), str(HERE), str(REPO)])
    full_env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    full_env.pop("DLMBENCH_NO_PLUGINS", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "dlmbench.cli", *argv], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_an_entry_point_family_is_listed_and_runs(tmp_path):
    site = _site(tmp_path, "bigram = toyfam:FAMILY\n")
    (tmp_path / "bigram.json").write_text(
        '{"alphabet": "ab ?", "counts": [[1, 2, 0, 0, 1], [2, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [3, 1, 0, 0, 0]]}')
    (tmp_path / "docs.jsonl").write_text('{"text": "ab ba"}\n{"text": "aab"}\n')
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "toy.yaml").write_text(yaml.safe_dump({"name": "toy", "family": "bigram", "checkpoint": {"local": str(tmp_path / "bigram.json")}}))
    (specs / "toy-ppl.yaml").write_text(yaml.safe_dump(
        {"name": "toy-ppl", "type": "perplexity", "dataset": {"source": "local", "path": str(tmp_path / "docs.jsonl"), "field": "text"},
         "packing": {"mode": "document", "add_bos": True, "add_eos": False}}))

    res = _dlmbench(site, "list", "families")
    assert res.returncode == 0, res.stderr
    assert "entry point bigram = toyfam:FAMILY (package toyfam-plugin)" in " ".join(res.stdout.split())
    heads = [ln.split()[0] for ln in res.stdout.splitlines() if not ln.startswith(" ")]  # indented: descriptions
    assert heads == sorted(["ar", "bd3lm", "bigram", "dream", "duo", "llada", "mdlm", "plaid", "sedd"])

    res = _dlmbench(site, "--specs", str(specs), "run", "--model", "toy", "--task", "toy-ppl", "--out", str(tmp_path / "res"),
                    "--progress", "off")
    assert res.returncode == 0, res.stderr
    import json
    import math

    rows = [json.loads(ln) for f in (tmp_path / "res").rglob("metrics.jsonl") for ln in f.read_text().splitlines() if ln.strip()]
    ppl = next(r for r in rows if r["metric"] == "perplexity")
    # by hand, smoothing 1: p(b|a) = (c[a][b] + 1) / (sum_b c[a][b] + 5); ids a=0 b=1 ' '=2 BOS=4
    c = [[1, 2, 0, 0, 1], [2, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [3, 1, 0, 0, 0]]
    p = lambda a, b: (c[a][b] + 1) / (sum(c[a]) + 5)  # noqa: E731
    nll = -sum(math.log(p(a, b)) for ids in ([4, 0, 1, 2, 1, 0], [4, 0, 0, 1]) for a, b in zip(ids, ids[1:]))
    assert ppl["family"] == "bigram" and ppl["value"] == pytest.approx(math.exp(nll / 8), rel=1e-12)

    off = _dlmbench(site, "list", "families", env={"DLMBENCH_NO_PLUGINS": "1"})  # the off switch
    assert off.returncode == 0 and "bigram" not in off.stdout


@pytest.mark.parametrize(
    "entry, extra, message",
    [
        ("ar = clash:AR\n", {"clash.py": "import dataclasses, toyfam\nAR = dataclasses.replace(toyfam.FAMILY, name='ar')\n"},
         "error: family 'ar' from entry point ar = clash:AR (package toyfam-plugin) clashes with the one from dlmbench; "
         "built-in families cannot be replaced: rename yours"),
        ("unigram = toyfam:FAMILY\n", None, "defines family 'bigram'; the entry point must be named after it"),
        ("bigram = no_such_module_xyz:FAMILY\n", None, "failed to load: ModuleNotFoundError"),
        ("bigram = toyfam:load_bigram\n", None, "is a function, not a dlmbench.plugins.Family"),
    ],
)
def test_a_bad_entry_point_is_refused_with_one_line(tmp_path, entry, extra, message):
    res = _dlmbench(_site(tmp_path, entry, extra), "list", "families")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr and "Traceback" not in res.stderr


def test_non_finite_weights_are_named_at_load_time():
    """The load-time pass names the first poisoned tensor of an adapter's modules (issue "Strict loading", item 3)."""
    import torch

    from dlmbench.interface import LanguageModel

    class Adapter:
        first_non_finite_weight = LanguageModel.first_non_finite_weight

        def __init__(self):
            self.backbone = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
            self.alias = self.backbone  # the same module twice is checked once
            self.steps = 4

    a = Adapter()
    assert a.first_non_finite_weight() is None
    with torch.no_grad():
        a.backbone[1].bias[0] = float("inf")
    assert a.first_non_finite_weight() == "backbone.1.bias"
    with torch.no_grad():
        a.backbone[0].weight[2, 1] = float("nan")
    assert a.first_non_finite_weight() == "backbone.0.weight"
