"""``dlmbench zoo list | train | build``: argument parsing and printing only; the work is in :mod:`.build`."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlmbench.zoo.configs import CONFIGS
from dlmbench.zoo.corpus import CORPORA


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    ls = sub.add_parser("list", help="the zoo's models, whether each is built, its training facts")
    ls.add_argument("--root", default=None, metavar="DIR", help="cards folder (default: the packaged cards/models)")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", default=None, choices=sorted(CONFIGS),
                       help="size and optimiser preset (default: the zoo entry's own, tiny for KJV; tiny for other pairs)")
        q.add_argument("--steps", type=int, default=None, metavar="N", help="training steps (default: the config's)")
        q.add_argument("--seconds", type=float, default=None, metavar="S",
                       help="wall-clock budget per model in seconds; 0 = none, i.e. a bit-reproducible step budget")
        q.add_argument("--seed", type=int, default=None, help="seed of weights, data order and noise (default 0)")
        q.add_argument("--root", default=None, metavar="DIR",
                       help="where cards (DIR/zoo-*.yaml) and weights (DIR/zoo/*) go (default: the packaged cards/models)")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")

    tr = sub.add_parser("train", help="train one family on one corpus and write its checkpoint and card")
    tr.add_argument("family", metavar="FAMILY",
                    help="a family whose record in the family table names a zoo recipe (dlmbench list families)")
    tr.add_argument("--corpus", default="kjv", choices=CORPORA, help="training corpus (default kjv)")
    tr.add_argument("--stop-after", type=int, default=None, metavar="N",
                    help="stop after N steps of this call and keep the resume file (<root>/zoo/NAME.resume.pt); "
                         "the same command continues from it, to the same weights as one uninterrupted run")
    common(tr)
    bd = sub.add_parser("build", help="train every zoo model (AR, MDLM, SEDD, LLaDA-style, Plaid on KJV; AR and MDLM on reversal, "
                                      "cd3 and planning) and write the cards")
    bd.add_argument("names", nargs="*", metavar="NAME", help="only these (e.g. ar-kjv, mdlm); default all")
    common(bd)


def _overrides(args) -> dict:
    out = {}
    if args.steps is not None:
        out["max_steps"] = args.steps
    if args.seconds is not None:
        out["max_seconds"] = args.seconds or None
    if args.seed is not None:
        out["seed"] = args.seed
    return out


def run(args) -> int:
    from dlmbench.zoo.build import DEFAULT_ROOT, ZooEntry, build, list_zoo, train_entry
    from dlmbench.zoo.configs import get_config

    root = Path(args.root) if getattr(args, "root", None) else DEFAULT_ROOT
    if args.zoo_command == "list":
        rows = list_zoo(root)
        print(f"{'card':<18} {'family':<6} {'corpus':<8} {'built':<5} {'steps':>6} {'train_s':>8} {'params':>10} {'heldout':>8}")
        for r in rows:
            f = lambda v, spec="": "-" if v is None else format(v, spec)  # noqa: E731
            print(f"{r['card']:<18} {r['family']:<6} {r['corpus']:<8} {'yes' if r['built'] else 'no':<5} {f(r['steps']):>6} "
                  f"{f(r['train_seconds']):>8} {f(r['n_params'], ','):>10} {f(r['heldout_nll'], '.4f'):>8}")
        return 0
    if args.zoo_command == "train":
        from dlmbench.zoo import recipe
        from dlmbench.zoo.build import ZOO

        recipe(args.family)  # an unknown family, or one the zoo cannot train: one line, before any work
        own = next((e.config for e in ZOO if (e.family, e.corpus) == (args.family, args.corpus)), "tiny")
        cfg = get_config(args.config or own, **_overrides(args))
        if args.stop_after is not None and args.stop_after < 1:
            from dlmbench.errors import BadSpec

            raise BadSpec(f"--stop-after must be at least 1, not {args.stop_after}")
        train_entry(ZooEntry(args.family, args.corpus, cfg.name), cfg, root=root, progress=not args.no_progress,
                    stop_after=args.stop_after)
        return 0
    build(args.names, config=args.config, root=root, progress=not args.no_progress, **_overrides(args))
    return 0
