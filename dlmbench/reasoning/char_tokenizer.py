"""The 31-token character vocabulary of Ye et al. 2024 ("Beyond Autoregression").

Source: HKUNLP/diffusion-vs-ar ``src/llmtuner/tuner/core/custom_tokenizer.py`` and
``model_config*/tokenizer_config.json``. Ids::

    [PAD]=0 [SEP]=1 [MASK]=2 [EOS]=3 [UNK]=4
    0..9 -> 5..14,  * + - / = ,  -> 15..20,  a..j -> 21..30          (vocab_size 31)

Encoding follows the reference ``_tokenize``: the text is split on single spaces, empty chunks are
dropped; a chunk that is itself a vocabulary item (this includes the special-token strings such as
``"[SEP]"``) is one token, any other chunk is split into characters; consecutive chunks are joined by a
``' '`` token, which is not in the vocabulary and therefore becomes ``[UNK]``. Characters outside the
vocabulary become ``[UNK]`` too.

Decoding with ``skip_special_tokens=True`` (the default, as the reference's ``compute_acc`` decodes
predictions and labels) drops every special id -- including ``[UNK]``, so spaces are *not* restored.
For strings made only of vocabulary characters, ``decode(encode(s)) == s``.
"""

from __future__ import annotations

from collections.abc import Sequence

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[SEP]", "[MASK]", "[EOS]", "[UNK]")
CHARS: tuple[str, ...] = tuple("0123456789") + ("*", "+", "-", "/", "=", ",") + tuple("abcdefghij")

PAD_ID, SEP_ID, MASK_ID, EOS_ID, UNK_ID = 0, 1, 2, 3, 4


class CharTokenizer:
    """Character tokenizer implementing the :class:`dlmbench.interface.Tokenizer` protocol.

    ``bos_id`` is ``None``: the reference never uses a BOS token; prompts end with ``[SEP]``.
    """

    name: str = "diffusion-vs-ar-char31"

    def __init__(self) -> None:
        self.id_to_token: tuple[str, ...] = SPECIAL_TOKENS + CHARS
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.id_to_token)}
        self.vocab_size: int = len(self.id_to_token)
        self.bos_id: int | None = None
        self.eos_id: int | None = EOS_ID
        self.mask_id: int | None = MASK_ID
        self.pad_id: int = PAD_ID
        self.sep_id: int = SEP_ID
        self.unk_id: int = UNK_ID
        self.special_ids: frozenset[int] = frozenset(range(len(SPECIAL_TOKENS)))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; no special tokens are added (see the module docstring)."""
        ids: list[int] = []
        for chunk in (c for c in text.split(" ") if c != ""):
            if ids:
                ids.append(self.unk_id)  # the ' ' separator token, out of vocabulary
            if chunk in self.token_to_id:
                ids.append(self.token_to_id[chunk])
            else:
                ids.extend(self.token_to_id.get(ch, self.unk_id) for ch in chunk)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Concatenate the tokens of ``ids``; special ids (incl. ``[UNK]``) are dropped by default."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            if skip_special_tokens and i in self.special_ids:
                continue
            out.append(self.id_to_token[i])
        return "".join(out)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.token_to_id)

    def __len__(self) -> int:
        return self.vocab_size
