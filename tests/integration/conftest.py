from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, free_port


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


