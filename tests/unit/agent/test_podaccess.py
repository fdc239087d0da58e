"""The node-file implementation of the API server's NodeAccess: where a node's pods are, exec sessions.

(Reading logs and running commands in real sandboxes is proven end to end by
tests/integration/test_kubectl_exec.py.)
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from svcnet.agent.node import RUNTIME_ROOT_ANNOTATION
from svcnet.agent.podaccess import NodeFiles, exit_code_of, runtime_root, window_size
from svcnet.apiserver.nodeaccess import NodeAccess

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
       "spec": {"nodeName": "n1", "containers": [{"name": "main"}]}}


def node(root: Path | None) -> dict:
    annotations = {RUNTIME_ROOT_ANNOTATION: str(root)} if root else {}
    return {"metadata": {"name": "n1", "annotations": annotations}}


def test_the_runtime_root_is_the_nodes_annotation(tmp_path: Path) -> None:
    assert runtime_root(node(tmp_path)) == tmp_path
    assert runtime_root(node(None)) is None
    assert runtime_root({}) is None


def test_a_node_without_the_annotation_is_unreachable(tmp_path: Path) -> None:
    access: NodeAccess = NodeFiles()
    assert access.reaches(node(tmp_path))
    assert not access.reaches(node(None))


def test_a_pod_without_a_sandbox_on_the_node_has_no_log_and_no_running_container(tmp_path: Path) -> None:
    access = NodeFiles()
    assert access.container_log(node(tmp_path), POD, "main", previous=False) is None
    assert access.running_container(node(tmp_path), POD, "main") is None


@pytest.mark.parametrize(("returncode", "exit_code"), [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_exit_code_of_maps_signals_to_128_plus_n(returncode: int, exit_code: int) -> None:
    assert exit_code_of(returncode) == exit_code


def test_window_size_packs_rows_before_columns() -> None:
    assert window_size(width=80, height=24) == struct.pack("HHHH", 24, 80, 0, 0)
