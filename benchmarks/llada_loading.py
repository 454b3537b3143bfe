"""Host and GPU memory of loading a LLaDA checkpoint through ``load_llada_backbone`` (the real path).

Two steps, run as separate processes so the load's peak host memory is its own:

    python benchmarks/llada_loading.py write --preset 8b --dir /tmp/llada-8b      # random bf16 shards, published layout
    python benchmarks/llada_loading.py load  --dir /tmp/llada-8b --device cuda     # prints load seconds, peak RSS, GPU memory

``write`` makes random weights (bf16, the published key names and shapes, ``--shards`` safetensors files plus
``model.safetensors.index.json`` and ``config.json``) one shard at a time. ``load`` reads them shard by shard,
one tensor in host memory at a time, into a model built on the meta device and materialised on ``--device``,
then runs one forward pass to show the weights are usable. Random weights: memory and time only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import torch


def _config(preset: str):
    from dlmbench.families.llada.backbone import llada_8b_config

    cfg = llada_8b_config()
    if preset == "small":
        cfg = dataclasses.replace(cfg, d_model=256, n_layers=2, n_heads=4, n_kv_heads=4, mlp_hidden_size=688)
    return cfg


def write(args) -> None:
    from safetensors.torch import save_file

    from dlmbench.families.llada.backbone import expected_shapes
    from dlmbench.families.llada.writer import _assign_shards, config_json

    cfg = _config(args.preset)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = expected_shapes(cfg)
    sizes = {k: 2 * int(torch.Size(s).numel()) for k, s in shapes.items()}
    groups = _assign_shards(sizes, args.shards)
    gen = "cuda" if torch.cuda.is_available() else "cpu"
    weight_map = {}
    t0 = time.perf_counter()
    for i, keys in enumerate(groups, start=1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        tensors = {k: (torch.randn(shapes[k], device=gen, dtype=torch.bfloat16) * 0.02).cpu() for k in keys}
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys})
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config_json(cfg)))
    print(f"wrote {sum(sizes.values()) / 2**30:.1f} GiB in {len(groups)} shards to {folder} in {time.perf_counter() - t0:.0f}s")


def load(args) -> None:
    from dlmbench.families.llada.loader import load_llada_backbone

    dev = torch.device(args.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    model = load_llada_backbone(args.dir, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n = sum(p.numel() for p in model.parameters())
    line = f"loaded {n / 1e9:.2f}B parameters ({next(model.parameters()).dtype}) on {dev} in {dt:.1f}s; peak host RSS {rss:.2f} GiB (before loading {rss0:.2f} GiB)"
    if dev.type == "cuda":
        line += f"; GPU memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    print(line)
    with torch.inference_mode():
        logits = model(torch.randint(0, 126000, (1, 64), device=dev))
    print(f"forward of 64 tokens: logits {tuple(logits.shape)}, finite: {bool(torch.isfinite(logits).all())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--preset", choices=["small", "8b"], default="small")
    w.add_argument("--dir", required=True)
    w.add_argument("--shards", type=int, default=6)
    lo = sub.add_parser("load")
    lo.add_argument("--dir", required=True)
    lo.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    write(args) if args.cmd == "write" else load(args)


if __name__ == "__main__":
    main()
