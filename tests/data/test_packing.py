"""Packing modes on hand-checked token lists, plus a second implementation of the sliding window
(the HF guide's label-masking loop) and the whole pipeline on a toy tokenizer and a local file."""

from __future__ import annotations

import json
import random

import pytest

from dlmbench.data.packing import PackedRequest, count_words, pack
from dlmbench.data.pipeline import build_requests
from dlmbench.specs import TaskSpec

BOS, EOS = 9, 0
# a toy vocabulary with multi-byte characters: "é" is 2 UTF-8 bytes, "€" is 3
VOCAB = {0: "<eos>", 9: "<bos>", 1: "a", 2: "é", 3: " c", 4: "€", 5: "x", 6: "yz", 7: " ", 8: "q"}


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


# ------------------------------------------------------------------------------------------ wrap


def test_wrap_blocks_and_remainder() -> None:
    docs = [[1, 2, 3], [4, 5], [6]]
    # stream = 1 2 3 E 4 5 E 6 E (9 tokens); block 5 -> chunks of 3: [1 2 3] [E 4 5] [E 6 E]
    got = pack(docs, mode="wrap", block_size=5, prefix_id=BOS, eos_id=EOS, decode=decode)
    assert got == [
        PackedRequest((BOS,), (1, 2, 3, EOS), 0, 1 + 2 + 2, None),
        PackedRequest((BOS,), (EOS, 4, 5, EOS), 0, 3 + 1, None),
        PackedRequest((BOS,), (EOS, 6, EOS, EOS), 1, 2, None),
    ]
    # block 6 -> chunks of 4: [1 2 3 E] [4 5 E 6]; the remainder [E] is dropped
    got = pack(docs, mode="wrap", block_size=6, prefix_id=BOS, eos_id=EOS, decode=decode)
    assert [r.continuation for r in got] == [(1, 2, 3, EOS, EOS), (4, 5, EOS, 6, EOS)]
    assert [r.doc_index for r in got] == [0, 1]
    assert all(len(r.context) + len(r.continuation) == 6 for r in got)
    # too little text for one block: nothing
    assert pack([[1, 2]], mode="wrap", block_size=8, prefix_id=BOS, eos_id=EOS, decode=decode) == []


def test_wrap_without_bos_token_uses_eos_and_flags() -> None:
    # GPT-2 style tokenizer with no separate BOS: the tokenizer's rule opens a wrap block with EOS
    from dlmbench.interface import tokenizer_prefix

    class NoBos:
        bos_id, eos_id = None, EOS

    assert tokenizer_prefix(NoBos(), "wrap") == EOS and tokenizer_prefix(NoBos(), "document") is None
    # stream 1 2 3 4 E, chunks of 2: [1 2] [3 4], remainder [E] dropped
    got = pack([[1, 2, 3, 4]], mode="wrap", block_size=4, prefix_id=EOS, eos_id=EOS, decode=decode)
    assert got == [PackedRequest((EOS,), (1, 2, EOS), 0, 3, None), PackedRequest((EOS,), (3, 4, EOS), 0, 5, None)]
    # no prefix token at all: wrap cannot frame its blocks
    with pytest.raises(ValueError, match="prefix token"):
        pack([[1, 2, 3, 4]], mode="wrap", block_size=4, prefix_id=None, eos_id=EOS, decode=decode)
    # first token unscored, add_eos off: plain chunks of block_size, no EOS between documents, the first token of
    # each block is context
    got = pack([[1, 2], [3, 4, 5]], mode="wrap", block_size=2, prefix_id=BOS, eos_id=EOS, first_token="unscored", add_eos=False, decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((1,), (2,)), ((3,), (4,))]


# --------------------------------------------------------------------------------------- sliding


