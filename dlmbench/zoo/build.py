"""Train the whole zoo and write its model cards.

Each model ``<family>-<corpus>`` goes to ``<root>/zoo/<family>-<corpus>/`` (weights in the family's published
format, the BPE, ``zoo.json``) and its card to ``<root>/zoo-<family>-<corpus>.yaml`` with the checkpoint path
relative to the card. ``<root>`` defaults to the packaged ``dlmbench/cards/models`` (which the registry
scans, so ``dlmbench run --model zoo-mdlm-kjv ...`` works after a build). All models of one corpus share one
tokenizer, data order, step budget and seed, so they see exactly the same training tokens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlmbench.plugins import family
from dlmbench.registry import PACKAGE_CARDS
from dlmbench.zoo import recipe
from dlmbench.zoo.configs import ZooConfig, get_config
from dlmbench.zoo.corpus import corpus_tokenizer, load_corpus

DEFAULT_ROOT = PACKAGE_CARDS / "models"


@dataclass(frozen=True)
class ZooEntry:
    family: str
    corpus: str
    config: str = "tiny"  # the entry's size/optimiser preset (``zoo build --config`` overrides it for every entry)

    @property
    def name(self) -> str:
        return f"{self.family}-{self.corpus}"

    @property
    def card_name(self) -> str:
        return f"zoo-{self.name}"


# build order: AR and MDLM first (the priority), then SEDD, the LLaDA-style model, Plaid and BD3-LM
ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("ar", "kjv"),
    ZooEntry("mdlm", "kjv"),
    ZooEntry("sedd", "kjv"),
    ZooEntry("llada", "kjv"),
    ZooEntry("plaid", "kjv", "tiny-plaid"),
    ZooEntry("bd3lm", "kjv"),
    ZooEntry("duo", "kjv"),
    ZooEntry("dream", "kjv"),
    # findings 2 and 3 of the zoo issue: AR vs MDLM at equal size and training tokens
    ZooEntry("ar", "reversal", "reversal"),
    ZooEntry("mdlm", "reversal", "reversal"),
    ZooEntry("ar", "reversal10", "reversal10"),
    ZooEntry("mdlm", "reversal10", "reversal10"),
    ZooEntry("ar", "cd3", "cd3"),
    ZooEntry("mdlm", "cd3", "cd3"),
    # minimal planning (Ye et al. 2024): AR vs MDLM with the paper's MDM loss, same network size and tokens
    ZooEntry("ar", "planning", "planning"),
    ZooEntry("mdlm", "planning", "planning"),
)


def card_for(entry: ZooEntry, info: dict[str, Any]) -> dict[str, Any]:
    """The model card of a trained zoo model: its recipe's network text and card settings, the training facts."""
    cfg = info["config"]
    rec = recipe(entry.family)
    exact = family(entry.family).has("exact_likelihood")
    held = info.get("heldout")
    held_txt = (f" Held-out ({info.get('heldout_corpus', '')}) per-token {'NLL' if exact else 'bound'} "
                f"at the end of training: {held['nll_per_token']:.4f} ± {held['stderr']:.4f} nats "
                f"(trainer's own estimate, {held['n_rows']} rows; dlmbench run gives the reported numbers).") if held else ""
    budget = (f"Stopped by its wall-clock budget of {cfg['max_seconds']:g} s (learning rate annealed over that budget), "
              "so a rebuild reaches a machine-dependent step count; a pure step budget (--seconds 0) is bit-reproducible. "
              if info.get("stopped_by") == "max_seconds" else "")
    text = rec.text
    if cfg.get("mdm_loss", "nelbo") != "nelbo":  # trained with another objective (only MDLM configs set mdm_loss)
        text = text.replace("trained with the MDLM NELBO", f"trained with the {info['loss']}")
    description = (
        f"dlmbench reference zoo: {text}. {info['n_params']:,} parameters "
        f"(d={cfg['d_model']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, context {cfg['max_len']}, "
        + rec.size_note.format(**cfg)
        + f"{info.get('tokenizer_text') or str(cfg['vocab_size']) + '-id byte-level BPE trained on the same data'}). "
        f"Data: {info['corpus_description']}. "
        f"Trained {info['steps']} steps ({info['tokens_trained']:,} tokens, {info['epochs']} epochs, batches of "
        f"~{cfg['batch_tokens']} tokens, AdamW lr {cfg['lr']}), seed {info['seed']}, in {info['train_seconds']} s "
        f"({info['tokens_per_s']:.0f} tokens/s) on {info['hardware']}; torch {info['torch']}. Weights stored as "
        f"{info['save_dtype']}. Final training loss {info['final_train_loss']} nats/token.{held_txt} "
        f"{budget}Reproduce: dlmbench zoo train {entry.family} --corpus {entry.corpus} --config {cfg['name']} "
        f"--steps {cfg['max_steps']} --seconds {cfg['max_seconds'] or 0:g} --seed {info['seed']}."
    )
    card: dict[str, Any] = {"name": entry.card_name}
    if entry.corpus == "kjv":  # the family's reference zoo model: `dlmbench run --model duo-zoo ...`
        card["aliases"] = [f"{entry.family}-zoo"]
    return card | {
        "family": entry.family,
        "description": description,
        "checkpoint": {"local": f"zoo/{entry.name}"},
        "tokenizer": {"local": str(Path("zoo", entry.name, rec.tokenizer_subfolder))},
        "dtype": "float32",
        "max_length": int(cfg["max_len"]),
        "settings": dict(rec.card_settings),
    }


