"""Checkpoint resolution fails fast, on one line, with the fix (measured: without these checks a
hub lookup retries for 23-46 s; see dlmbench/data/hub.py)."""

from __future__ import annotations

import time

import pytest

from dlmbench.data import hub
from dlmbench.errors import CheckpointError
from dlmbench.specs import CheckpointRef, ModelSpec


def test_hub_id_offline_fails_fast_on_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    t0 = time.monotonic()
    with pytest.raises(CheckpointError) as e:
        hub.resolve_location(CheckpointRef("hub", "gpt2"))
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert "\n" not in msg and "gpt2" in msg
    assert "checkpoint: {local: PATH}" in msg and "HF_HOME" in msg and "HF_HUB_OFFLINE=1" in msg


def test_load_ar_on_hub_id_offline_fails_fast(monkeypatch, tmp_path):
    from dlmbench.families.ar.adapter import load_ar

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = ModelSpec(name="gpt2", family="ar", checkpoint=CheckpointRef("hub", "gpt2"))
    t0 = time.monotonic()
    with pytest.raises(CheckpointError):
        load_ar(spec)
    assert time.monotonic() - t0 < 5


def test_unreachable_endpoint_is_detected_quickly(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    t0 = time.monotonic()
    assert hub.hub_offline()
    assert time.monotonic() - t0 < 5


def test_missing_local_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        hub.resolve_location(CheckpointRef("local", str(tmp_path / "nope")))


def test_package_not_installed_names_pip_install():
    with pytest.raises(CheckpointError, match="pip install no-such-dlmbench-pkg") as e:
        hub.resolve_location(CheckpointRef("package", "no_such_dlmbench_pkg"))
    assert "\n" not in str(e.value)


def test_package_folder_found_without_import(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg_dlmbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "weights.gguf").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder, gguf = hub.resolve_file(CheckpointRef("package", "fakepkg_dlmbench", gguf_file="weights.gguf"))
    assert folder == pkg and gguf == "weights.gguf"
    with pytest.raises(CheckpointError, match="not found"):
        hub.resolve_file(CheckpointRef("package", "fakepkg_dlmbench", gguf_file="other.gguf"))


def test_local_gguf_file_path_is_split(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x")
    assert hub.resolve_file(CheckpointRef("local", str(f))) == (tmp_path, "m.gguf")
