"""Fault cases: broken models and broken checkpoints (issue "Trustworthy results", items 2 and 8).

A non-finite number is a failure, never a result: NaN or infinite weights in any family the tiny zoo builds, or a
task that yields a NaN metric, stderr or per-request value, fail the job (exit 1) with one line naming where the
number appeared, write no finished run and leave the earlier run intact. A checkpoint that cannot be read as the
weights it claims (truncated, empty, a tensor missing or of the wrong shape, a tokenizer larger than the
embedding) fails the same way, before any number is computed.

Strict loading (issue 19, items 1, 2 and 6): in a copy of each family's checkpoint, in each published layout (HF
GPT-2 safetensors, LLaDA's index + shards, MDLM's hub safetensors and Lightning .ckpt with EMA, SEDD's Hydra
config + pytorch_model.bin, Plaid's four .pt files), one tensor is deleted, renamed, reshaped or poisoned, or a
foreign one added: exit 1, one line naming the tensor (and both shapes), no run written. Tied heads are derived,
never missing; an untied head that is absent is. Another zoo model's tokenizer (or one whose special ids disagree
with the config) fails at load the same way; documented padding (a rounded-up embedding, LLaDA's 126464 rows)
loads.
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


def plaid_model(world, name: str = "bad-plaid") -> tuple[str, Path]:
    """Plaid's four released state dicts (``torch.save`` ``.pt`` files) and a tiny OWT2-style tokenizer."""
    from dlmbench.families.plaid.writer import write_tiny_plaid

    folder = write_tiny_plaid(world.root / name, seed=1)
    add_card(world, {"name": name, "family": "plaid", "checkpoint": {"local": str(folder)}, "max_length": 64,
                     "settings": {"mc_samples": 2, "batch_size": 4, "greedy_steps": 4}})
    return name, folder


BUILDERS = {
    "ar": gpt2_copy,  # HF folder, model.safetensors (GPT-2 with its head tied to the embedding)
    "llada": llada_model,  # published layout: sharded safetensors + model.safetensors.index.json
    "mdlm": lambda world: dit_model(world, "mdlm"),  # kuleshov-group/mdlm-owt layout: model.safetensors, backbone.*
    "sedd": lambda world: dit_model(world, "sedd"),  # louaaron/sedd-* layout: Hydra config.json + pytorch_model.bin
    "plaid": plaid_model,  # plaid1b_weights layout: four .pt state dicts
}


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt"))
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


# -- strict loading: every tensor of the network from the checkpoint, every tensor of the checkpoint used -----------
# (issue 19, items 1 and 6). One tensor of a copy of each family's checkpoint, in each family's published layout,
# is deleted, renamed, reshaped or poisoned, or a foreign tensor is added; the job fails at load (exit 1) with one
# line naming the tensor (and the shapes), and no run is written.
TARGETS = {  # family -> (weight file, or None for "the LLaDA shard its index names", one tensor of it)
    "ar": ("model.safetensors", "transformer.h.1.mlp.c_fc.weight"),
    "llada": (None, "model.transformer.blocks.1.ff_proj.weight"),
    "mdlm": ("model.safetensors", "backbone.blocks.1.mlp.0.weight"),
    "sedd": ("pytorch_model.bin", "blocks.1.mlp.0.weight"),
    "plaid": ("model.pt", "blocks.1.mlp.fc1.weight"),
}
EXTRA = "extra_head.weight"


def target_file(family: str, folder: Path) -> tuple[Path, str]:
    name, key = TARGETS[family]
    if name is None:
        name = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][key]
    return folder / name, key


def delete(key):
    return lambda state: {k: v for k, v in state.items() if k != key}


def rename(key):
    return lambda state: {(k + "_renamed" if k == key else k): v for k, v in state.items()}


def grow(key):
    def edit(state):
        v = state[key]
        return {**state, key: torch.zeros(v.shape[0] + 1, *v.shape[1:], dtype=v.dtype)}

    return edit


def add_extra(state):
    return {**state, EXTRA: torch.zeros(3, 3, dtype=next(iter(state.values())).dtype)}


