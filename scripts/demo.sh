#!/usr/bin/env bash
# Set up .venv with geomhess and run the main demo (python -m geomhess).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m geomhess
