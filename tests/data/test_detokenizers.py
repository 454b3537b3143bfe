"""Detokenizers on small inputs whose expected outputs were worked out by hand from the reference rules
(kuleshov-group/mdlm ``dataloader.py``, applied in order), not produced by running the code."""

from __future__ import annotations

import pytest

from dlmbench.data.detokenizers import DETOKENIZERS, get_detokenizer, lambada, lm1b, ptb, wikitext
from dlmbench.errors import UnknownName


@pytest.mark.parametrize(
    "raw, expected",
    [
        # number separators, " . " and brackets, then " \n" -> "\n", then " 's" -> "'s"
        (" The game 's score was 1 @,@ 000 ( about 20 % ) . \n", " The game's score was 1,000 (about 20 %).\n"),
        ("from 1 @.@ 5 to 2 @-@ 3", "from 1.5 to 2-3"),
        ("Hello , world ! Yes ; no : maybe ? ok", "Hello, world! Yes; no: maybe? ok"),
        ('he said " hi there " ok', 'he said "hi there" ok'),
        ("a [ b ] and { c }", "a [b] and {c}"),
        # "= = = =" must be rewritten before "= =" (else it would become "== ==")
        (" = = = = Title = = = = \n", " ==== Title ====\n"),
        (" = = Gameplay = = \n", " == Gameplay ==\n"),
        ("it was 20 \u00b0 C", "it was 20\u00b0C"),
        ("the players ' union", "the players' union"),
        ("line one \n line two", "line one\nline two"),
        ("in N years", "in 1 years"),
        ("", ""),
    ],
)
def test_wikitext(raw: str, expected: str) -> None:
    assert wikitext(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        # " N " x10: one str.replace pass only rewrites every other N of a run
        ("the company 's N N N shares <unk> \\/ at $ N .", "the company's 1 1 1 shares ? / at $1 ."),
        ("they do n't know", "they don't know"),
        ("the analysts ' view", "the analysts' view"),
        ("item # N in the list", "item #1 in the list"),
        ("one \n two", "one\ntwo"),
    ],
)
def test_ptb(raw: str, expected: str) -> None:
    assert ptb(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('He said , " it \'s fine " ( really ) .', 'He said, "it\'s fine" (really) .'),
        ("Visit http : / / example.com today .", "Visit http://example.com today."),
        ("costs $ 5 and \u00a3 3 !", "costs $5 and \u00a33!"),
        ("Really ? Yes .", "Really? Yes."),
        ("see the [ note ] and ' quote ' here", "see the [note] and 'quote' here"),
        ("a / b : c ; d", "a/b: c; d"),
    ],
)
def test_lm1b(raw: str, expected: str) -> None:
    assert lm1b(raw) == expected


def test_lambada() -> None:
    assert lambada("  \u201cHi,\u201d she said.  ") == '\n"Hi," she said.'
    assert lambada("plain text\n") == "\nplain text"


def test_identity_and_registry() -> None:
    assert set(DETOKENIZERS) == {"identity", "lambada", "lm1b", "ptb", "wikitext"}
    assert get_detokenizer([])("a , b") == "a , b"
    assert get_detokenizer("identity")("a , b") == "a , b"
    assert get_detokenizer(["ptb"])("do n't") == "don't"


def test_scientific_papers_composition_order() -> None:
    # wikitext first: " : " -> ": " breaks lm1b's "http : / / " rule, then lm1b's " / " -> "/" joins
    # only the first slash pair (non-overlapping matches): "http: / / x" -> "http:// x".
    sci = get_detokenizer(["wikitext", "lm1b"])
    assert sci("see http : / / x.org , and 1 @.@ 5 .") == "see http:// x.org, and 1.5 ."
    # the other order gives a different text: lm1b's URL rule fires first
    assert get_detokenizer(["lm1b", "wikitext"])("see http : / / x.org") == "see http://x.org"


def test_unknown_name_did_you_mean() -> None:
    with pytest.raises(UnknownName, match="did you mean 'wikitext'"):
        get_detokenizer(["wikitex"])
