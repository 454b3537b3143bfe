"""Reasoning and planning tasks of Ye et al. 2024, "Beyond Autoregression" (HKUNLP/diffusion-vs-ar).

Pure, model-independent parts: seeded generators writing fixed JSONL splits, two verifiers per task
(``verify_faithful``: the paper's ``compute_acc`` logic; ``verify_strict``: a real solution check),
the 31-token character tokenizer and the prompt/target layout with the reference's length table.

Each task module exposes ``generate(n, seed, ...)``, ``write_split(path, n, seed, ...)``,
``verify_faithful(pred, example)`` and ``verify_strict(pred, example)``; ``SOURCE_FIELD`` /
``TARGET_FIELD`` below say which example fields are the model's source and target text.
"""

from __future__ import annotations

from dlmbench.reasoning import countdown, planning, sat, sudoku
from dlmbench.reasoning.char_tokenizer import CharTokenizer
from dlmbench.reasoning.layout import LENGTHS, TaskLengths, mdm_canvas, prompt_ids, target_ids

MODULES = {"countdown": countdown, "sudoku": sudoku, "sat": sat, "planning": planning}

SOURCE_FIELD = {"countdown": "input", "sudoku": "quizzes", "sat": "input", "planning": "input"}
TARGET_FIELD = {"countdown": "output", "sudoku": "solutions", "sat": "output", "planning": "output"}

__all__ = [
    "CharTokenizer",
    "LENGTHS",
    "MODULES",
    "SOURCE_FIELD",
    "TARGET_FIELD",
    "TaskLengths",
    "countdown",
    "mdm_canvas",
    "planning",
    "prompt_ids",
    "sat",
    "sudoku",
    "target_ids",
]
