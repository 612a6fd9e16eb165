#!/usr/bin/env bash
# Command one: set everything up and run the main job (continuous training, then batch serving) on the
# shipped real data with embedded defaults: SQLite Airflow, local MLflow, local files under .state/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