def write_card(entry: ZooEntry, info: dict[str, Any], root: str | Path = DEFAULT_ROOT) -> Path:
    path = Path(root) / f"{entry.card_name}.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(card_for(entry, info), sort_keys=False, width=110, allow_unicode=True))
    tmp.replace(path)
    return path


def resume_path(entry: ZooEntry, root: str | Path = DEFAULT_ROOT) -> Path:
    """Where ``zoo train`` keeps a model's resume file while it trains (``<root>/zoo/<name>.resume.pt``,
    git-ignored; deleted when the model is written)."""
    return Path(root) / "zoo" / f"{entry.name}.resume.pt"


def train_entry(entry: ZooEntry, cfg: ZooConfig, *, root: str | Path = DEFAULT_ROOT, tokenizer: Any = None,
                progress: bool = True, heldout_samples: int = 2, log=print,
                stop_after: int | None = None) -> dict[str, Any] | None:
    """Train one zoo model, evaluate it on its corpus's held-out part, write weights and card; return zoo.json.

    With ``cfg.checkpoint_every`` the run keeps a resume file (:func:`resume_path`) and continues from it when
    started again; ``stop_after``: stop after that many steps of this call, keep the resume file, write nothing
    else and return None (a long run in pieces; the finished model is bit for bit that of one piece)."""
    from dlmbench.zoo.train import heldout_loss, train, train_info
    from dlmbench.zoo.writers import round_parameters, write_checkpoint

    corpus = load_corpus(entry.corpus)
    tok = tokenizer if tokenizer is not None else corpus_tokenizer(corpus, cfg.vocab_size)
    folder = Path(root) / "zoo" / entry.name
    resume = resume_path(entry, root) if (cfg.checkpoint_every or stop_after) else None
    res = train(entry.family, corpus, cfg, tokenizer=tok, progress=progress, resume=resume, stop_after=stop_after)
    if res.stopped_by == "stop_after":
        log(f"{entry.card_name}: stopped after step {res.steps} of {cfg.max_steps}; resume file {resume} "
            "(run the same command again to continue)")
        return None
    info = train_info(res, corpus, cfg, cfg.save_dtype)
    if corpus.tokenizer in ("nodes", "edges"):
        unit = "node label 0..13" if corpus.tokenizer == "nodes" else "directed edge u,v of the nodes 0..13"
        info["tokenizer_text"] = (f"{corpus.tokenizer[:-1]} tokenizer of {tok.get_vocab_size()} ids (<|endoftext|> 0 as "
                                  f"EOS/pad, [UNK] 1, one id per {unit} and per {', / - =' if corpus.tokenizer == 'nodes' else '/ - ='})")
    if corpus.tokenizer == "char":
        info["tokenizer_text"] = (f"character-level tokenizer of {tok.get_vocab_size()} ids (<|endoftext|> 0 as EOS/pad, "
                                  "[UNK] 1, the characters 0-9 + - * / = ,)")
    round_parameters(res.net, cfg.save_dtype)  # the held-out number is that of the stored weights
    if corpus.heldout:
        t0 = time.perf_counter()
        info["heldout"] = heldout_loss(res, list(corpus.heldout), cfg.max_len,
                                       samples=1 if family(entry.family).has("exact_likelihood") else heldout_samples,
                                       corpus=corpus)
        info["heldout_corpus"] = {"kjv": "the kjv task's verses", "cd3": "the countdown-cd3 test split, answers given prompts",
                                  "planning": "the planning test split, answers given prompts"}.get(
            entry.corpus, "held-out part")
        info["heldout_seconds"] = round(time.perf_counter() - t0, 1)
    write_checkpoint(entry.family, res.net, folder, tokenizer=res.tokenizer, cfg=cfg, info=info,
                     save_dtype=cfg.save_dtype)
    card = write_card(entry, info, root)
    if resume is not None:
        resume.unlink(missing_ok=True)
    log(f"{entry.card_name}: {res.steps} steps, {res.tokens:,} tokens in {res.seconds:.0f} s "
        f"({res.tokens_per_s:.0f} tok/s), train loss {info['final_train_loss']}"
        + (f", held-out {info['heldout']['nll_per_token']:.4f} ± {info['heldout']['stderr']:.4f}" if "heldout" in info else "")
        + f" -> {card}")
    return info