def test_sliding_hand_checked_with_bos() -> None:
    # stream with BOS: B 1 2 3 E 4 5 E (8 positions); windows of 4, stride 2: [0,4) [2,6) [4,8)
    got = pack([[1, 2, 3], [4, 5]], mode="sliding", block_size=4, stride=2, prefix_id=BOS, eos_id=EOS, decode=decode)
    assert [(r.context, r.continuation, r.doc_index) for r in got] == [
        ((BOS,), (1, 2, 3), 0),
        ((2, 3), (EOS, 4), 0),
        ((EOS, 4), (5, EOS), 1),
    ]
    assert [r.n_bytes for r in got] == [5, 3, 1]
    assert all(r.n_words is None for r in got)


def test_sliding_hand_checked_without_bos() -> None:
    # stream 1 2 3 E 4 5 E (7); the first token is never scored
    got = pack([[1, 2, 3], [4, 5]], mode="sliding", block_size=4, stride=2, prefix_id=BOS, eos_id=EOS, first_token="unscored", decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((1,), (2, 3, EOS)), ((3, EOS), (4, 5)), ((4, 5), (EOS,))]


def _hf_guide_scored(stream: list[int], max_length: int, stride: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Second implementation: the HF guide loop (labels -100 on the overlap, the model's shift drops label 0)."""
    out = []
    prev_end = 0
    for begin in range(0, len(stream), stride):
        end = min(begin + max_length, len(stream))
        trg_len = end - prev_end
        window = stream[begin:end]
        labels = [-100] * (len(window) - trg_len) + window[len(window) - trg_len :]
        scored_positions = [j for j in range(1, len(window)) if labels[j] != -100]  # shift: label 0 unused
        if scored_positions:
            first = scored_positions[0]
            out.append((tuple(window[:first]), tuple(window[first:])))
        prev_end = end
        if end == len(stream):
            break
    return out


@pytest.mark.parametrize("seed", range(40))
def test_sliding_scores_every_token_once(seed: int) -> None:
    rng = random.Random(seed)
    docs = [[rng.choice([1, 2, 3, 4, 5, 6, 8]) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 6))]
    block = rng.randint(2, 9)
    stride = rng.randint(1, block - 1)
    add_bos = rng.random() < 0.5
    first = "prefixed" if add_bos else "unscored"
    got = pack(docs, mode="sliding", block_size=block, stride=stride, prefix_id=BOS, eos_id=EOS, first_token=first, decode=decode)
    stream = ([BOS] if add_bos else []) + [t for d in docs for t in d + [EOS]]
    # every position after the first scored exactly once, in order
    assert [t for r in got for t in r.continuation] == stream[1:]
    pos = 1
    for k, r in enumerate(got):
        assert stream[pos - len(r.context) : pos] == list(r.context)  # context = the preceding tokens
        assert len(r.context) + len(r.continuation) <= block
        if k > 0:
            assert len(r.context) == block - stride
        pos += len(r.continuation)
    assert [(r.context, r.continuation) for r in got] == _hf_guide_scored(stream, block, stride)


def test_sliding_rejects_bad_stride() -> None:
    with pytest.raises(ValueError, match="stride"):
        pack([[1, 2, 3]], mode="sliding", block_size=4, stride=4, prefix_id=BOS, eos_id=EOS, decode=decode)


# -------------------------------------------------------------------------------------- document


def test_document_mode() -> None:
    docs = [[1, 2], [], [3, 7, 5]]
    texts = ["a é", "", "  c  \t x\n"]
    got = pack(docs, mode="document", block_size=None, prefix_id=BOS, eos_id=EOS, add_eos=False, decode=decode, texts=texts)
    assert got == [
        PackedRequest((BOS,), (1, 2), 0, 3, 2),
        PackedRequest((BOS,), (3, 7, 5), 2, 4, 2),
    ]
    # with EOS (not counted in bytes), and a tokenizer without BOS -> empty context
    got = pack([[4]], mode="document", block_size=None, prefix_id=None, eos_id=EOS, decode=decode, texts=["€"])
    assert got == [PackedRequest((), (4, EOS), 0, 3, 1)]
    # first token unscored: it is the context; a one-token document has nothing to score
    got = pack([[8, 6], [5]], mode="document", block_size=3, prefix_id=BOS, eos_id=EOS, first_token="unscored", add_eos=False, decode=decode)
    assert got == [PackedRequest((8,), (6,), 0, 2, None)]
    # documents longer than block_size are left whole (the adapter slides)
    long = list(range(1, 7)) * 3
    got = pack([long], mode="document", block_size=4, prefix_id=BOS, eos_id=EOS, add_eos=False, decode=decode)
    assert got[0].continuation == tuple(long)


def test_count_words() -> None:
    assert count_words("In the beginning God created") == 5
    assert count_words("  one\ttwo\n\nthree  ") == 3
    assert count_words("   ") == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pack([[1]], mode="chunk", block_size=4, prefix_id=BOS, eos_id=EOS, decode=decode)
    with pytest.raises(ValueError):
        pack([[1]], mode="wrap", block_size=None, prefix_id=BOS, eos_id=EOS, decode=decode)
    with pytest.raises(ValueError):
        pack([[1]], mode="document", block_size=None, prefix_id=BOS, eos_id=None, decode=decode)


# -------------------------------------------------------------------------------------- pipeline


class CharTokenizer:
    """One id per character (ids 3..), BOS=1, EOS=2; decode is the inverse."""

    name = "chars"
    vocab_size = 300
    bos_id = 1
    eos_id = 2
    mask_id = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) - 29 for c in text]  # printable ASCII 32.. -> 3..

    def decode(self, ids) -> str:
        return "".join(chr(i + 29) for i in ids if i > 2)


