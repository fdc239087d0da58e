"""The API server's one way to reach nodes: a TLS connection to a node's kubelet API.

As kube-apiserver, the API server proxies pods/log, pods/exec, pods/attach,
pods/portforward and nodes/proxy to the kubelet of the pod's node
(kubeletproxy.py). It authenticates with its kubelet client certificate
(--kubelet-client-certificate) and verifies the kubelet's serving
certificate against the cluster CA (--kubelet-certificate-authority).

Kubelets listen on the cluster's LAN, which only the cluster's own network
namespaces reach: the entry point that made that network injects `new_socket`,
which makes a TCP socket inside it (the control-plane namespace, where the
API server also listens). The API server itself never enters a namespace.
Without a dialer (`NO_KUBELETS`), every node is unreachable.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Obj = Mapping[str, Any]
NewSocket = Callable[[int], socket.socket]  # address family -> an unconnected TCP socket

DEFAULT_KUBELET_PORT = 10250
# kubeadm's --kubelet-preferred-address-types
PREFERRED_ADDRESS_TYPES: Sequence[str] = ("InternalIP", "ExternalIP", "Hostname")
DIAL_TIMEOUT = 30.0  # kube-apiserver's kubelet client dial timeout


class NodeUnreachable(Exception):
    """The node's kubelet cannot be reached (no address, no dialer, or the connection failed)."""


def host_socket(family: int) -> socket.socket:
    """A socket of this process's own network namespace (an API server not in a svcnet cluster)."""
    return socket.socket(family, socket.SOCK_STREAM)


def kubelet_location(node: Obj) -> tuple[str, int] | None:
    """Where the node's kubelet listens: its first address of the preferred types, and the port its
    status.daemonEndpoints advertises (10250 when it advertises none)."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next((a.get("address") for kind in PREFERRED_ADDRESS_TYPES for a in addresses
                 if a.get("type") == kind and a.get("address")), None)
    if not host:
        return None
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    return str(host), int(port) if isinstance(port, int) and port > 0 else DEFAULT_KUBELET_PORT


def client_tls(ca_cert: Path, client_cert: Path, client_key: Path) -> ssl.SSLContext:
    """TLS to kubelets: the API server's kubelet client certificate; theirs verified against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(ca_cert))
    context.load_cert_chain(str(client_cert), str(client_key))
    return context


class KubeletDialer:
    """Opens connections to kubelets: a socket from new_socket, connected, then TLS."""

    def __init__(self, tls: ssl.SSLContext | None, new_socket: NewSocket | None = host_socket) -> None:
        self.tls = tls
        self.new_socket = new_socket

    @property
    def reaches_nodes(self) -> bool:
        return self.new_socket is not None

    async def open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.new_socket is None:
            raise NodeUnreachable("the API server has no route to nodes")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # on a thread: a factory may enter a network namespace to make the socket
        sock = await asyncio.to_thread(self.new_socket, family)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), DIAL_TIMEOUT)
            return await asyncio.wait_for(asyncio.open_connection(
                sock=sock, ssl=self.tls, server_hostname=host if self.tls is not None else None), DIAL_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            sock.close()
            raise NodeUnreachable(f"dial tcp {host}:{port}: {exc or type(exc).__name__}") from None
        except BaseException:
            sock.close()
            raise


NO_KUBELETS = KubeletDialer(None, None)
