import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import World, make_world  # noqa: E402


@pytest.fixture
def world(tmp_path, capsys) -> World:
    """A tiny zoo and a results root holding one finished run (``tests/faults/harness.py``)."""
    return make_world(tmp_path, capsys)
