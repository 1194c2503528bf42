#!/usr/bin/env bash
# The one command that sets up everything the tests need and runs them all:
# Debian packages (as root), a venv with topfib and its dev tools, then ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest -q "$@"
