"""How lm-eval's ``hf`` model turns text into scored tokens, so the bridge can do the same by default.

The numbers of ``dlmbench lm-eval`` for an autoregressive model equal ``lm_eval --model hf`` on the same
checkpoint (tested to 1e-5 in ``tests/integrations/test_lmeval_parity.py``) because the bridge follows the
three conventions of lm-eval 0.4.13's ``HFLM`` (``lm_eval/models/huggingface.py``, ``lm_eval/api/model.py``)
under its default prefix rule ``prefix=lmeval``:

1. **Prefix token** (``HFLM.prefix_token_id``): an empty context (``loglikelihood_rolling`` documents,
   ``loglikelihood`` requests with context ``""``) is scored after ``prefix_token_id`` if the model_args give
   one, else the tokenizer's BOS, else its EOS (:func:`lmeval_prefix_id`). A ``loglikelihood`` request with
   an empty context whose first token already *is* that token uses it as the context instead
   (``TemplateLM.loglikelihood``).
2. **Tokenization** (``HFLM.tok_encode``): text is encoded with the tokenizer's default special tokens (a
   Llama-style tokenizer puts its BOS in front), except where the text already starts with the prefix
   token's string; the continuation of an empty context is encoded without special tokens. A pair is split
   as ``TemplateLM._encode_pair``: trailing spaces of the context move to the continuation,
   ``cont = enc(ctx + cont)[len(enc(ctx)):]`` and the context fed is ``enc(ctx)`` (:func:`hflm_pair`); the
   sequence is left-truncated to ``max_length + 1`` tokens (``HFLM._loglikelihood_tokens``).
   A ``generate_until`` prompt is encoded as ``HFLM.tok_batch_encode`` does (default special tokens unless
   the context starts with the BOS string; :func:`hflm_generation_context`).
3. **Rolling windows** (``HFLM.loglikelihood_rolling``): a document is cut by lm-eval's own
   ``get_rolling_token_windows(tokens, prefix, max_length, context_len=1)`` and ``make_disjoint_window``:
   the first window is ``[prefix] + tokens[:L-1]`` scoring ``tokens[:L]``, each later one scores the next
   ``L`` tokens after the one token before them (the last, shorter one keeps a full ``L``-token input).

``prefix=card`` is dlmbench's own choice instead: the prefix token of the model card (``prefix_token_id``
setting of the AR family), text encoded without special tokens, and the adapter's sliding window
(``max_length``/``stride``) for long documents. Models that do not read left to right (diffusion) score
an empty context with every token noised: no prefix token under either rule (rule ``none``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dlmbench.errors import BadSpec

PREFIX_RULES = ("lmeval", "card")


@dataclass(frozen=True)
class Prefix:
    """The token an empty context is scored after: the rule that chose it, the id, its string, why."""

    rule: str  # lmeval | card | none
    token_id: int | None
    token: str | None
    source: str

    def record(self) -> dict[str, Any]:
        """Flat provenance keys for results and rows."""
        return {f"prefix_{k}" if k != "rule" else "prefix_rule": v for k, v in asdict(self).items()}

    def line(self) -> str:
        if self.token_id is None:
            return f"prefix rule {self.rule}: {self.source}"
        return f"prefix rule {self.rule}: empty contexts scored after token {self.token_id} {self.token!r} ({self.source})"


def parse_prefix_rule(value: Any) -> str:
    v = str(value).strip().lower()
    if v not in PREFIX_RULES:
        raise BadSpec(f"lm-eval bridge: prefix must be one of {', '.join(PREFIX_RULES)}, not {value!r} "
                      "(lmeval: lm-eval's rule, equal to `lm_eval --model hf`; card: the model card's prefix_token_id)")
    return v


def lmeval_prefix_id(custom: int | None, bos: int | None, eos: int | None) -> tuple[int, str]:
    """lm-eval's ``HFLM.prefix_token_id``: ``custom`` if given, else the BOS id, else the EOS id; with the reason."""
    if custom is not None:
        return int(custom), "prefix_token_id from model_args"
    if bos is not None:
        return int(bos), "tokenizer BOS, lm-eval's rule"
    if eos is not None:
        return int(eos), "tokenizer EOS (no BOS), lm-eval's rule"
    raise BadSpec("lm-eval bridge: the tokenizer has neither BOS nor EOS, so lm-eval's prefix rule has no token; "
                  "give prefix_token_id=ID in --model_args or use prefix=card")


