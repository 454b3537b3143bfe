"""dlmbench.data.vocab: the tokenizer-model agreement rules (issue 19, item 2).

Ground truth: published sizes (tokenizer ids, embedding rows) of real checkpoints, which must pass, and the zoo's
own mismatches (another zoo model's tokenizer), which must not; the boundaries follow from the rule as stated
in the module docstring, ``max(128, rows // 32)`` unused rows, computed here by hand.
"""

from __future__ import annotations

import pytest

from dlmbench.data.vocab import check_rows, check_special_ids, declared_ids, id_span, max_padding
from dlmbench.errors import CheckpointError

# (model, tokenizer ids, embedding rows): published padded vocabularies that must load
PUBLISHED_PADDED = [
    ("gpt2", 50257, 50257),
    ("nanoGPT gpt2 (padded to a multiple of 64)", 50257, 50304),
    ("EleutherAI/pythia", 50277, 50304),
    ("GSAI-ML/LLaDA-8B (ids end at <|eot_id|> 126348)", 126349, 126464),
    ("Qwen/Qwen2.5", 151665, 151936),
    ("microsoft/phi-2", 50295, 51200),
    ("deepseek-ai/deepseek-llm-7b-base", 100015, 102400),
    ("zoo llada-kjv (BPE + <|mdm_mask|>)", 2049, 2049),
]

# another zoo model's tokenizer on a zoo model's weights (ids, rows): must be refused
ZOO_SWAPS = [
    ("ar-cd3 tokenizer on ar-kjv", 18, 2048),
    ("ar-reversal tokenizer on ar-kjv", 1024, 2048),
    ("ar-kjv tokenizer on ar-cd3", 2048, 18),
    ("ar-kjv tokenizer on ar-reversal", 2048, 1024),
    ("llada-kjv tokenizer on ar-kjv", 2049, 2048),
]


@pytest.mark.parametrize("name,ids,rows", PUBLISHED_PADDED, ids=[p[0] for p in PUBLISHED_PADDED])
def test_published_padded_vocabularies_pass(name, ids, rows):
    check_rows(ids, rows, "padded", where=name)


@pytest.mark.parametrize("name,ids,rows", ZOO_SWAPS, ids=[s[0] for s in ZOO_SWAPS])
def test_another_zoo_models_tokenizer_is_refused(name, ids, rows):
    with pytest.raises(CheckpointError) as e:
        check_rows(ids, rows, "padded", where=name)
    msg = str(e.value)
    assert "\n" not in msg and f"{ids} tokens" in msg and str(rows) in msg and "does not belong" in msg


def test_padding_allowance_boundaries():
    # small embeddings: 128 rows; large ones: rows // 32 (computed by hand)
    assert max_padding(18) == 128 and max_padding(2048) == 128 and max_padding(4096) == 128
    assert max_padding(4128) == 129 and max_padding(126464) == 3952 and max_padding(151936) == 4748
    check_rows(2048 - 128, 2048, "padded", where="m")
    with pytest.raises(CheckpointError, match="1919 tokens"):
        check_rows(2048 - 129, 2048, "padded", where="m")
    check_rows(126464 - 3952, 126464, "padded", where="m")
    with pytest.raises(CheckpointError, match="at most 3952 rows of padding"):
        check_rows(126464 - 3953, 126464, "padded", where="m")
    with pytest.raises(CheckpointError, match="embed only 2048"):
        check_rows(2049, 2048, "padded", where="m")


@pytest.mark.parametrize("ids,ok", [(50257, True), (50258, True), (50256, False), (50259, False), (18, False)])
def test_mask_appended_rule(ids, ok):
    """MDLM / SEDD on GPT-2: 50258 rows = 50257 tokens + the mask, or a tokenizer that holds the last id itself."""
    if ok:
        check_rows(ids, 50258, "mask_appended", where="mdlm-owt")
    else:
        with pytest.raises(CheckpointError, match=f"{ids} tokens"):
            check_rows(ids, 50258, "mask_appended", where="mdlm-owt")


@pytest.mark.parametrize("ids,ok", [(32768, True), (32767, False), (32769, False)])
def test_exact_rule(ids, ok):
    """Plaid: one embedding row per OWT2 token."""
    if ok:
        check_rows(ids, 32768, "exact", where="plaid-1b")
    else:
        with pytest.raises(CheckpointError, match="exactly 32768 tokens" if ids < 32768 else "embed only 32768"):
            check_rows(ids, 32768, "exact", where="plaid-1b")


def test_unknown_rule_is_a_programming_error():
    with pytest.raises(ValueError):
        check_rows(1, 1, "roughly", where="m")


def test_declared_ids():
    assert declared_ids(None) == () and declared_ids(-1) == () and declared_ids(5) == (5,)
    assert declared_ids([128001, 128008, 128009]) == (128001, 128008, 128009)
    assert declared_ids([None, -1, 3]) == (3,)


def test_special_ids_exist_and_agree():
    # Llama 3.1 Instruct: the config lists three EOS ids, the tokenizer's EOS is one of them
    check_special_ids({"bos": 128000, "eos": [128001, 128008, 128009]}, {"bos": 128000, "eos": 128009}, 128256, where="m")
    # a role the tokenizer does not name, or a role outside ``agree``, is only checked for existence
    check_special_ids({"eos": 0, "pad": 0}, {"eos": None, "pad": 7}, 18, where="m")
    with pytest.raises(CheckpointError, match="eos id 5000 is not a token of its tokenizer \\(2048 tokens\\)"):
        check_special_ids({"eos": 5000}, {"eos": 0}, 2048, where="m")
    with pytest.raises(CheckpointError, match="the tokenizer's eos id is 0 but the config says 5"):
        check_special_ids({"eos": 5}, {"eos": 0}, 2048, where="m")
    with pytest.raises(CheckpointError, match="mask id is 2047 but the config says 2048"):
        check_special_ids({"mask": 2048}, {"mask": 2047}, 2049, where="m", agree=("mask",))


def test_id_span_counts_to_the_last_id(tmp_path):
    """A tokenizer whose special ids follow a gap (as LLaDA's: bytes 0..255, specials 126080..126348) spans up to
    its last id, not its number of entries."""
    from transformers import PreTrainedTokenizerFast

    from dlmbench.families.llada.writer import write_tiny_tokenizer

    tok = PreTrainedTokenizerFast.from_pretrained(str(write_tiny_tokenizer(tmp_path)))
    assert len(tok.get_vocab()) == 256 + (126349 - 126080)
    assert id_span(tok) == 126349
