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
    got = pack(docs, mode="wrap", block_size=5, bos_id=BOS, eos_id=EOS, decode=decode)
    assert got == [
        PackedRequest((BOS,), (1, 2, 3, EOS), 0, 1 + 2 + 2, None),
        PackedRequest((BOS,), (EOS, 4, 5, EOS), 0, 3 + 1, None),
        PackedRequest((BOS,), (EOS, 6, EOS, EOS), 1, 2, None),
    ]
    # block 6 -> chunks of 4: [1 2 3 E] [4 5 E 6]; the remainder [E] is dropped
    got = pack(docs, mode="wrap", block_size=6, bos_id=BOS, eos_id=EOS, decode=decode)
    assert [r.continuation for r in got] == [(1, 2, 3, EOS, EOS), (4, 5, EOS, 6, EOS)]
    assert [r.doc_index for r in got] == [0, 1]
    assert all(len(r.context) + len(r.continuation) == 6 for r in got)
    # too little text for one block: nothing
    assert pack([[1, 2]], mode="wrap", block_size=8, bos_id=BOS, eos_id=EOS, decode=decode) == []


def test_wrap_without_bos_token_uses_eos_and_flags() -> None:
    # GPT-2 style tokenizer with no separate BOS: the block opens with EOS
    # stream 1 2 3 4 E, chunks of 2: [1 2] [3 4], remainder [E] dropped
    got = pack([[1, 2, 3, 4]], mode="wrap", block_size=4, bos_id=None, eos_id=EOS, decode=decode)
    assert got == [PackedRequest((EOS,), (1, 2, EOS), 0, 3, None), PackedRequest((EOS,), (3, 4, EOS), 0, 5, None)]
    # add_bos / add_eos off: plain chunks of block_size, no EOS between documents
    got = pack([[1, 2], [3, 4, 5]], mode="wrap", block_size=2, bos_id=BOS, eos_id=EOS, add_bos=False, add_eos=False, decode=decode)
    assert [(r.context, r.continuation) for r in got] == [((), (1, 2)), ((), (3, 4))]


# --------------------------------------------------------------------------------------- sliding


def test_sliding_hand_checked_with_bos() -> None:
    # stream with BOS: B 1 2 3 E 4 5 E (8 positions); windows of 4, stride 2: [0,4) [2,6) [4,8)
    got = pack([[1, 2, 3], [4, 5]], mode="sliding", block_size=4, stride=2, bos_id=BOS, eos_id=EOS, decode=decode)
    assert [(r.context, r.continuation, r.doc_index) for r in got] == [
        ((BOS,), (1, 2, 3), 0),
        ((2, 3), (EOS, 4), 0),
        ((EOS, 4), (5, EOS), 1),
    ]
    assert [r.n_bytes for r in got] == [5, 3, 1]
    assert all(r.n_words is None for r in got)


def test_sliding_hand_checked_without_bos() -> None:
    # stream 1 2 3 E 4 5 E (7); the first token is never scored
    got = pack([[1, 2, 3], [4, 5]], mode="sliding", block_size=4, stride=2, bos_id=BOS, eos_id=EOS, add_bos=False, decode=decode)
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
    got = pack(docs, mode="sliding", block_size=block, stride=stride, bos_id=BOS, eos_id=EOS, add_bos=add_bos, decode=decode)
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
        pack([[1, 2, 3]], mode="sliding", block_size=4, stride=4, bos_id=BOS, eos_id=EOS, decode=decode)


# -------------------------------------------------------------------------------------- document


def test_document_mode() -> None:
    docs = [[1, 2], [], [3, 7, 5]]
    texts = ["a é", "", "  c  \t x\n"]
    got = pack(docs, mode="document", block_size=None, bos_id=BOS, eos_id=EOS, add_eos=False, decode=decode, texts=texts)
    assert got == [
        PackedRequest((BOS,), (1, 2), 0, 3, 2),
        PackedRequest((BOS,), (3, 7, 5), 2, 4, 2),
    ]
    # with EOS (not counted in bytes), and a tokenizer without BOS -> empty context
    got = pack([[4]], mode="document", block_size=None, bos_id=None, eos_id=EOS, decode=decode, texts=["€"])
    assert got == [PackedRequest((), (4, EOS), 0, 3, 1)]
    # add_bos false
    got = pack([[8, 8]], mode="document", block_size=3, bos_id=BOS, eos_id=EOS, add_bos=False, add_eos=False, decode=decode)
    assert got == [PackedRequest((), (8, 8), 0, 2, None)]
    # documents longer than block_size are left whole (the adapter slides)
    long = list(range(1, 7)) * 3
    got = pack([long], mode="document", block_size=4, bos_id=BOS, eos_id=EOS, add_eos=False, decode=decode)
    assert got[0].continuation == tuple(long)


def test_count_words() -> None:
    assert count_words("In the beginning God created") == 5
    assert count_words("  one\ttwo\n\nthree  ") == 3
    assert count_words("   ") == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pack([[1]], mode="chunk", block_size=4, bos_id=BOS, eos_id=EOS, decode=decode)
    with pytest.raises(ValueError):
        pack([[1]], mode="wrap", block_size=None, bos_id=BOS, eos_id=EOS, decode=decode)
    with pytest.raises(ValueError):
        pack([[1]], mode="document", block_size=None, bos_id=BOS, eos_id=None, decode=decode)


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
