"""What the kubelet API reaches in this node's pods: where they are, exec sessions.

(Reading logs and running commands in real sandboxes is proven end to end by
tests/integration/test_kubectl_exec.py, through the API server's proxy to the kubelet API.)
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from svcnet.agent.podaccess import PodFiles, exit_code_of, window_size
from svcnet.runtime.containers import Runtime

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
       "spec": {"nodeName": "n1", "containers": [{"name": "main"}]}}


def test_a_pod_without_a_sandbox_on_the_node_has_no_log_no_running_container_and_no_netns(tmp_path: Path) -> None:
    files = PodFiles(Runtime(tmp_path))
    assert files.container_log(POD, "main", previous=False) is None
    assert files.running_container(POD, "main") is None
    assert files.network_namespace(POD) is None


@pytest.mark.parametrize(("returncode", "exit_code"), [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_exit_code_of_maps_signals_to_128_plus_n(returncode: int, exit_code: int) -> None:
    assert exit_code_of(returncode) == exit_code


def test_window_size_packs_rows_before_columns() -> None:
    assert window_size(width=80, height=24) == struct.pack("HHHH", 24, 80, 0, 0)
