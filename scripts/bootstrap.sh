#!/usr/bin/env bash
# Create or update the project-local environment (.venv) from the committed lock file.
# Idempotent: a second run only checks that .venv matches uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
STATE=".state"
mkdir -p "$STATE"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  echo "error: Python 3.11, 3.12 or 3.13 is required (set PYTHON=/path/to/python)." >&2
  exit 1
}

PY=$(pick_python)
UV="$STATE/tools/bin/uv"
if [[ ! -x "$UV" ]] || [[ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
  echo ">> installing uv $UV_VERSION into $STATE/tools"
  rm -rf "$STATE/tools"
  "$PY" -m venv "$STATE/tools"
  "$STATE/tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi

echo ">> syncing .venv with uv.lock"
# Bytecode is compiled at install: without it every import of airflow, great_expectations and
# evidently parses source again (twice as slow where PYTHONDONTWRITEBYTECODE is set).
"$UV" sync --locked --compile-bytecode --python "$PY" --quiet
