from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, free_port


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServerProcess]:
    """A fresh `svcnet apiserver` process with its own data dir and port; stopped afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=tmp_path / "data", port=free_port(), home=home)
    server.start()
    try:
        yield server
    finally:
        server.stop()




@pytest.fixture
def control_plane(apiserver: ApiServerProcess) -> Iterator[ApiServerProcess]:
    """The API server plus `svcnet controllers` (all of them) as a second process."""
    log = open(apiserver.data_dir.parent / "controllers.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "svcnet", "controllers", "--data-dir", str(apiserver.data_dir)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    try:
        yield apiserver
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
