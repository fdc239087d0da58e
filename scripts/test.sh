#!/usr/bin/env bash
# The whole test suite, installing what it needs first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check svcnet tests bench
# The import contract (.importlinter): which room may import which.
.venv/bin/lint-imports --no-cache
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