def poison(key):
    def edit(state):
        v = state[key].clone()
        v.view(-1)[0] = float("nan")
        return {**state, key: v}

    return edit


def shape_of(path: Path, key: str) -> list[int]:
    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    return list(state[key].shape)


STRUCTURAL = {  # fault -> (edit of the state dict, words the error line names besides the model)
    "delete": (delete, lambda key, shape: [key]),
    "rename": (rename, lambda key, shape: [key, key + "_renamed"]),
    "reshape": (grow, lambda key, shape: [key, str([shape[0] + 1, *shape[1:]]), str(shape)]),
    "extra": (lambda key: add_extra, lambda key, shape: [EXTRA]),
    "nan": (poison, lambda key, shape: [key, "NaN or infinite"]),
}


@pytest.mark.parametrize("fault", sorted(STRUCTURAL))
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_damaged_tensor_is_one_line_naming_it(world, capsys, family, fault):
    name, folder = BUILDERS[family](world)
    path, key = target_file(family, folder)
    shape = shape_of(path, key)
    edit, words = STRUCTURAL[fault]
    edit_weights(path, edit(key))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, *words(key, shape))


def edit_index(folder: Path, change) -> None:
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    change(index["weight_map"])
    path.write_text(json.dumps(index))


def test_llada_tensor_deleted_from_shard_and_index(world, capsys):
    """Both the shard and the index lose the tensor: the architecture misses it."""
    name, folder = llada_model(world)
    path, key = target_file("llada", folder)
    edit_weights(path, delete(key))
    edit_index(folder, lambda m: m.pop(key))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "missing", key)


def test_llada_extra_tensor_listed_in_the_index(world, capsys):
    """A foreign tensor in a shard and in the index: the architecture has no place for it."""
    name, folder = llada_model(world)
    path, _ = target_file("llada", folder)
    edit_weights(path, add_extra)
    edit_index(folder, lambda m: m.__setitem__(EXTRA, path.name))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "unexpected", EXTRA)


def test_plaid_gamma_bounds_file_is_strict_too(world, capsys):
    """Every one of Plaid's four files is compared key for key: a scalar of gamma_bounds.pt made a vector."""
    name, folder = plaid_model(world)
    edit_weights(folder / "gamma_bounds.pt", lambda s: {**s, "gamma_0": torch.zeros(2)})
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "gamma_bounds", "gamma_0 [2] (expected [])")


def test_plaid_size_tensor_missing_is_one_line(world, capsys):
    """``input_linear.weight`` gives the width: without it the sizes cannot be read, said in one line."""
    name, folder = plaid_model(world)
    edit_weights(folder / "model.pt", delete("input_linear.weight"))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "missing input_linear.weight")


# -- the MDLM-repo Lightning .ckpt format: the backbone's buffers from state_dict, its parameters from the EMA ------
def lightning_model(world, edit_state=None, edit_ema=None, name: str = "bad-mdlm-ckpt") -> str:
    """A tiny MDLM-repo Lightning checkpoint written through ``edit_state`` / ``edit_ema`` (``{name: tensor}`` ->
    ``{name: tensor}``; the EMA in the DiT's ``parameters()`` order, as ``shadow_params``)."""
    from dlmbench.nets.dit_writer import random_state_dict, write_mdlm_lightning_ckpt

    from dlmbench.nets.dit import parameter_shapes

    tiny = make_tiny(world.root / name, "mdlm", fmt="lightning", max_length=32)
    config, path = tiny["config"], Path(tiny["checkpoint"])
    write_mdlm_lightning_ckpt(path, config, state=(edit_state or dict)(dict(random_state_dict(config, 0))))
    if edit_ema is not None:
        ckpt = torch.load(path, weights_only=True)
        ema = dict(zip(parameter_shapes(config), ckpt["ema"]["shadow_params"]))
        ckpt["ema"]["shadow_params"] = list(edit_ema(ema).values())
        torch.save(ckpt, path)
    return add_card(world, {**tiny["card"], "name": name, "settings": {"mc_samples": 2, "batch_size": 4}})


