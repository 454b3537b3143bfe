"""LLaDA-8B-Instruct's chat template, as pure functions on strings and token ids.

Source: ``GSAI-ML/LLaDA-8B-Instruct/tokenizer_config.json`` (``chat_template``, reproduced verbatim in
:data:`CHAT_TEMPLATE`) and ``ML-GSAI/LLaDA`` ``generate.py`` / ``chat.py`` (how it is applied). Each
message renders as

    "<|start_header_id|>" + role + "<|end_header_id|>\\n\\n" + content.strip() + "<|eot_id|>"

the first one prefixed with the BOS token ``<|startoftext|>``; the template then *always* ends with
the assistant header ``"<|start_header_id|>assistant<|end_header_id|>\\n\\n"`` (it ignores
``add_generation_prompt``). Jinja's ``trim`` filter is Python's ``str.strip()``.

Multi-turn in ``chat.py``: the next prompt is the previous output with every EOS (126081) removed,
followed by the new user turn's ids without its leading BOS (:func:`continue_chat_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlmbench.families.llada.backbone import BOS_ID, EOS_ID

BOS_TOKEN = "<|startoftext|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"

CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
)
"""The published Jinja template, verbatim (used by tests as the independent ground truth)."""


def render_turn(role: str, content: str) -> str:
    """One message: ``<|start_header_id|>{role}<|end_header_id|>\\n\\n{content.strip()}<|eot_id|>``."""
    return f"{START_HEADER}{role}{END_HEADER}\n\n{content.strip()}{EOT}"


def render_chat(messages: Sequence[Mapping[str, str]], *, bos_token: str = BOS_TOKEN) -> str:
    """The Instruct prompt text for ``messages`` (``[{"role": ..., "content": ...}, ...]``).

    ``bos + turn₁ + turn₂ + … + "<|start_header_id|>assistant<|end_header_id|>\\n\\n"``.
    """
    text = "".join(render_turn(m["role"], m["content"]) for m in messages)
    if messages:
        text = bos_token + text
    return text + f"{START_HEADER}assistant{END_HEADER}\n\n"


def chat_prompt_ids(tokenizer, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of :func:`render_chat` (the template already holds BOS, so no special tokens are added)."""
    text = render_chat(messages, bos_token=tokenizer.bos_token or BOS_TOKEN)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids or ids[0] != BOS_ID:
        raise ValueError(f"chat prompt does not start with BOS {BOS_ID}: the tokenizer is not LLaDA's")
    return ids


def continue_chat_ids(previous_output: Sequence[int], next_turn: Sequence[int]) -> list[int]:
    """``chat.py``'s multi-turn prompt: previous output without EOS tokens, then the new turn without BOS."""
    kept = [int(t) for t in previous_output if int(t) != EOS_ID]
    tail = list(next_turn)
    if tail and int(tail[0]) == BOS_ID:
        tail = tail[1:]
    return kept + [int(t) for t in tail]
