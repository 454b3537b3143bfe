"""Sequence layout and lengths of the reasoning tasks (Ye et al. 2024, HKUNLP/diffusion-vs-ar).

Layout (``src/llmtuner/dsets/preprocess.py``):

- prompt given to the model: ``encode(src) + [SEP]``
- target the model must produce: ``encode(tgt) + [EOS]``
- MDM training / decoding canvas: ``prompt + target`` right-padded with ``[PAD]`` to ``cutoff_len``
  (every non-prompt position, EOS and PAD included, is generated).

``cutoff_len`` / ``max_new_tokens`` are the README table of the reference (copied exactly). The
README asks for ``cutoff_len`` >= the longest example; the generators here enforce it (and, for AR,
``len(target) <= max_new_tokens``) when asked to (``fits``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dlmbench.interface import until_eos
from dlmbench.reasoning.char_tokenizer import CharTokenizer


@dataclass(frozen=True)
class TaskLengths:
    cutoff_len: int  # total MDM canvas: src + [SEP] + tgt + [EOS] + [PAD]...
    max_new_tokens: int  # AR greedy generation budget after src + [SEP]


# README of HKUNLP/diffusion-vs-ar ("cutoff_len and --max_new_tokens used in the paper"), except planning.
# Planning: the README's 75 / 24 cannot hold the generator's examples in the 31-token character vocabulary,
# where a node label 10..13 takes two tokens: 967 of the 1000 test targets are longer than 24 tokens (an
# answer cut there can never be right). A target is 6 edges + 5 '/' = 23 characters plus at most 8 extra
# digits (4 two-digit nodes, each in <= 2 edges) + EOS = 32 tokens, the maximum the test split reaches; the
# longest prompt of the split is 62 tokens with [SEP]: cutoff 96 = 64 + 32.
LENGTHS: dict[str, TaskLengths] = {
    "planning": TaskLengths(96, 32),
    "cd3": TaskLengths(37, 24),
    "cd4": TaskLengths(64, 32),
    "cd5": TaskLengths(74, 54),
    "sudoku": TaskLengths(164, 82),
    "sat5": TaskLengths(258, 10),
    "sat7": TaskLengths(285, 14),
    "sat9": TaskLengths(325, 18),
}


def prompt_ids(tok: CharTokenizer, src: str) -> list[int]:
    """``encode(src) + [SEP]``."""
    return tok.encode(src) + [tok.sep_id]


def target_ids(tok: CharTokenizer, tgt: str) -> list[int]:
    """``encode(tgt) + [EOS]``."""
    return tok.encode(tgt) + [tok.eos_id]


def mdm_canvas(tok: CharTokenizer, src: str, tgt: str, cutoff_len: int) -> tuple[list[int], list[bool]]:
    """``prompt + target`` padded with ``[PAD]`` to ``cutoff_len``, and the prompt mask.

    Raises ``ValueError`` when the example does not fit (the reference would silently truncate the
    source from the left; we refuse instead).
    """
    p, t = prompt_ids(tok, src), target_ids(tok, tgt)
    n = len(p) + len(t)
    if n > cutoff_len:
        raise ValueError(f"example of {n} tokens does not fit cutoff_len={cutoff_len}")
    ids = p + t + [tok.pad_id] * (cutoff_len - n)
    return ids, [True] * len(p) + [False] * (cutoff_len - len(p))


def prediction_text(tok: CharTokenizer, generated: list[int], *, cut_at_eos: bool = False) -> str:
    """The string the verifiers score, from the ids generated after the prompt.

    ``cut_at_eos=False`` is the reference's ``compute_acc``: ``decode(skip_special_tokens=True)`` of the
    whole generated canvas, so for an MDM any non-special token *after* ``[EOS]`` is kept (HF ``generate``
    pads after EOS, so for AR the two settings agree). ``cut_at_eos=True`` drops everything from the
    first ``[EOS]`` on.
    """
    ids = until_eos(generated, tok.eos_id) if cut_at_eos else list(generated)
    return tok.decode(ids, skip_special_tokens=True)


def fits(tok: CharTokenizer, src: str, tgt: str, lengths: TaskLengths) -> bool:
    """Whether the example fits the reference's canvas and AR generation budget."""
    p, t = prompt_ids(tok, src), target_ids(tok, tgt)
    return len(p) + len(t) <= lengths.cutoff_len and len(t) <= lengths.max_new_tokens


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write one JSON object per line (keys in insertion order, UTF-8, ``\\n`` line ends)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
