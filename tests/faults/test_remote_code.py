"""No code from checkpoints (issue "Trustworthy results", item 4).

A checkpoint folder may ship Python files and name them in ``auto_map`` (``config.json``, ``tokenizer_config.json``);
``transformers`` imports them with ``trust_remote_code=True`` and, when the argument is not given, asks "[y/N]" on
standard input, so a piped "y" used to run the checkpoint's code. dlmbench passes ``trust_remote_code=False`` to
every ``from_pretrained`` and never reads standard input: every test here plants a Python file whose import writes
a marker file and checks that the marker never appears, whether the checkpoint still loads with the classes
transformers ships (it does when ``model_type`` / ``tokenizer_class`` name one) or fails with one line saying why.
"""

from __future__ import annotations

import builtins
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from harness import finished_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_dit import make_tiny  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def plant(folder: Path, module: str, marker: Path) -> None:
    """``folder/module.py``: importing it writes ``marker``; it also defines the classes an auto_map may name."""
    (folder / f"{module}.py").write_text(textwrap.dedent(f"""\
        open({str(marker)!r}, "w").write("checkpoint code ran")
        from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

        class EvilTokenizer(PreTrainedTokenizerFast):
            pass

        class EvilConfig(GPT2Config):
            model_type = "evil"

        class EvilModel(GPT2LMHeadModel):
            config_class = EvilConfig
        """))


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def evil_gpt2(world, *, tokenizer: bool, config: bool, name: str = "evil-gpt2") -> tuple[str, Path, Path]:
    """A copy of the world's GPT-2 whose tokenizer and/or config name classes of a planted ``evil.py``."""
    card = yaml.safe_load((world.specs / "models" / "tiny-gpt2.yaml").read_text())
    folder = world.root / name
    shutil.copytree(card["checkpoint"]["local"], folder)
    marker = world.root / "MARKER"
    plant(folder, "evil", marker)
    if tokenizer:
        edit_json(folder / "tokenizer_config.json", tokenizer_class="EvilTokenizer",
                  auto_map={"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]})
    if config:
        edit_json(folder / "config.json", model_type="evil", architectures=["EvilModel"],
                  auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"})
    (world.specs / "models" / f"{name}.yaml").write_text(yaml.safe_dump({**card, "name": name, "checkpoint": {"local": str(folder)}}))
    return name, folder, marker


@pytest.fixture
def no_stdin(monkeypatch):
    """Fail the test if anything asks a question on standard input (transformers' "[y/N]" prompt)."""
    asked = []

    def refuse(prompt=""):
        asked.append(prompt)
        return "y"  # what a piped "yes" would answer: the code would run

    monkeypatch.setattr(builtins, "input", refuse)
    return asked


def test_custom_tokenizer_class_is_never_imported(world, capsys, no_stdin):
    """``tokenizer_class`` names the planted class, ``model_type`` stays gpt2: the tokenizer loads from its
    ``tokenizer.json`` with transformers' own class, the job succeeds, the planted file never runs."""
    name, _, marker = evil_gpt2(world, tokenizer=True, config=False)
    world.run(capsys, model=name)
    assert not marker.exists() and not no_stdin
    world.assert_intact()


def test_custom_config_with_a_known_architecture_is_never_imported(world, capsys, no_stdin):
    name, folder, marker = evil_gpt2(world, tokenizer=False, config=True)
    edit_json(folder / "config.json", model_type="gpt2")  # auto_map stays: transformers' GPT-2 is used
    world.run(capsys, model=name)
    assert not marker.exists() and not no_stdin
    world.assert_intact()


@pytest.mark.parametrize("tokenizer", [False, True], ids=["config", "config+tokenizer"])
def test_checkpoint_that_needs_its_own_code_fails_in_one_line(world, capsys, no_stdin, tokenizer):
    """``model_type`` exists only in the planted file: the load cannot work without it, so the job fails (exit 1)
    with one line naming the class and saying dlmbench never runs checkpoint code; nothing was asked or run."""
    name, _, marker = evil_gpt2(world, tokenizer=tokenizer, config=True)
    err = world.run(capsys, model=name, code=1)
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert "never runs code from a checkpoint" in line and "evil.Evil" in line, line
    assert not marker.exists() and not no_stdin
    assert finished_runs(world.out) == [world.earlier]
    world.assert_intact()


def test_piped_yes_on_stdin_runs_nothing(world, tmp_path):
    """The CLI in a subprocess with "y" piped on stdin (what used to run the code) and then with stdin closed."""
    name, _, marker = evil_gpt2(world, tokenizer=True, config=True)
    argv = [sys.executable, "-m", "dlmbench.cli", "--specs", str(world.specs), "run", "--model", name, "--task", "tiny-ppl",
            "--out", str(tmp_path / "out"), "--progress", "off"]
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    for stdin in ({"input": "y\ny\ny\n"}, {"stdin": subprocess.DEVNULL}):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, **stdin)
        assert proc.returncode == 1, proc.stderr
        assert "[y/N]" not in proc.stdout + proc.stderr
        assert "never runs code from a checkpoint" in proc.stderr and "Traceback" not in proc.stderr
        assert not marker.exists()


@pytest.mark.parametrize("family", ["mdlm", "llada"])
def test_zoo_checkpoints_with_auto_map_still_load_without_running_it(world, capsys, no_stdin, family):
    """The published MDLM and LLaDA formats carry an ``auto_map`` (``configuration_mdlm.py``, ...); dlmbench reads
    their weights with its own networks. Plant those modules: the job succeeds and none of them is imported."""
    marker = world.root / "MARKER"
    if family == "mdlm":
        tiny = make_tiny(world.root / "mdlm", "mdlm")
        folder, card = Path(tiny["checkpoint"]), {**tiny["card"], "settings": {"mc_samples": 2, "batch_size": 4}}
    else:
        from dlmbench.families.llada.writer import write_tiny_llada

        folder = write_tiny_llada(world.root / "llada", seed=3)
        card = {"name": "tiny-llada", "family": "llada", "checkpoint": {"local": str(folder)}, "max_length": 64,
                "settings": {"mc_samples": 2, "batch_size": 4}}
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    for target in auto_map.values():
        plant(folder, target.split(".")[0], marker)
    (world.specs / "models" / f"{card['name']}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    world.run(capsys, model=card["name"])
    assert not marker.exists() and not no_stdin
    world.assert_intact()


def test_every_loader_call_passes_trust_remote_code_false():
    """A source check beside the behaviour tests: every ``from_pretrained`` / ``load_dataset`` call in dlmbench passes
    ``trust_remote_code=False`` (directly, or in the ``**kwargs`` it builds), so a new call cannot forget it."""
    import ast

    calls, missing = 0, []
    for path in sorted((REPO / "dlmbench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("from_pretrained", "load_dataset")):
                continue
            calls += 1
            given = {k.arg: k.value for k in node.keywords}
            value = given.get("trust_remote_code")
            ok = isinstance(value, ast.Constant) and value.value is False
            if not ok and None in given:  # **kwargs: the dict it comes from must say False
                ok = '"trust_remote_code": False' in path.read_text(encoding="utf-8")
            if not ok:
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls >= 5 and not missing, missing
