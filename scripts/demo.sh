#!/usr/bin/env bash
# The one command that sets up everything the demo needs and runs it:
# Debian packages (BIRD 2, Redis, iproute2 …; root or sudo), a venv with topfib, then `topfib demo`.
# As root the switch is BIRD 2 in a network namespace; otherwise a second ExaBGP on 127.0.0.2.
# Ctrl-C stops it; `--duration S` stops it after S seconds (exit 1 if no route reached the switch).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
exec .venv/bin/topfib demo "$@"