def token_string(tokenizer: Any, token_id: int | None) -> str | None:
    """The token's own string (special tokens included), e.g. ``'<|endoftext|>'``."""
    if token_id is None:
        return None
    hf = getattr(tokenizer, "hf", None)
    if hf is not None:
        return str(hf.convert_ids_to_tokens(int(token_id)))
    return tokenizer.decode([int(token_id)])


def _prefix_text(tokenizer: Any, prefix_id: int) -> str | None:
    hf = getattr(tokenizer, "hf", None)
    return hf.decode([int(prefix_id)]) if hf is not None else None


def hflm_encode(tokenizer: Any, text: str, prefix_id: int, *, special_tokens: bool | None = None) -> list[int]:
    """``HFLM.tok_encode``: the tokenizer's default special tokens (``special_tokens=None``) unless ``text``
    starts with the prefix token's decoded string; ``special_tokens=False`` never adds them. A tokenizer
    without a Hugging Face tokenizer inside (``.hf``) has no special tokens to add: its ``encode``."""
    hf = getattr(tokenizer, "hf", None)
    if hf is None:
        return list(tokenizer.encode(text))
    kwargs: dict[str, Any] = {}
    if special_tokens is not None:
        kwargs["add_special_tokens"] = special_tokens
    else:
        pre = _prefix_text(tokenizer, prefix_id)
        if pre is not None and text.startswith(pre):
            kwargs["add_special_tokens"] = False
    return [int(i) for i in hf.encode(text, **kwargs)]


def hflm_pair(tokenizer: Any, context: str, continuation: str, prefix_id: int) -> tuple[list[int], list[int]]:
    """Token ids ``(context, continuation)`` of one ``loglikelihood`` request as lm-eval's ``hf`` model feeds them."""
    if context == "":
        cont = hflm_encode(tokenizer, continuation, prefix_id, special_tokens=False)
        if cont and cont[0] == prefix_id:  # the text starts with the prefix token: it is the context
            return cont[:1], cont[1:]
        return [prefix_id], cont
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = hflm_encode(tokenizer, context + continuation, prefix_id)
    ctx = hflm_encode(tokenizer, context, prefix_id)
    return ctx, whole[len(ctx):]


def hflm_generation_context(tokenizer: Any, context: str) -> list[int]:
    """The prompt ids of a ``generate_until`` request as ``HFLM.tok_batch_encode`` makes them: the tokenizer's
    default special tokens unless the context starts with its BOS string."""
    hf = getattr(tokenizer, "hf", None)
    if hf is None:
        return list(tokenizer.encode(context))
    bos = getattr(hf, "bos_token", None)
    kwargs = {"add_special_tokens": False} if bos and context.startswith(bos) else {}
    return [int(i) for i in hf.encode(context, **kwargs)]


def truncate_left(context: Sequence[int], continuation: Sequence[int], max_length: int | None) -> tuple[list[int], list[int]]:
    """Keep the last ``max_length + 1`` tokens of ``context + continuation`` (lm-eval's left truncation)."""
    ctx, cont = list(context), list(continuation)
    if max_length is None or len(ctx) + len(cont) <= max_length + 1:
        return ctx, cont
    keep = max(0, max_length + 1 - len(cont))
    return (ctx[len(ctx) - keep:] if keep else []), cont


def rolling_windows(tokens: Sequence[int], prefix_id: int, max_length: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's rolling windows ``(context, scored tokens)`` of a document, disjoint, ``context_len=1``
    (lm-eval's own functions, so the windows are the ones ``hf`` scores)."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    return [
        make_disjoint_window(w)
        for w in get_rolling_token_windows(token_list=list(tokens), prefix_token=prefix_id, max_seq_len=int(max_length), context_len=1)
    ]


__all__ = [
    "PREFIX_RULES", "Prefix", "hflm_encode", "hflm_generation_context", "hflm_pair", "lmeval_prefix_id", "parse_prefix_rule",
    "rolling_windows", "token_string", "truncate_left",
]
