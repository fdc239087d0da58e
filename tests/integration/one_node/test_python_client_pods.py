"""The official Kubernetes Python client against running pods: exec, exit codes, port-forward, nodes.

The scenarios of kubernetes-client/python's e2e test_client.py that need a node (test_pod_apis,
test_pod_exec_close_channel, test_exit_code, test_portforward_raw, test_node_apis), written as our
tests, in the package's one-node `svcnet up` cluster (one_node/conftest.py). The client speaks WebSocket (v5/v4.channel.k8s.io for
exec, the portforward protocol for port-forward) to the API server, which proxies to the kubelet.
"""
from __future__ import annotations

import gzip
import json
import os
import select
import shutil
import socket
import textwrap
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter")),
                                reason="needs root (network namespaces), ip and nsenter")

SHELL_POD = "py-client-shell"
PORT_SERVER_POD = "py-client-ports"

# Echoes what it reads on each port given, as the upstream test's port server does.
PORT_SERVER = textwrap.dedent("""\
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for port in sys.argv[1:]:
        listener = socket.create_server(("0.0.0.0", int(port)))
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ, "accept")
    while True:
        for key, _ in sel.select():
            if key.data == "accept":
                conn, _ = key.fileobj.accept()
                sel.register(conn, selectors.EVENT_READ, "echo")
                continue
            data = key.fileobj.recv(4096)
            if data:
                key.fileobj.sendall(data)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
    """)


