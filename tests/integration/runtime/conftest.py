"""Root-only fixtures: a throwaway pod network namespace and a runtime that cleans up after itself."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from svcnet.runtime.containers import Runtime
from svcnet.runtime.forkserver import ForkServer
from svcnet.runtime.launch import Finished

POD_IP = "10.244.1.8"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("ip"),
                                reason="needs root, ip and nsenter")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pod_netns() -> Iterator[str]:
    """A network namespace for one pod: lo up, the pod IP on lo (no veth needed for these tests)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = "svcnet-rt-test-" + secrets.token_hex(4)
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{POD_IP}/32", "dev", "lo")
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class NoFallback:
    """A fork server's fallback that fails the test: these runs must go through the server."""

    async def run(self, entry: str, args: Sequence[str], timeout: float) -> Finished:
        raise AssertionError(f"the fork server did not start the {entry}")


@pytest.fixture(params=["python -m", "forkserver"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime under tmp_path, starting its helpers each way the agent can (a new interpreter, or a
    fork of the fork server); every sandbox and container it recorded is removed afterwards."""
    server = ForkServer(fallback=NoFallback()) if request.param == "forkserver" else None
    if server is not None:
        server.start()
    rt = Runtime(tmp_path / "data", launcher=server)
    try:
        yield rt
    finally:
        for pod in Runtime(rt.root).sandboxes():
            await rt.remove_pod(pod, grace_seconds=0)
        if server is not None:
            assert server.restarts == 0
            await server.close()
