"""The 31-token character tokenizer of HKUNLP/diffusion-vs-ar and the prompt/target layout."""

import random

import pytest

from dlmbench.reasoning.char_tokenizer import CharTokenizer
from dlmbench.reasoning.layout import LENGTHS, fits, mdm_canvas, prediction_text, prompt_ids, target_ids

# The documented ids (custom_tokenizer.py + model_config*/tokenizer_config.json), written out by hand.
DOCUMENTED = {
    "[PAD]": 0, "[SEP]": 1, "[MASK]": 2, "[EOS]": 3, "[UNK]": 4,
    "0": 5, "1": 6, "2": 7, "3": 8, "4": 9, "5": 10, "6": 11, "7": 12, "8": 13, "9": 14,
    "*": 15, "+": 16, "-": 17, "/": 18, "=": 19, ",": 20,
    "a": 21, "b": 22, "c": 23, "d": 24, "e": 25, "f": 26, "g": 27, "h": 28, "i": 29, "j": 30,
}


def test_ids_match_documentation():
    tok = CharTokenizer()
    assert tok.get_vocab() == DOCUMENTED
    assert tok.vocab_size == 31 == len(tok)
    assert (tok.pad_id, tok.sep_id, tok.mask_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3, 4)
    assert tok.bos_id is None
    assert isinstance(tok.name, str) and tok.name


def test_encode_is_per_character():
    tok = CharTokenizer()
    assert tok.encode("86+28=114") == [13, 11, 16, 7, 13, 19, 6, 6, 9]
    assert tok.encode("a-b,j") == [21, 17, 22, 20, 30]
    assert tok.encode("") == []


def test_round_trip_on_vocabulary_strings():
    tok = CharTokenizer()
    chars = "0123456789*+-/=,abcdefghij"
    rng = random.Random(0)
    for _ in range(200):
        s = "".join(rng.choice(chars) for _ in range(rng.randint(1, 90)))
        ids = tok.encode(s)
        assert len(ids) == len(s)
        assert all(5 <= i < 31 for i in ids)
        assert tok.decode(ids) == s


def test_spaces_become_unk_and_are_dropped_on_decode():
    # reference _tokenize: split on ' ', join chunks by a ' ' token (not in vocab -> [UNK]); empty chunks dropped
    tok = CharTokenizer()
    ids = tok.encode(" 12  +3 ")
    assert ids == [6, 7, 4, 16, 8]
    assert tok.decode(ids) == "12+3"  # skip_special_tokens=True drops [UNK], as compute_acc decodes
    assert tok.decode(ids, skip_special_tokens=False) == "12[UNK]+3"


def test_specials_and_unknown_characters():
    tok = CharTokenizer()
    assert tok.encode("1 [SEP] 2") == [6, 4, 1, 4, 7]  # a whole chunk that is a vocab item is one token
    assert tok.encode("x1") == [4, 6]
    assert tok.decode([6, 1, 7, 3, 0, 0]) == "12"
    assert tok.decode([6, 1, 7, 3], skip_special_tokens=False) == "1[SEP]2[EOS]"
    with pytest.raises(ValueError):
        tok.decode([31])


def test_layout_prompt_target_and_canvas():
    tok = CharTokenizer()
    assert prompt_ids(tok, "1,2,3") == [6, 20, 7, 20, 8, 1]
    assert target_ids(tok, "1+2=3") == [6, 16, 7, 19, 8, 3]
    ids, src_mask = mdm_canvas(tok, "1,2,3", "1+2=3", 15)
    assert ids == [6, 20, 7, 20, 8, 1, 6, 16, 7, 19, 8, 3, 0, 0, 0]
    assert src_mask == [True] * 6 + [False] * 9
    with pytest.raises(ValueError):
        mdm_canvas(tok, "1,2,3", "1+2=3", 11)


def test_length_table_is_consistent_with_the_formats():
    # Sudoku: 81 clues + [SEP] + 81 digits + [EOS] = 164; AR generates 81 digits + [EOS] = 82.
    assert LENGTHS["sudoku"].cutoff_len == 81 + 1 + 81 + 1
    assert LENGTHS["sudoku"].max_new_tokens == 81 + 1
    # SAT target "b,b,...,b" (2n-1 chars) + [EOS] is exactly the AR budget 2n.
    for n in (5, 7, 9):
        assert LENGTHS[f"sat{n}"].max_new_tokens == 2 * n
    tok = CharTokenizer()
    assert fits(tok, "0" * 81, "1" * 81, LENGTHS["sudoku"])
    assert not fits(tok, "0" * 81, "1" * 82, LENGTHS["sudoku"])


def test_prediction_text_reference_decoding_and_eos_cut():
    tok = CharTokenizer()
    gen = tok.encode("1+2=3") + [tok.eos_id] + tok.encode("9") + [tok.pad_id, tok.mask_id]
    assert prediction_text(tok, gen) == "1+2=39"  # compute_acc keeps tokens after [EOS]
    assert prediction_text(tok, gen, cut_at_eos=True) == "1+2=3"