@pytest.fixture(scope="module")
def cluster(one_node_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    """The package's cluster with the module's two pods and ConfigMap, deleted (and gone) afterwards."""
    c = one_node_cluster
    try:
        c.kubectl("create", "configmap", PORT_SERVER_POD, f"--from-literal=port-server.py={PORT_SERVER}")
        c.kubectl("apply", "-f", "-", input=textwrap.dedent(f"""\
            apiVersion: v1
            kind: Pod
            metadata: {{name: {SHELL_POD}}}
            spec:
              containers:
              - {{name: sleep, image: busybox, args: [/bin/sh, -c, "while true; do date; sleep 5; done"]}}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {{name: {PORT_SERVER_POD}}}
            spec:
              restartPolicy: Never
              containers:
              - name: port-server
                image: python
                command: [python3, -u, /opt/port-server.py, "1234", "1235"]
                volumeMounts: [{{name: port-server, mountPath: /opt, readOnly: true}}]
                startupProbe: {{tcpSocket: {{port: 1235}}, periodSeconds: 1, failureThreshold: 30}}
              volumes:
              - {{name: port-server, configMap: {{name: {PORT_SERVER_POD}}}}}
            """))
        for name in (SHELL_POD, PORT_SERVER_POD):
            wait_for(lambda name=name: is_running_ready(c.pod(name)), timeout=90, interval=0.3,
                     what=f"{name} Running and ready")
        yield c
    finally:
        c.kubectl("delete", "pod", SHELL_POD, PORT_SERVER_POD, "--ignore-not-found", "--wait=true",
                  "--timeout=120s", check=False)
        c.kubectl("delete", "configmap", PORT_SERVER_POD, "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def core(cluster: SvcnetCluster) -> Iterator[client.CoreV1Api]:
    with config.new_client_from_config(config_file=str(cluster.data_dir / "kubeconfig")) as api:
        yield client.CoreV1Api(api)


def run(core: client.CoreV1Api, command: list[str], **options) -> object:
    options = {"stderr": False, "stdin": False, "stdout": True, "tty": False, **options}
    return stream(core.connect_get_namespaced_pod_exec, SHELL_POD, "default", command=command, **options)


# ---- test_pod_apis


def test_exec_returns_the_commands_output_as_text(core: client.CoreV1Api) -> None:
    out = run(core, ["/bin/sh", "-c", "for i in $(seq 1 3); do date; done"])
    assert isinstance(out, str) and len(out.splitlines()) == 3


def test_exec_returns_binary_output_unchanged(core: client.CoreV1Api) -> None:
    out = run(core, ["/bin/sh", "-c", 'echo -n "This is a test string" | gzip'], binary=True)
    assert isinstance(out, bytes) and gzip.decompress(out) == b"This is a test string"


def test_exec_by_post_of_a_one_line_command(core: client.CoreV1Api) -> None:
    out = stream(core.connect_post_namespaced_pod_exec, SHELL_POD, "default", command=["uptime"],
                 stderr=False, stdin=False, stdout=True, tty=False)
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("binary", [False, True])
def test_an_interactive_shell_keeps_stdout_and_stderr_apart_and_reports_success(
        core: client.CoreV1Api, binary: bool) -> None:
    def text(value: str) -> str | bytes:
        return value.encode() if binary else value

    resp = stream(core.connect_post_namespaced_pod_exec, SHELL_POD, "default", command=["/bin/sh"],
                  stderr=True, stdin=True, stdout=True, tty=False, binary=binary, _preload_content=False)
    try:
        resp.write_stdin(text("echo test string 1\n"))
        assert resp.readline_stdout(timeout=10) == text("test string 1")
        assert not resp.peek_stderr()
        resp.write_stdin(text("echo test string 2 >&2\n"))
        assert resp.readline_stderr(timeout=10) == text("test string 2")
        assert not resp.peek_stdout()
        resp.write_stdin(text("exit\n"))

        def exec_status() -> str | bytes:
            resp.update(timeout=1)
            return resp.read_channel(ERROR_CHANNEL)

        status = wait_for(exec_status, timeout=20, what="the exec's status on the error channel")
        assert json.loads(status)["status"] == "Success"
        resp.update(timeout=5)
        assert not resp.is_open()
    finally:
        resp.close()


def test_closing_stdin_ends_cat_with_exit_code_0(core: client.CoreV1Api) -> None:
    """v5.channel.k8s.io's CLOSE signal: the command sees the end of its input."""
    resp = stream(core.connect_post_namespaced_pod_exec, SHELL_POD, "default", command=["/bin/sh", "-c", "cat"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    try:
        assert resp.subprotocol == "v5.channel.k8s.io"
        resp.write_stdin("test-close\n")
        assert resp.readline_stdout(timeout=10) == "test-close"
        resp.close_channel(0)
        resp.run_forever(timeout=20)
        assert not resp.is_open()
        assert resp.returncode == 0
    finally:
        resp.close()


@pytest.mark.parametrize(("command", "code"), [(["false"], 1), (["/bin/sh", "-c", "sleep 1; exit 3"], 3),
                                               (["true"], 0), (["/bin/sh", "-c", "ls /"], 0)])
def test_exec_reports_the_exit_code(core: client.CoreV1Api, command: list[str], code: int) -> None:
    resp = run(core, command, stderr=True, _preload_content=False)
    assert resp.returncode is None
    resp.run_forever(timeout=20)
    assert resp.returncode == code
    assert resp.returncode == code  # asked twice, the same


def test_every_namespace_lists_the_pods(core: client.CoreV1Api) -> None:
    names = {p.metadata.name for p in core.list_pod_for_all_namespaces().items}
    assert {SHELL_POD, PORT_SERVER_POD} <= names


# ---- test_node_apis


def test_nodes_are_listed_and_read_with_labels(core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert nodes
    for item in nodes:
        node = core.read_node(name=item.metadata.name)
        assert isinstance(node.metadata.labels, dict) and node.metadata.labels


# ---- test_portforward_raw


def _echo(sock: socket.socket, sent: bytes) -> bytes:
    sock.sendall(sent)
    reply = b""
    while reply != sent:
        ready, _, _ = select.select([sock], [], [], 30)
        assert ready, f"no echo of {sent!r} within 30 s (have {reply!r})"
        data = sock.recv(1024)
        assert data, "the forwarded connection closed"
        reply += data
        assert sent.startswith(reply)
    return reply


def test_portforward_carries_two_ports_at_once_and_reports_a_closed_one(core: client.CoreV1Api) -> None:
    for round_ in range(3):
        pf = portforward(core.connect_get_namespaced_pod_portforward, PORT_SERVER_POD, "default",
                         ports="1234,1235,1236")
        assert pf.connected
        sockets = {port: pf.socket(port) for port in (1234, 1235)}
        for port, sock in sockets.items():
            sock.setblocking(True)
            assert _echo(sock, f"round {round_} port {port}".encode())

        closed = pf.socket(1236)  # nothing listens there: the kubelet reports an error and closes it
        closed.setblocking(True)
        assert closed.recv(1024) == b""
        assert pf.error(1236)
        closed.close()

        for sock in sockets.values():
            _echo(sock, b"another round on fileno " + str(sock.fileno()).encode())
            sock.close()
        wait_for(lambda pf=pf: not pf.connected, timeout=10, what="the port-forward to end with its sockets")
        assert pf.error(1234) is None and pf.error(1235) is None


def test_portforward_error_names_the_port(core: client.CoreV1Api) -> None:
    pf = portforward(core.connect_get_namespaced_pod_portforward, PORT_SERVER_POD, "default", ports="1236")
    sock = pf.socket(1236)
    sock.setblocking(True)
    assert sock.recv(1024) == b""
    assert "1236" in json.dumps(pf.error(1236))
    sock.close()