def build(names: list[str] | None = None, *, config: str | None = None, root: str | Path = DEFAULT_ROOT,
          progress: bool = True, log=print, **overrides) -> list[dict[str, Any]]:
    """Train every zoo model (or those named: ``ar-kjv``, ``zoo-mdlm-kjv``, a family ``mdlm`` or a corpus ``cd3``).

    ``config``: one preset for every entry; default each entry's own (``tiny`` for KJV, ``reversal``, ``cd3``).
    """
    entries = select(names)
    tokenizers: dict[str, Any] = {}
    out = []
    start = time.perf_counter()
    for entry in entries:
        cfg = get_config(config or entry.config, **overrides)
        if entry.corpus not in tokenizers:
            tokenizers[entry.corpus] = corpus_tokenizer(load_corpus(entry.corpus), cfg.vocab_size)
        out.append(train_entry(entry, cfg, root=root, tokenizer=tokenizers[entry.corpus], progress=progress, log=log))
    total = time.perf_counter() - start
    log(f"zoo: {len(out)} model(s) in {total / 60:.1f} min (training {sum(i['train_seconds'] for i in out) / 60:.1f} min)")
    summary = Path(root) / "zoo" / "build.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(summary.read_text()) if summary.is_file() else {}
    old.update({e.name: {k: i.get(k) for k in ("steps", "tokens_trained", "train_seconds", "tokens_per_s", "n_params",
                                              "final_train_loss", "heldout", "seed", "hardware")} for e, i in zip(entries, out)})
    summary.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    return out


def select(names: list[str] | None) -> list[ZooEntry]:
    if not names:
        return list(ZOO)
    out = []
    for n in names:
        hits = [e for e in ZOO if n in (e.name, e.card_name, e.family, e.corpus)]
        if not hits:
            from dlmbench.errors import UnknownName

            raise UnknownName("zoo model", n, [e.name for e in ZOO])
        out += [e for e in hits if e not in out]
    return out


def list_zoo(root: str | Path = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """One row per zoo entry: name, family, corpus, whether it is built, and its training facts."""
    rows = []
    for e in ZOO:
        f = Path(root) / "zoo" / e.name / "zoo.json"
        info = json.loads(f.read_text()) if f.is_file() else {}
        rows.append({"card": e.card_name, "family": e.family, "corpus": e.corpus, "built": bool(info),
                     "steps": info.get("steps"), "train_seconds": info.get("train_seconds"),
                     "n_params": info.get("n_params"), "heldout_nll": (info.get("heldout") or {}).get("nll_per_token")})
    return rows


def refresh_cards(root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """Rewrite the cards of every built zoo model from its ``zoo.json`` (after a change of the card text)."""
    out = []
    for e in ZOO:
        f = Path(root) / "zoo" / e.name / "zoo.json"
        if f.is_file():
            out.append(write_card(e, json.loads(f.read_text()), root))
    return out
