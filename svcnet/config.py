"""Settings for every component, parsed once at the entry point and frozen."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(os.environ.get("SVCNET_DATA_DIR", "/var/lib/svcnet"))


@dataclass(frozen=True)
class ApiServerConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    bind_address: str = "127.0.0.1"
    port: int = 6443
    insecure: bool = False  # plain HTTP without authentication: only when asked for by name
    storage_dsn: str = ""  # default: sqlite file in data_dir
    compaction_interval: float = 300.0  # kube-apiserver compacts every 5 minutes
    compaction_keep: int = 10_000  # revisions kept behind the head for watch resumption
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12", "fd00:10:96::/112")  # primary family first
    node_port_range: str = "30000-32767"
    # Where pods reach the API (the `kubernetes` Service's endpoint); None until a node network exists.
    advertise_address: str | None = None
    # The port default/kubernetes's endpoints name and the cluster listener's (default: port). Only several
    # servers on one machine set it: each on its own loopback port, all on one port of their own LAN
    # addresses, as servers on separate machines share 6443.
    advertise_port: int | None = None
    # host:port cluster-info names for joining nodes (kubeadm's controlPlaneEndpoint); default: this server's
    # external address. A further server of one cluster names the first's, rather than rewrite it with its own.
    control_plane_endpoint: str | None = None
    # The API port's connection bounds: kube-apiserver's http.Server
    # (k8s.io/apiserver/pkg/server/secure_serving.go, Serve). See apiserver/listener.py.
    read_header_timeout: float = 32.0  # ReadHeaderTimeout: TLS handshake + each request's headers
    idle_timeout: float = 90.0  # IdleTimeout: a kept-alive connection waiting for its next request
    # Upstream has no cap but the open-file limit; 0 keeps that (less the server's own files).
    max_connections: int = 0

    @property
    def kubernetes_service_ip(self) -> str:
        """The first address of the primary service CIDR, as kube-apiserver picks it."""
        return str(ipaddress.ip_network(self.service_cidrs[0])[1])

    @property
    def endpoint_port(self) -> int:
        return self.advertise_port or self.port

    @property
    def dns_service_ips(self) -> tuple[str, ...]:
        """The tenth address of each service CIDR (10.96.0.10): kept for kube-dns, as kubeadm does."""
        return tuple(str(ipaddress.ip_network(c)[10]) for c in self.service_cidrs)

    @property
    def dsn(self) -> str:
        return self.storage_dsn or f"sqlite:///{self.data_dir / 'state.db'}"

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "apiserver.sock"

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "svcnet.pid"

    @property
    def url(self) -> str:
        scheme = "http" if self.insecure else "https"
        host = f"[{self.bind_address}]" if ":" in self.bind_address else self.bind_address
        return f"{scheme}://{host}:{self.port}"
