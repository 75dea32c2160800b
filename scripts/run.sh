#!/usr/bin/env bash
# The README's first command: set up idsync in .venv and run it on the embedded defaults
# (SQLite in WAL mode + an embedded real redis-server), with a worker, printing the SCIM
# base URL and a bearer token for the default organization. Needs only Python 3.11+.
# Environment (DATABASE_URL, REDIS_URL, …) overrides the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.idsync-install-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
  touch "$stamp"
fi
exec .venv/bin/idsync up "$@"
