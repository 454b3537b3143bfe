"""The reference zoo: tiny models of every family trained by dlmbench itself, on CPU, in minutes.

``corpus``  training text and its held-out part, the small BPE, length-bucketed batches
``configs`` typed sizes and optimiser settings (``tiny``: a few million parameters, equal across families)
``train``   one readable training loop; each family's loss is its own bound from :mod:`dlmbench.diffusion`
``writers`` checkpoints in each family's *published* format (so they load through the normal adapters)
``recipes`` one :class:`ZooRecipe` per built-in family (network, loss, writer, card text), named by the family
            table (``Family.zoo`` in :mod:`dlmbench.plugins`); a third-party family may name its own
``build``   trains the whole zoo and writes model cards next to the weights

CLI: ``dlmbench zoo list | train FAMILY --corpus kjv --config tiny | build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ZooRecipe:
    """What the zoo needs to train one family and write it as the family publishes its checkpoints.

    ``network(cfg, n_tokens, bos_id, mask_id)``: a freshly initialised network (called under the seeded torch RNG).
    ``loss(net, x, generator, ctx)``: per-row loss in nats (an upper bound on, or equal to, the NLL of the scored
    tokens; :class:`dlmbench.zoo.train.LossContext`). ``write(net, folder, dtype)``: the weights in the published
    format. ``mask``: ``"none"``; ``"appended"`` (the mask id is the vocabulary size, the GPT-2 convention of
    MDLM/SEDD); ``"in_vocab"`` (a ``<|mdm_mask|>`` token is added to the BPE, as LLaDA). ``bos``: rows start with an
    unscored BOS (False: rows are the text's tokens, all scored). ``tokenizer_subfolder``: where the BPE goes in the
    checkpoint folder. ``param_groups(net, cfg)``: the optimiser groups if not "decay matrices, not the rest".
    ``text``/``loss_text``: the card's and ``zoo.json``'s words for the network and loss; ``size_note``: a format
    string over the config added to the card's size text; ``card_settings``: the adapter settings of the card.
    ``ye2024_loss``: a config's ``mdm_loss: ye2024`` (Ye et al. 2024's reweighted MDM loss) may replace ``loss``.
    """

    network: Callable[..., Any]
    loss: Callable[..., Any]
    write: Callable[..., Any]
    text: str
    loss_text: str
    card_settings: Mapping[str, Any] = field(default_factory=dict)
    mask: Literal["none", "appended", "in_vocab"] = "none"
    bos: bool = True
    tokenizer_subfolder: str = "tokenizer"
    param_groups: Callable[..., Any] | None = None
    size_note: str = ""
    ye2024_loss: bool = False


def zoo_families() -> list[str]:
    """The registered families the zoo can train (those whose table record names a zoo recipe)."""
    from dlmbench.plugins import families

    return [f.name for f in families() if f.zoo is not None]


def recipe(family: str) -> ZooRecipe:
    """The zoo recipe of ``family``, imported through the family table."""
    from dlmbench.errors import BadSpec, UnknownName
    from dlmbench.plugins import family as lookup

    fam = lookup(family)
    if fam.zoo is None:
        raise UnknownName("zoo family", family, zoo_families(), f"family {family} names no zoo recipe")
    rec = fam.load("zoo")
    if not isinstance(rec, ZooRecipe):
        raise BadSpec(f"family {family}: its zoo {fam.zoo!r} is a {type(rec).__name__}, not a dlmbench.zoo.ZooRecipe")
    return rec
