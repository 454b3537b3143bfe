"""Fault cases: broken models and broken checkpoints (issue "Trustworthy results", items 2 and 8).

A non-finite number is a failure, never a result: NaN or infinite weights in any family the tiny zoo builds, or a
task that yields a NaN metric, stderr or per-request value, fail the job (exit 1) with one line naming where the
number appeared, write no finished run and leave the earlier run intact. A checkpoint that cannot be read as the
weights it claims (truncated, empty, a tensor missing or of the wrong shape, a tokenizer larger than the
embedding) fails the same way, before any number is computed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from harness import finished_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_dit import make_tiny  # noqa: E402


# -- building broken checkpoints -------------------------------------------------------------------
def add_card(world, card: dict) -> str:
    (world.specs / "models" / f"{card['name']}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return card["name"]


def gpt2_copy(world, name: str = "bad-gpt2") -> tuple[str, Path]:
    """A copy of the world's tiny GPT-2 under a new card ``name`` (the earlier run's checkpoint is not touched)."""
    card = yaml.safe_load((world.specs / "models" / "tiny-gpt2.yaml").read_text())
    folder = world.root / name
    shutil.copytree(card["checkpoint"]["local"], folder)
    add_card(world, {**card, "name": name, "checkpoint": {"local": str(folder)}})
    return name, folder


def llada_model(world, name: str = "bad-llada") -> tuple[str, Path]:
    from dlmbench.families.llada.writer import write_tiny_llada

    folder = write_tiny_llada(world.root / name, seed=3)
    add_card(world, {"name": name, "family": "llada", "checkpoint": {"local": str(folder)}, "max_length": 64,
                     "settings": {"mc_samples": 2, "batch_size": 4}})
    return name, folder


def dit_model(world, family: str) -> tuple[str, Path]:
    tiny = make_tiny(world.root / family, family, max_length=32)
    card = {**tiny["card"], "settings": {"mc_samples": 2, "batch_size": 4}}
    return add_card(world, card), Path(tiny["checkpoint"])


BUILDERS = {
    "ar": gpt2_copy,
    "llada": llada_model,
    "mdlm": lambda world: dit_model(world, "mdlm"),
    "sedd": lambda world: dit_model(world, "sedd"),
}


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    assert files, f"no weight files in {folder}"
    return files


def edit_weights(path: Path, edit) -> None:
    """Rewrite one weight file (safetensors or a torch state dict) through ``edit(state) -> state``."""
    if path.suffix == ".safetensors":
        save_file(edit(load_file(path)), path, metadata={"format": "pt"})
    else:
        torch.save(edit(torch.load(path, weights_only=True)), path)


def fill(value: float):
    return lambda state: {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in state.items()}


def assert_failed_cleanly(world, err: str, *words: str) -> None:
    """Exit 1 was asserted by ``world.run``; the error names ``words``, no new finished run, earlier run intact."""
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    assert finished_runs(world.out) == [world.earlier], finished_runs(world.out)
    assert list((world.out / "failures").rglob("*.json")), "the failure was not recorded under failures/"
    world.assert_intact()


# -- non-finite weights, every family ----------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(BUILDERS))
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_fail_the_job(world, capsys, family, value):
    name, folder = BUILDERS[family](world)
    for f in weight_files(folder):
        edit_weights(f, fill(value))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "NaN or infinite")


def test_one_nan_weight_fails_the_job(world, capsys):
    name, folder = gpt2_copy(world)

    def poison(state):
        key = next(k for k in state if k.endswith("attn.c_attn.weight"))
        state[key] = state[key].clone()
        state[key][0, 0] = float("nan")
        return state

    edit_weights(folder / "model.safetensors", poison)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "NaN or infinite")


def test_nan_weights_under_force_keep_the_earlier_run(world, capsys):
    """The earlier run's own checkpoint turns NaN and ``--force`` recomputes it: the job fails and the earlier
    run stays, byte for byte; no old numbers are printed as if they were the new ones."""
    card = yaml.safe_load((world.specs / "models" / "tiny-gpt2.yaml").read_text())
    edit_weights(Path(card["checkpoint"]["local"]) / "model.safetensors", fill(float("nan")))
    err = world.run(capsys, "--force", code=1)
    assert_failed_cleanly(world, err, "tiny-gpt2", "NaN or infinite")


# -- non-finite numbers from a task ------------------------------------------------------------------
def patch_task(monkeypatch, change) -> None:
    """Every task runner's output goes through ``change(output)`` before the runner builds rows."""
    from dlmbench.tasks import registry

    original = registry.task_runner

    def task_runner(task_type):
        run = original(task_type)

        def patched(*args, **kwargs):
            out = run(*args, **kwargs)
            change(out)
            return out

        return patched

    monkeypatch.setattr(registry, "task_runner", task_runner)


def set_example(i: int, key: str, value):
    def change(out):
        out.examples[i][key] = value

    return change


def set_metric(i: int, **fields):
    def change(out):
        out.metrics[i] = dataclasses.replace(out.metrics[i], **fields)

    return change


