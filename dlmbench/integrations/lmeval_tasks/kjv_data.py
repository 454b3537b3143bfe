"""The data of the packaged lm-eval task ``dlmbench_kjv_rolling``, found next to this file.

lm-eval resolves a relative ``dataset_kwargs: {data_files: ...}`` against the working folder, so a task
shipped inside a package cannot name its file that way. lm-eval's ``custom_dataset`` hook (a function the
YAML names with ``!function``, called with the task's metadata and ``dataset_kwargs``) builds the dataset
here instead, from the file beside this module, wherever the package is installed and whatever the cwd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KJV_FILE = HERE / "kjv_heldout.jsonl"


def kjv_heldout(**_: Any):
    """``DatasetDict({"test": ...})`` of the 100 shipped verses (fields ``citation``, ``text``).

    Keyword arguments (lm-eval passes the task's metadata) are ignored."""
    import json

    import datasets

    rows = [json.loads(line) for line in KJV_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