LIGHTNING_FAULTS = {
    "buffer-deleted": (delete("rotary_emb.inv_freq"), None, ["missing", "rotary_emb.inv_freq"]),
    "extra-tensor": (add_extra, None, ["unexpected", EXTRA]),
    "raw-renamed": (rename("blocks.1.mlp.0.weight"), None, ["unexpected", "blocks.1.mlp.0.weight_renamed"]),
    "ema-one-short": (None, delete("blocks.1.mlp.0.weight"), ["EMA has", "use_ema=False"]),
    "ema-reshaped": (None, grow("blocks.1.mlp.0.weight"), ["EMA tensor", "blocks.1.mlp.0.weight"]),
    "ema-nan": (None, poison("blocks.1.mlp.0.weight"), ["blocks.1.mlp.0.weight", "NaN or infinite"]),
}


@pytest.mark.parametrize("case", sorted(LIGHTNING_FAULTS))
def test_lightning_checkpoint_fault_is_one_line(world, capsys, case):
    edit_state, edit_ema, words = LIGHTNING_FAULTS[case]
    name = lightning_model(world, edit_state, edit_ema)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, *words)


# -- tied weights: derived, never missing; an untied head that is absent is missing -----------------------------------
def new_runs(world) -> list[Path]:
    return [r for r in finished_runs(world.out) if r != world.earlier]


def set_config(folder: Path, **fields) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))


def test_ar_tied_head_absent_from_the_file_loads(world, capsys):
    """tie_word_embeddings: the head is the input embedding (transformers ties it; not reported missing)."""
    from dlmbench import plugins
    from dlmbench.registry import Registry

    name, folder = gpt2_copy(world, "tied-gpt2")
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is True
    assert not any(k.startswith("lm_head") for k in load_file(folder / "model.safetensors"))
    model = plugins.load_model(Registry.default([world.specs]).model(name))
    assert model.model.lm_head.weight.data_ptr() == model.model.transformer.wte.weight.data_ptr()
    world.run(capsys, model=name)
    assert len(new_runs(world)) == 1


def test_ar_untied_head_absent_from_the_file_fails(world, capsys):
    name, folder = gpt2_copy(world, "untied-gpt2")
    set_config(folder, tie_word_embeddings=False)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "missing", "lm_head.weight")


def zoo_copy(world, model: str, name: str) -> tuple[str, Path]:
    """A copy of the shipped zoo model ``zoo-<model>`` (weights and tokenizer) under the card ``name``."""
    card = yaml.safe_load((ZOO_CARDS / f"zoo-{model}.yaml").read_text())
    folder = world.root / name
    shutil.copytree(ZOO_CARDS / card["checkpoint"]["local"], folder)
    tokenizer = ZOO_CARDS / card["tokenizer"]["local"]
    inside = tokenizer.relative_to(ZOO_CARDS / card["checkpoint"]["local"]) if tokenizer.is_relative_to(ZOO_CARDS / card["checkpoint"]["local"]) else None
    card = {**card, "name": name, "checkpoint": {"local": str(folder)},
            "tokenizer": {"local": str(folder / inside) if inside is not None else str(tokenizer)}}
    return add_card(world, card), folder


def test_zoo_ar_made_tied_without_its_head_loads(world, capsys):
    """The zoo AR model is untied; declared tied and stripped of lm_head, its head is its embedding."""
    name, folder = zoo_copy(world, "ar-kjv", "zoo-ar-tied")
    set_config(folder, tie_word_embeddings=True)
    edit_weights(folder / "model.safetensors", delete("lm_head.weight"))
    world.run(capsys, model=name)
    assert len(new_runs(world)) == 1


def test_llada_weight_tying_head_absent_loads(world, capsys):
    """LLaDA with ``weight_tying: true``: no ff_out is expected, the logits use wte."""
    name, folder = llada_model(world, "tied-llada")
    head = "model.transformer.ff_out.weight"
    shard = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][head]
    edit_weights(folder / shard, delete(head))
    edit_index(folder, lambda m: m.pop(head))
    set_config(folder, weight_tying=True)
    world.run(capsys, model=name)
    assert len(new_runs(world)) == 1


