#!/usr/bin/env bash
# Install what svcnet needs on a Debian 12 machine, once: apt packages and the venv.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 iptables nftables conntrack dnsutils curl iputils-ping ca-certificates python3-venv
  etcd-server etcd-client)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing apt packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.svcnet-installed
# The stamp covers this script too, so a change in how the package is installed reinstalls it.
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: preparing .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  # editable_mode=compat: a plain path in a .pth file. The default (an import hook) costs every
  # Python start ~12 ms (pathlib, importlib.util, fnmatch, re), paid by each pod's shim fallback,
  # program and CLI call.
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
  echo "$want" > "$stamp"
fi
