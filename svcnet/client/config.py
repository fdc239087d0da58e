"""Where the API server is and how to authenticate to it.

Three sources, as client-go has them: a kubeconfig file (what svcnet writes, or
a real cluster's), the in-cluster service account files, and, for components on
the API server's own host, its root-only unix socket. Each returns a frozen
ClientConfig; nothing here opens a connection.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The unix socket needs an HTTP URL for request lines; the host part is never resolved.
UNIX_SOCKET_URL = "http://localhost"


class ConfigError(Exception):
    """The configuration is missing or cannot be used; the message says which part."""


@dataclass(frozen=True)
class ClientConfig:
    server: str  # base URL, e.g. https://127.0.0.1:6443 (UNIX_SOCKET_URL with unix_socket)
    unix_socket: str | None = None
    token: str | None = None
    # Re-read on every request when set: in-cluster tokens are rotated in place.
    token_file: str | None = None
    ca_data: bytes | None = None  # PEM
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = None  # PEM
    insecure: bool = False  # skip TLS verification (kubeconfig insecure-skip-tls-verify)
    tls_server_name: str | None = None
    namespace: str = "default"  # the context's namespace; components use it as their default

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return (f"ClientConfig(server={self.server!r}, unix_socket={self.unix_socket!r}, "
                f"token={'<set>' if self.token else None}, insecure={self.insecure})")


def unix_socket_config(path: str | os.PathLike[str]) -> ClientConfig:
    """svcnet's apiserver socket (DATA_DIR/apiserver.sock): its 0600 mode is the credential."""
    return ClientConfig(server=UNIX_SOCKET_URL, unix_socket=str(path))


def _named(entries: Any, name: str, what: str, source: str) -> Mapping[str, Any]:
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(what)
            return body if isinstance(body, Mapping) else {}
    raise ConfigError(f"{source}: no {what} named {name!r}")


def _b64(value: Any, field: str, source: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: {field} is not valid base64") from None


def _inline_or_file(section: Mapping[str, Any], data_key: str, file_key: str, base: Path,
                    source: str) -> bytes | None:
    """kubeconfig's `x-data` (base64) wins over `x` (a path, relative to the kubeconfig)."""
    if section.get(data_key):
        return _b64(section[data_key], data_key, source)
    if section.get(file_key):
        path = base / str(section[file_key])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read {file_key} {path}: {exc.strerror}") from None
    return None


def parse_kubeconfig(doc: Any, context: str | None = None, base_dir: Path = Path("."),
                     source: str = "kubeconfig") -> ClientConfig:
    """A parsed kubeconfig document -> ClientConfig for `context` (default: current-context)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: not a kubeconfig document")
    context_name = context or doc.get("current-context")
    if not context_name:
        raise ConfigError(f"{source}: no context given and no current-context set")
    ctx = _named(doc.get("contexts"), str(context_name), "context", source)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster", "")), "cluster", source)
    user: Mapping[str, Any] = {}
    if ctx.get("user"):
        user = _named(doc.get("users"), str(ctx["user"]), "user", source)
    server = str(cluster.get("server") or "")
    if not server:
        raise ConfigError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
    if user.get("exec") or user.get("auth-provider"):
        raise ConfigError(f"{source}: exec and auth-provider credentials are not supported")
    token_file = None
    if user.get("tokenFile") and not user.get("token"):
        token_file = str(base_dir / str(user["tokenFile"]))
    return ClientConfig(
        server=server.rstrip("/"),
        token=str(user["token"]) if user.get("token") else None,
        token_file=token_file,
        ca_data=_inline_or_file(cluster, "certificate-authority-data", "certificate-authority",
                                base_dir, source),
        client_cert_data=_inline_or_file(user, "client-certificate-data", "client-certificate",
                                         base_dir, source),
        client_key_data=_inline_or_file(user, "client-key-data", "client-key", base_dir, source),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        namespace=str(ctx.get("namespace") or "default"),
    )


def load_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> ClientConfig:
    """Read a kubeconfig file; relative file references resolve against its directory."""
    file = Path(path).expanduser()
    try:
        doc = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {file} is not valid YAML: {exc}") from None
    return parse_kubeconfig(doc, context, file.parent, str(file))


def in_cluster_config(environ: Mapping[str, str] | None = None,
                      account_dir: Path = SERVICE_ACCOUNT_DIR) -> ClientConfig:
    """The pod's service account, as client-go's InClusterConfig reads it."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT must be defined")
    token_path = account_dir / "token"
    if not token_path.exists():
        raise ConfigError(f"not running in a cluster: {token_path} does not exist")
    ca_path = account_dir / "ca.crt"
    namespace_path = account_dir / "namespace"
    namespace = namespace_path.read_text().strip() if namespace_path.exists() else "default"
    bracketed = f"[{host}]" if ":" in host else host
    return ClientConfig(
        server=f"https://{bracketed}:{port}",
        token_file=str(token_path),
        ca_data=ca_path.read_bytes() if ca_path.exists() else None,
        namespace=namespace or "default",
    )
