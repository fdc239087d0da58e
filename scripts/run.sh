#!/usr/bin/env bash
# The main job: install what is missing, then start svcnet in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/svcnet up "$@"