def test_llada_weight_tying_with_a_stored_head_fails(world, capsys):
    """Declared tied, yet the file has a separate head: it would be ignored, so it is refused."""
    name, folder = llada_model(world, "tied-llada-head")
    set_config(folder, weight_tying=True)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "unexpected", "model.transformer.ff_out.weight")


# -- tokenizer and weights that do not belong together (issue 19, items 2 and 6) -----------------------------------------
ZOO_CARDS = Path(__import__("dlmbench").__file__).parent / "cards" / "models"


def zoo_card(model: str, tokenizer_of: str, name: str) -> dict:
    """The shipped ``zoo-<model>`` card with the tokenizer folder of ``zoo-<tokenizer_of>`` (nothing is copied)."""
    card = yaml.safe_load((ZOO_CARDS / f"zoo-{model}.yaml").read_text())
    other = yaml.safe_load((ZOO_CARDS / f"zoo-{tokenizer_of}.yaml").read_text())
    return {**card, "name": name, "checkpoint": {"local": str(ZOO_CARDS / card["checkpoint"]["local"])},
            "tokenizer": {"local": str(ZOO_CARDS / other["tokenizer"]["local"])}}


TOKENIZER_SWAPS = {  # (model, tokenizer of) -> words of the error line
    ("ar-kjv", "ar-cd3"): ["18 tokens", "2048 embedding rows"],  # was NLL 9.97, exit 0
    ("ar-kjv", "ar-reversal"): ["1024 tokens", "2048 embedding rows"],
    ("ar-cd3", "ar-kjv"): ["2048 tokens", "embed only 18"],
    ("ar-reversal", "llada-kjv"): ["2049 tokens", "embed only 1024"],
    ("mdlm-cd3", "mdlm-kjv"): ["2048 tokens", "embed only 19"],
    ("mdlm-kjv", "mdlm-cd3"): ["18 tokens", "2049 embedding rows"],
    ("mdlm-reversal", "ar-kjv"): ["2048 tokens", "embed only 1025"],
    ("sedd-kjv", "mdlm-reversal"): ["1024 tokens", "2049 embedding rows"],
    ("llada-kjv", "mdlm-kjv"): ["<|mdm_mask|>", "2048"],
    ("llada-kjv", "ar-cd3"): ["<|mdm_mask|>", "2048"],
    ("plaid-kjv", "ar-cd3"): ["18 tokens", "exactly 2048"],
    ("plaid-kjv", "mdlm-reversal"): ["1024 tokens", "exactly 2048"],
}


@pytest.mark.parametrize("model,tokenizer_of", sorted(TOKENIZER_SWAPS), ids=[f"{m}<-{t}" for m, t in sorted(TOKENIZER_SWAPS)])
def test_another_zoo_models_tokenizer_is_one_line(world, capsys, model, tokenizer_of):
    name = add_card(world, zoo_card(model, tokenizer_of, f"swap-{model}"))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, *TOKENIZER_SWAPS[(model, tokenizer_of)])


ZOO_MODELS = sorted(p.stem[len("zoo-"):] for p in ZOO_CARDS.glob("zoo-*.yaml"))
COMPATIBLE = [("ar-cd3", "mdlm-cd3"), ("mdlm-kjv", "llada-kjv"), ("mdlm-kjv", "ar-kjv")]


@pytest.mark.parametrize("model,tokenizer_of", [(m, m) for m in ZOO_MODELS] + COMPATIBLE,
                         ids=[f"{m}<-{m}" for m in ZOO_MODELS] + [f"{m}<-{t}" for m, t in COMPATIBLE])
