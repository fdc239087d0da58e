#!/usr/bin/env bash
# The whole test suite, installing what it needs first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check svcnet tests bench
# The import contract (.importlinter): which room may import which. Quiet unless it breaks.
if ! contract=$(.venv/bin/lint-imports --no-cache 2>&1); then
  printf '%s\n' "$contract" >&2
  exit 1
fi
printf '%s\n' "$contract" | grep -E '^Contracts:'
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