def _task(path, packing, detok=None) -> TaskSpec:
    card = {"name": "toy", "type": "perplexity", "dataset": {"source": "local", "path": str(path)}, "packing": packing}
    if detok:
        card["detokenizer"] = detok
    return TaskSpec.from_dict(card)


def test_pipeline_document_and_wrap(tmp_path) -> None:
    path = tmp_path / "docs.jsonl"
    rows = [{"text": "ab , c"}, {"text": ""}, {"text": "d"}, {"text": "never read"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = CharTokenizer()
    e = tok.encode
    # document mode, ptb detokenizer does nothing here, wikitext turns " , " into ", "
    got = build_requests(_task(path, {"mode": "document", "add_eos": False}, "wikitext"), tok, max_length=16, limit=3)
    assert got == [
        PackedRequest((1,), tuple(e("ab, c")), 0, 5, 3),  # words counted on the ORIGINAL text "ab , c"
        PackedRequest((1,), tuple(e("d")), 2, 1, 1),  # the empty document is skipped, indices kept
    ]
    # wrap: the empty document still contributes its EOS (as MDLM); stream = a b ␣ , ␣ c E E d E (10)
    got = build_requests(_task(path, {"mode": "wrap", "block_size": 5}), tok, max_length=None, limit=3)
    s = e("ab , c") + [2, 2] + e("d") + [2]
    assert [r.continuation for r in got] == [tuple(s[0:3]) + (2,), tuple(s[3:6]) + (2,), tuple(s[6:9]) + (2,)]
    assert [r.doc_index for r in got] == [0, 0, 0]  # block 3 starts with document 0's EOS
    # block_size defaults to the model's max_length
    got = build_requests(_task(path, {"mode": "sliding", "stride": 2}), tok, max_length=4, limit=3)
    assert [t for r in got for t in r.continuation] == e("ab , c") + [2] + e("d") + [2]


# ------------------------------------------------------------------- separator, partial block, rolling


def test_wrap_separator_and_partial_last_block_hand_checked() -> None:
    docs = [[1, 2, 3], [4, 5], [6]]
    # separator 7 8 between documents, no EOS: stream 1 2 3 7 8 4 5 7 8 6 (10); prefixed blocks of 1 + 4
    got = pack(docs, mode="wrap", block_size=5, prefix_id=BOS, eos_id=EOS, add_eos=False, separator=(7, 8), decode=decode)
    assert [(r.context, r.continuation, r.doc_index) for r in got] == [((BOS,), (1, 2, 3, 7), 0), ((BOS,), (8, 4, 5, 7), 0)]
    keep = pack(docs, mode="wrap", block_size=5, prefix_id=BOS, eos_id=EOS, add_eos=False, separator=(7, 8),
                partial_last_block="keep", decode=decode)
    assert keep[:2] == got and (keep[2].context, keep[2].continuation, keep[2].doc_index) == ((BOS,), (8, 6), 1)
    # every stream token scored exactly once when the partial block is kept
    assert [t for r in keep for t in r.continuation] == [1, 2, 3, 7, 8, 4, 5, 7, 8, 6]
    # with EOS (after every document, before the separator) the partial block is closed by an EOS too
    got = pack(docs, mode="wrap", block_size=6, prefix_id=BOS, eos_id=EOS, separator=(7,), partial_last_block="keep", decode=decode)
    # stream 1 2 3 E 7 4 5 E 7 6 E (11), chunks of 4: [1 2 3 E] [7 4 5 E] [7 6 E]
    assert [r.continuation for r in got] == [(1, 2, 3, EOS, EOS), (7, 4, 5, EOS, EOS), (7, 6, EOS, EOS)]
    # unscored first token: the block's first token is its context
    got = pack(docs, mode="wrap", block_size=4, prefix_id=BOS, eos_id=EOS, add_eos=False, first_token="unscored",
               partial_last_block="keep", decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((1,), (2, 3, 4)), ((5,), (6,))]


def test_sliding_separator() -> None:
    got = pack([[1, 2], [3]], mode="sliding", block_size=8, stride=4, prefix_id=BOS, eos_id=EOS, add_eos=False, separator=(7,), decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((BOS,), (1, 2, 7, 3))]


def test_rolling_hand_checked() -> None:
    # one document of 7 tokens, windows of 3: [P|1 2 3] [3|4 5 6] then 1 target with 3 tokens of context
    got = pack([[1, 2, 3, 4, 5, 6, 8]], mode="rolling", block_size=3, prefix_id=BOS, eos_id=EOS, add_eos=False,
               decode=decode, texts=["a b c"])
    assert [(r.context, r.continuation, r.n_words) for r in got] == [
        ((BOS,), (1, 2, 3), 3), ((3,), (4, 5, 6), 0), ((4, 5, 6), (8,), 0)
    ]
    assert all(len(r.context) + len(r.continuation) - 1 <= 3 for r in got)  # at most block_size inputs per pass
    # unscored: targets start at the second token, the first is the first window's context
    got = pack([[1, 2, 3, 4]], mode="rolling", block_size=2, prefix_id=BOS, eos_id=EOS, add_eos=False, first_token="unscored", decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((1,), (2, 3)), ((2, 3), (4,))]
    # documents are never joined: each starts after the prefix
    got = pack([[1, 2], [3]], mode="rolling", block_size=4, prefix_id=BOS, eos_id=EOS, decode=decode)
    assert [(r.context, r.continuation, r.doc_index) for r in got] == [((BOS,), (1, 2, EOS), 0), ((BOS,), (3, EOS), 1)]


# ------------------------------------------------------------------------ settings: presets and checks


def test_presets_fill_in_and_explicit_keys_override() -> None:
    from dlmbench.specs.task_settings import PACKING_PRESETS, PackingSettings

    p = PackingSettings(preset="mdlm-wrap")
    assert (p.mode, p.block_size, p.first_token, p.add_eos, p.resolved()["partial_last_block"]) == ("wrap", 1024, "prefixed", True, "drop")
    p = PackingSettings(preset="mdlm-wrap", block_size=128, partial_last_block="keep", separator="\n")
    assert (p.mode, p.block_size, p.partial_last_block, p.separator) == ("wrap", 128, "keep", "\n")
    p = PackingSettings(preset="gpt2-sliding")
    assert (p.mode, p.block_size, p.stride) == ("sliding", 1024, 512)
    p = PackingSettings(preset="lmeval-rolling")
    assert (p.mode, p.block_size, p.first_token, p.add_eos) == ("rolling", None, "prefixed", False)
    assert set(PACKING_PRESETS) == {"lmeval-rolling", "mdlm-wrap", "gpt2-sliding"}
    # the former spelling add_bos
    assert PackingSettings(add_bos=False).first_token == "unscored" and PackingSettings(add_bos=True).first_token == "prefixed"


@pytest.mark.parametrize("values, message", [
    ({"preset": "mdlm"}, "preset"),
    ({"add_bos": True, "first_token": "unscored"}, "contradicts"),
    ({"mode": "document", "separator": "\n"}, "separator"),
    ({"preset": "lmeval-rolling", "separator": 5}, "separator"),
    ({"mode": "sliding", "partial_last_block": "keep"}, "partial_last_block"),
    ({"mode": "wrap", "separator": -1}, "separator"),
    ({"mode": "wrap", "separator": ""}, "separator"),
    ({"mode": "wrap", "first_token": "first"}, "first_token"),
])
def test_packing_settings_reject(values, message) -> None:
    from dlmbench.errors import BadSetting
    from dlmbench.specs.settings import validate_settings
    from dlmbench.specs.task_settings import PackingSettings

    with pytest.raises(BadSetting, match=message):
        validate_settings(PackingSettings, values, "task toy: packing")


def test_pipeline_counts_and_rejects_empty_documents(tmp_path) -> None:
    from dlmbench.errors import DatasetUnavailable

    path = tmp_path / "docs.jsonl"
    rows = [{"text": "ab"}, {"text": ""}, {"text": "c"}, {"other": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = CharTokenizer()
    card = {"name": "toy", "type": "perplexity", "dataset": {"source": "local", "path": str(path), "skip_missing": True}}
    got = build_requests(TaskSpec.from_dict({**card, "packing": {"mode": "document", "add_eos": False}}), tok, max_length=16, limit=None)
    assert [r.doc_index for r in got] == [0, 2] and got.skipped == {"missing_field": 1, "empty": 1, "nothing_to_score": 0}
    assert got.n_skipped == 2 and got.prefix_token == {"id": 1, "text": tok.decode([1])}
    # unscored first token: the one-token document has nothing to score
    got = build_requests(TaskSpec.from_dict({**card, "packing": {"mode": "document", "first_token": "unscored", "add_eos": False}}),
                         tok, max_length=16, limit=None)
    assert [r.doc_index for r in got] == [0] and got.skipped["nothing_to_score"] == 1 and got.prefix_token is None
    # wrap with EOS keeps the empty document (its EOS is scored, as MDLM's pipeline)
    got = build_requests(TaskSpec.from_dict({**card, "packing": {"mode": "wrap", "block_size": 3}}), tok, max_length=None, limit=None)
    assert got.skipped["empty"] == 0
    # on_empty: error names the file and the record's line
    card["dataset"] = {**card["dataset"], "on_empty": "error"}
    with pytest.raises(DatasetUnavailable, match=r"docs\.jsonl line 2: the document is empty"):
        build_requests(TaskSpec.from_dict({**card, "packing": {"mode": "document"}}), tok, max_length=16, limit=None)
    # ... also under a record selection (the second selected record is the file's line 3)
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"text": "a"}, {"text": "b"}, {"text": ""}, {"text": "d"}]))
    card["dataset"] = {**card["dataset"], "split": "mod:2=0"}
    with pytest.raises(DatasetUnavailable, match=r"docs\.jsonl line 3: the document is empty"):
        build_requests(TaskSpec.from_dict({**card, "packing": {"mode": "document"}}), tok, max_length=16, limit=None)


def test_model_prefix_is_used_not_the_tokenizers_bos(tmp_path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "ab"}) + "\n" + json.dumps({"text": "cd"}) + "\n")
    tok = CharTokenizer()  # BOS 1
    task = TaskSpec.from_dict({"name": "toy", "type": "perplexity", "dataset": {"source": "local", "path": str(path)},
                               "packing": {"mode": "wrap", "block_size": 4}})
    got = build_requests(task, tok, max_length=None, limit=None, prefix_id=2)
    assert {r.context for r in got} == {(2,)} and got.prefix_token == {"id": 2, "text": tok.decode([2])}
    got = build_requests(task, tok, max_length=None, limit=None)  # the tokenizer's rule: its BOS
    assert {r.context for r in got} == {(1,)}
