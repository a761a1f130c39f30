#!/usr/bin/env bash
# Installs the test dependencies, lints, and runs the CPU test suite.
# pytest exit code 5 ("no tests collected") is treated as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
python -m ruff check .
python -m ruff format --check .
set +e
python -m pytest -q tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
exit "$rc"
