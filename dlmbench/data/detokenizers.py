"""Detokenizers: undo the tokenization of pre-tokenized corpora before a model sees the text.

The rules and their ORDER reproduce the reference functions of kuleshov-group/mdlm ``dataloader.py``
(``wt_detokenizer``, ``ptb_detokenizer``, ``lm1b_detokenizer``, ``lambada_detokenizer``,
``scientific_papers_detokenizer``), which are identical to louaaron/Score-Entropy-Discrete-Diffusion
``data.py``. Each detokenizer is written here as a list of rules applied in turn:

* :class:`Replace` ``(old, new, times)``: ``str.replace`` (all non-overlapping occurrences), repeated
  ``times`` times (PTB's ``" N " -> " 1 "`` is applied 10 times so that runs like ``" N N N "`` are
  fully rewritten; one pass only rewrites every other ``N`` because matches cannot overlap);
* :class:`Sub` ``(pattern, repl)``: ``re.sub``.

Reference quirks kept on purpose so numbers match the papers: wikitext's ``/' [0-9]/`` pattern contains
literal slashes (it almost never matches), and the bracket rules use non-greedy groups.

Compose detokenizers with :func:`get_detokenizer` (``["wikitext", "lm1b"]`` is MDLM's
``scientific_papers_detokenizer``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dlmbench.errors import UnknownName


@dataclass(frozen=True)
class Replace:
    old: str
    new: str
    times: int = 1

    def __call__(self, text: str) -> str:
        for _ in range(self.times):
            text = text.replace(self.old, self.new)
        return text


@dataclass(frozen=True)
class Sub:
    pattern: str
    repl: str

    def __call__(self, text: str) -> str:
        return re.sub(self.pattern, self.repl, text)


Rule = Callable[[str], str]


def _apply(rules: Sequence[Rule], text: str) -> str:
    for rule in rules:
        text = rule(text)
    return text


WIKITEXT_RULES: tuple[Rule, ...] = (
    # contractions
    Replace("s '", "s'"),
    Sub(r"/' [0-9]/", r"/'[0-9]/"),
    # number separators
    Replace(" @-@ ", "-"),
    Replace(" @,@ ", ","),
    Replace(" @.@ ", "."),
    # punctuation
    Replace(" : ", ": "),
    Replace(" ; ", "; "),
    Replace(" . ", ". "),
    Replace(" ! ", "! "),
    Replace(" ? ", "? "),
    Replace(" , ", ", "),
    # brackets and quotes: strip the spaces just inside
    Sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
    Sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    Sub(r"{\s*([^}]*?)\s*}", r"{\1}"),
    Sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    Sub(r"'\s*([^']*?)\s*'", r"'\1'"),
    # headers, degrees, line ends, numbers, possessives
    Replace("= = = =", "===="),
    Replace("= = =", "==="),
    Replace("= =", "=="),
    Replace(" \u00b0 ", "\u00b0"),
    Replace(" \n", "\n"),
    Replace("\n ", "\n"),
    Replace(" N ", " 1 "),
    Replace(" 's", "'s"),
)
"""MDLM/SEDD ``wt_detokenizer`` (the same rules as lm-eval's ``wikitext_detokenizer``)."""

PTB_RULES: tuple[Rule, ...] = (
    Replace(" 's", "'s"),
    Replace("s ' ", "s' "),
    Replace(" n't", "n't"),
    Replace(" \n ", "\n"),
    Replace("\\/", "/"),
    Replace(" N ", " 1 ", times=10),
    Replace("$ 1", "$1"),
    Replace("# 1", "#1"),
    Replace("<unk>", "?"),
)
"""MDLM/SEDD ``ptb_detokenizer``."""

LM1B_RULES: tuple[Rule, ...] = (
    Replace("http : / / ", "http://"),
    Replace("https : / / ", "https://"),
    Sub(r" \'(\w+)", r"'\1"),
    Sub(r" (\w+) \. ", r" \1. "),
    Sub(r" (\w+) \.$", r" \1."),
    Replace(" ? ", "? "),
    Sub(r" \?$", "?"),
    Replace(" ! ", "! "),
    Sub(r" \!$", "!"),
    Replace(" , ", ", "),
    Replace(" : ", ": "),
    Replace(" ; ", "; "),
    Replace(" / ", "/"),
    Sub(r"\" ([^\"]+) \"", r'"\1"'),
    Sub(r"\' ([^\']+) \'", r"'\1'"),
    Sub(r"\( ([^\(\)]+) \)", r"(\1)"),
    Sub(r"\[ ([^\[\]]+) \]", r"[\1]"),
    Replace("$ ", "$"),
    Replace("\u00a3 ", "\u00a3"),
)
"""MDLM/SEDD ``lm1b_detokenizer``."""

LAMBADA_RULES: tuple[Rule, ...] = (
    Replace("\u201c", '"'),
    Replace("\u201d", '"'),
)


def wikitext(text: str) -> str:
    """WikiText detokenizer: MDLM/SEDD ``wt_detokenizer`` (rules :data:`WIKITEXT_RULES`, in order)."""
    return _apply(WIKITEXT_RULES, text)


def ptb(text: str) -> str:
    """Penn Treebank detokenizer: MDLM/SEDD ``ptb_detokenizer`` (rules :data:`PTB_RULES`, in order)."""
    return _apply(PTB_RULES, text)


def lm1b(text: str) -> str:
    """One Billion Words detokenizer: MDLM/SEDD ``lm1b_detokenizer`` (rules :data:`LM1B_RULES`)."""
    return _apply(LM1B_RULES, text)


def lambada(text: str) -> str:
    """MDLM/SEDD ``lambada_detokenizer``: curly double quotes -> ``"``, then ``'\\n' + text.strip()``."""
    return "\n" + _apply(LAMBADA_RULES, text).strip()


def identity(text: str) -> str:
    """No change (AG News, OpenWebText)."""
    return text


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "identity": identity,
    "lambada": lambada,
    "lm1b": lm1b,
    "ptb": ptb,
    "wikitext": wikitext,
}


def get_detokenizer(names: str | Sequence[str]) -> Callable[[str], str]:
    """The composition of the named detokenizers, applied left to right.

    ``get_detokenizer(["wikitext", "lm1b"])`` is MDLM's ``scientific_papers_detokenizer``; an empty list
    is the identity. Unknown names raise :class:`~dlmbench.errors.UnknownName` with a did-you-mean.
    """
    if isinstance(names, str):
        names = (names,)
    funcs = []
    for name in names:
        if name not in DETOKENIZERS:
            raise UnknownName("detokenizer", str(name), DETOKENIZERS, "see dlmbench.data.detokenizers")
        funcs.append(DETOKENIZERS[name])
    if not funcs:
        return identity
    if len(funcs) == 1:
        return funcs[0]
    chain = tuple(funcs)

    def composed(text: str) -> str:
        for f in chain:
            text = f(text)
        return text

    composed.__name__ = "+".join(names)
    return composed