def test_zoo_models_load_with_their_own_and_compatible_tokenizers(tmp_path, model, tokenizer_of):
    """Every shipped zoo model loads with its tokenizer; so do the same ids saved by another zoo model (the same
    Countdown characters; the KJV BPE with <|mdm_mask|> appended at MDLM's mask row, a special token)."""
    from dlmbench import plugins
    from dlmbench.specs import ModelSpec

    model_ = plugins.load_model(ModelSpec.from_dict(zoo_card(model, tokenizer_of, f"ok-{model}")))
    assert model_.first_non_finite_weight() is None


def padded_gpt2(world, extra: int) -> tuple[str, int]:
    """A copy of the tiny GPT-2 whose embedding (and tied head) has ``extra`` unused rows; returns its tokenizer's size."""
    name, folder = gpt2_copy(world, f"padded-gpt2-{extra}")
    n = json.loads((folder / "config.json").read_text())["vocab_size"]

    def pad(state):
        w = state["transformer.wte.weight"]
        return {**state, "transformer.wte.weight": torch.cat([w, torch.zeros(extra, w.shape[1], dtype=w.dtype)])}

    edit_weights(folder / "model.safetensors", pad)
    set_config(folder, vocab_size=n + extra)
    return name, n


def test_padded_ar_embedding_loads(world, capsys):
    """64 unused rows (rounding 319 up to a multiple of 64) are documented padding."""
    name, _ = padded_gpt2(world, 64)
    world.run(capsys, model=name)
    assert len(new_runs(world)) == 1


def test_overpadded_ar_embedding_fails(world, capsys):
    """200 unused rows of 519: more than the 128 allowed, so the tokenizer is not this model's."""
    name, n = padded_gpt2(world, 200)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, f"{n} tokens", f"{n + 200} embedding rows", "at most 128 rows of padding")


@pytest.mark.parametrize("field,value,words", [
    ("eos_token_id", 5, ["eos id is 0", "config says 5"]),
    ("bos_token_id", 7, ["bos id is 0", "config says 7"]),
    ("eos_token_id", 5000, ["eos id 5000 is not a token"]),
    ("pad_token_id", 400, ["pad id 400 is not a token"]),
])
def test_ar_special_ids_must_agree_with_the_tokenizer(world, capsys, field, value, words):
    """The config's BOS / EOS / pad ids (config.json and generation_config.json, whose EOS ids count too) are
    tokens of the tokenizer, and its BOS / EOS are the tokenizer's."""
    name, folder = gpt2_copy(world, f"ids-gpt2-{field}-{value}")
    set_config(folder, **{field: value})
    gen = folder / "generation_config.json"
    gen.write_text(json.dumps({**json.loads(gen.read_text()), field: value}))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, *words)


def test_mdlm_mask_row_must_not_be_a_text_token(world, capsys):
    """A tokenizer as large as the embedding must hold a special token at MDLM's mask row, not text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ZOO_CARDS / "zoo" / "mdlm-kjv" / "tokenizer"))
    tok.add_tokens(["zzzword"])  # an ordinary token at id 2048, the model's mask id
    tok.save_pretrained(str(world.root / "tok-2049"))
    card = {**zoo_card("mdlm-kjv", "mdlm-kjv", "mask-clash"), "tokenizer": {"local": str(world.root / "tok-2049")}}
    name = add_card(world, card)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "mask id 2048", "zzzword")


def test_llada_config_mask_id_must_be_the_tokenizers(world, capsys):
    name, folder = zoo_copy(world, "llada-kjv", "llada-mask-id")
    set_config(folder, mask_token_id=7)
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "<|mdm_mask|>", "2048", "expected 7")


def test_plaid_end_of_text_must_be_special(world, capsys):
    """Plaid joins documents with id 0: a tokenizer whose id 0 is text does not belong to it."""
    from dlmbench.families.plaid.writer import TOKENIZER_FILE

    name, folder = plaid_model(world, "plaid-eot")
    data = json.loads((folder / TOKENIZER_FILE).read_text())
    data["added_tokens"] = []
    (folder / TOKENIZER_FILE).write_text(json.dumps(data))
    err = world.run(capsys, model=name, code=1)
    assert_failed_cleanly(world, err, name, "id 0 is the ordinary token")
