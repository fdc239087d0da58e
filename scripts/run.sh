#!/usr/bin/env bash
# The main job: install what is missing, bring a whole cluster up in the background
# (API server, controllers, 2 nodes with their agents and proxies, cluster DNS), then walk
# through the seed note's steps against it. `svcnet down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/svcnet up --detach "$@"
data_dir=/var/lib/svcnet
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = "--data-dir" ]; then j=$((i + 1)); data_dir=${!j}; fi
done
.venv/bin/svcnet walkthrough --data-dir "$data_dir"
