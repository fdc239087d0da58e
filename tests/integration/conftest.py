from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, free_port, running_controllers


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
    with running_controllers(apiserver):
        yield apiserver