TASK_FAULTS = {
    "example-nan": (set_example(2, "nll", float("nan")), ["examples.jsonl item 2", "'nll'"]),
    "example-inf": (set_example(0, "nll", float("inf")), ["examples.jsonl item 0", "'nll'"]),
    "example-numpy-nan": (set_example(1, "nll", np.float64("nan")), ["examples.jsonl item 1", "'nll'"]),
    "example-nested-nan": (set_example(3, "extra", {"scores": [0.5, float("nan")]}), ["examples.jsonl item 3", "['extra']['scores'][1]"]),
    "metric-value-nan": (set_metric(0, value=float("nan")), ["metric 'nll_per_token'", "value nan"]),
    "metric-value-neg-inf": (set_metric(1, value=-math.inf), ["metric 'perplexity'", "value -inf"]),
    "metric-stderr-inf": (set_metric(0, stderr=math.inf), ["metric 'nll_per_token'", "stderr inf"]),
    "metric-stderr-nan": (set_metric(2, stderr=float("nan")), ["metric 'bits_per_byte'", "stderr nan"]),
    "metric-bound-unknown": (set_metric(0, bound="lower"), ["metric 'nll_per_token'", "bound 'lower'"]),
}


@pytest.mark.parametrize("case", sorted(TASK_FAULTS))
def test_non_finite_task_output_fails_the_job(world, capsys, monkeypatch, case):
    change, words = TASK_FAULTS[case]
    patch_task(monkeypatch, change)
    err = world.run(capsys, "--seed", "1", code=1)
    assert_failed_cleanly(world, err, "tiny-gpt2 × tiny-ppl", *words)


def test_undefined_stderr_of_one_unit_is_null_not_a_failure(world, capsys):
    """With one scored document the standard error is undefined: the row says ``null``, the job succeeds."""
    world.run(capsys, "--limit", "1", "--json")
    runs = [r for r in finished_runs(world.out) if r != world.earlier]
    assert len(runs) == 1
    rows = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["n"] == 1 and r["stderr"] is None and math.isfinite(r["value"]) for r in rows)
    world.assert_intact()


# -- checkpoints that cannot be read as the weights they claim ----------------------------------------
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_tensor(match: str):
    def edit(state):
        key = next(k for k in state if match in k)
        return {k: v for k, v in state.items() if k != key}

    return edit


def reshape_tensor(match: str):
    def edit(state):
        key = next(k for k in state if match in k and state[k].dim() == 2)
        v = state[key]
        state[key] = torch.zeros(v.shape[0] + 1, v.shape[1], dtype=v.dtype)
        return state

    return edit


def first_weights(folder: Path) -> Path:
    return weight_files(folder)[0]


CHECKPOINT_FAULTS = {
    "ar-truncated": ("ar", lambda f: truncate(f / "model.safetensors")),
    "ar-empty": ("ar", lambda f: (f / "model.safetensors").write_bytes(b"")),
    "ar-garbage": ("ar", lambda f: (f / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file" * 10)),
    "ar-missing-tensor": ("ar", lambda f: edit_weights(f / "model.safetensors", drop_tensor("h.1.mlp.c_fc.weight"))),
    "ar-wrong-shape": ("ar", lambda f: edit_weights(f / "model.safetensors", reshape_tensor("h.0.mlp.c_proj.weight"))),
    "ar-no-weights": ("ar", lambda f: (f / "model.safetensors").unlink()),
    "ar-config-corrupt": ("ar", lambda f: (f / "config.json").write_text("{not json")),
    "ar-tokenizer-corrupt": ("ar", lambda f: (f / "tokenizer.json").write_text("{not json")),
    "llada-truncated": ("llada", lambda f: truncate(first_weights(f))),
    "llada-empty": ("llada", lambda f: first_weights(f).write_bytes(b"")),
    "llada-missing-tensor": ("llada", lambda f: edit_weights(first_weights(f), drop_tensor("weight"))),
    "llada-wrong-shape": ("llada", lambda f: edit_weights(first_weights(f), reshape_tensor("weight"))),
    "mdlm-truncated": ("mdlm", lambda f: truncate(first_weights(f))),
    "mdlm-empty": ("mdlm", lambda f: first_weights(f).write_bytes(b"")),
    "mdlm-missing-tensor": ("mdlm", lambda f: edit_weights(first_weights(f), drop_tensor("weight"))),
    "mdlm-wrong-shape": ("mdlm", lambda f: edit_weights(first_weights(f), reshape_tensor("weight"))),
    "sedd-truncated": ("sedd", lambda f: truncate(first_weights(f))),
    "sedd-empty": ("sedd", lambda f: first_weights(f).write_bytes(b"")),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_FAULTS))
def test_broken_checkpoint_is_one_line(world, capsys, case):
    family, damage = CHECKPOINT_FAULTS[case]
    name, folder = BUILDERS[family](world)
    damage(folder)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name)


def test_tokenizer_larger_than_the_embedding_is_one_line(world, capsys):
    """Vocabulary mismatch: the tokenizer has more tokens than the weights have rows. The error names both sizes
    (before: a raw ``IndexError`` from the embedding, or silently wrong numbers)."""
    name, folder = gpt2_copy(world)

    def shrink(state):
        return {k: (v[:100].clone() if k.endswith("wte.weight") else v) for k, v in state.items()}

    edit_weights(folder / "model.safetensors", shrink)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 100
    (folder / "config.json").write_text(json.dumps(config))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "tokenizer", "100")
