#!/usr/bin/env bash
# Command two: every check and every test. Sets up .venv first when it is missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

export PATH="$PWD/.venv/bin:$PATH"
echo ">> ruff"
ruff check .
ruff format --check .
echo ">> mypy (strict on airflow_mlops/core)"
mypy
echo ">> pytest"
# Two workers, one test file each at a time: module-scoped servers and models stay shared inside a file.
exec pytest -n "${MLOPS_TEST_WORKERS:-2}" --dist loadfile "$@"
