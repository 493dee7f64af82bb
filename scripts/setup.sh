#!/usr/bin/env bash
# Create .venv (if missing) and install geomhess with the given extras (comma separated).
# Needs only python3 (>= 3.11) and pip: if the venv module is unavailable (Debian ships
# it separately), virtualenv is installed with pip instead.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    rm -rf .venv
    python3 -m pip install --quiet --user virtualenv
    python3 -m virtualenv --quiet .venv
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
