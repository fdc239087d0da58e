"""Suite-wide guard: the host namespace's firewall is the same after the whole suite as before.

svcnet writes iptables/nftables rules only inside the network namespaces it
creates; this snapshot of the host's own rules (counters left out: traffic
changes them) proves no test leaked one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+")


def host_firewall() -> dict[str, str]:
    snapshot = {}
    for argv in (["iptables-save"], ["ip6tables-save"], ["nft", "list", "ruleset"]):
        if shutil.which(argv[0]) is None:
            continue
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        lines = [line for line in out.stdout.splitlines() if not line.startswith("#")]
        snapshot[" ".join(argv)] = _COUNTERS.sub("", "\n".join(lines))
    return snapshot


@pytest.fixture(scope="session", autouse=True)
def host_firewall_untouched() -> Iterator[None]:
    if os.geteuid() != 0:
        yield
        return
    before = host_firewall()
    yield
    after = host_firewall()
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"the host namespace's rules changed during the suite: {changed}"


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One etcd for the whole session (Debian's etcd-server): a test that needs it fails, never skips,
    where the binary is missing, as CI installs it (scripts/bootstrap.sh)."""
    from svcnet.kernel.etcdserver import LocalEtcd, new_member

    directory = tmp_path_factory.mktemp("etcd")
    server = LocalEtcd(new_member("svcnet-test", directory), directory / "etcd.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
