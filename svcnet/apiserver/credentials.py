"""First-start credentials: a CA, the serving certificate, a bearer token, a kubeconfig.

Everything lives in the data directory; secrets (keys, token, kubeconfig) are
written 0600 before any byte of them is, so they are never world-readable.

A start writes only what is missing or different (kube-apiserver writes
nothing at startup that it does not need): a restart on a full disk must not
fail on a kubeconfig it already has. A write that fails leaves no .tmp behind.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.core import pki


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token: str
    token_file: Path
    # The service-account token key pair (kubeadm's sa.key / sa.pub): kube-apiserver's
    # --service-account-signing-key-file and --service-account-key-file.
    sa_key: Path | None = None
    sa_pub: Path | None = None


def write_secret(path: Path, data: bytes) -> None:
    """Write data to path with mode 0600, atomically (tmp + rename + fsync)."""
    _write_atomically(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write_atomically(path, data, 0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """tmp + fsync + rename, unless path already holds exactly data (with mode); no tmp survives a failure."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


SERVER_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local")


def load_authority(pki_dir: Path) -> pki.Authority:
    """The cluster CA (pki/ca.crt and ca.key), to issue more certificates from."""
    return pki.Authority.from_pem((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())


def ensure_credentials(data_dir: Path, extra_ips: tuple[str, ...] = ()) -> Credentials:
    """Create what is missing; reuse what exists so kubeconfigs stay valid across restarts."""
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki_dir, 0o700)
    ca_cert_path, ca_key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    cert_path, key_path = pki_dir / "apiserver.crt", pki_dir / "apiserver.key"
    token_path = pki_dir / "token"

    if not (ca_cert_path.exists() and ca_key_path.exists()):
        ca_key = pki.new_key()
        write_secret(ca_key_path, pki.key_pem(ca_key))
        _write_public(ca_cert_path, pki.cert_pem(pki.issue_ca("svcnet-ca", ca_key)))
        for stale in (cert_path, key_path):
            stale.unlink(missing_ok=True)
    if cert_path.exists() and not _names_every_ip(cert_path, extra_ips):
        # New addresses (the cluster network came up after the certificate was made): issue a new one
        # from the same CA, so kubeconfigs stay valid.
        cert_path.unlink()
    if not (cert_path.exists() and key_path.exists()):
        key = pki.new_key()
        cert = pki.issue_serving(load_authority(pki_dir), "kube-apiserver", key.public_key(),
                                 dns_names=SERVER_DNS_NAMES, ips=("127.0.0.1", "::1", *extra_ips))
        write_secret(key_path, pki.key_pem(key))
        _write_public(cert_path, pki.cert_pem(cert))
    if not token_path.exists():
        write_secret(token_path, secrets.token_urlsafe(32).encode())
    token = token_path.read_text().strip()
    sa_key, sa_pub = ensure_service_account_keys(pki_dir)
    return Credentials(ca_cert_path, cert_path, key_path, token, token_path, sa_key, sa_pub)


def ensure_service_account_keys(pki_dir: Path) -> tuple[Path, Path]:
    """The key pair service-account tokens are signed with, made once and kept: a new key
    would invalidate every token issued so far. The public half is rewritten from the key
    when missing or different, so the two never disagree."""
    key_path, pub_path = pki_dir / "sa.key", pki_dir / "sa.pub"
    if not key_path.exists():
        write_secret(key_path, pki.key_pem(pki.new_key()))
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: the service-account signing key must be an ECDSA P-256 key")
    _write_public(pub_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_service_account_key(creds: Credentials) -> ec.EllipticCurvePrivateKey | None:
    if creds.sa_key is None:
        return None
    key = serialization.load_pem_private_key(creds.sa_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # ensure_service_account_keys checked it
    return key


def _names_every_ip(cert_path: Path, ips: tuple[str, ...]) -> bool:
    named = pki.ip_alt_names(x509.load_pem_x509_certificate(cert_path.read_bytes()))
    return all(ipaddress.ip_address(ip) in named for ip in ips)


def kubeconfig_text(server_url: str, creds: Credentials, cluster_name: str = "svcnet") -> str:
    """A kubeconfig that kubectl uses as it is: CA inline, bearer token."""
    import base64

    ca_data = base64.b64encode(creds.ca_cert.read_bytes()).decode()
    cluster: dict = {"server": server_url}
    if server_url.startswith("https://"):
        cluster["certificate-authority-data"] = ca_data
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": "admin", "user": {"token": creds.token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "admin",
                                                         "namespace": "default"}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, server_url: str, creds: Credentials) -> Path:
    write_secret(path, kubeconfig_text(server_url, creds).encode())
    return path


# ------------------------------------------------------------------ component credentials
def component_kubeconfig_text(server_url: str, ca_pem: bytes, user: str, cert_pem: bytes, key_pem: bytes,
                              cluster_name: str = "svcnet") -> str:
    """A kubeconfig authenticating with a client certificate, as kubeadm writes controller-manager.conf,
    scheduler.conf and kubelet.conf: CA, certificate and key inline."""
    import base64

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cluster: dict = {"server": server_url}
    if server_url.startswith("https://"):
        cluster["certificate-authority-data"] = b64(ca_pem)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": f"{user}@{cluster_name}", "context": {"cluster": cluster_name, "user": user}}],
        "current-context": f"{user}@{cluster_name}",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def ensure_component_kubeconfig(path: Path, server_url: str, pki_dir: Path, user: str,
                                groups: tuple[str, ...]) -> Path:
    """Write path (0600) with a new client certificate for user in groups from the cluster CA, unless
    it already holds one for the same server, CA, user and groups (a restart keeps its credentials)."""
    ca_pem = (pki_dir / "ca.crt").read_bytes()
    if _component_kubeconfig_current(path, server_url, ca_pem, user, groups):
        return path
    key = pki.new_key()
    cert = pki.issue_client(load_authority(pki_dir), user, groups, key.public_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, component_kubeconfig_text(server_url, ca_pem, user, pki.cert_pem(cert),
                                                 pki.key_pem(key)).encode())
    return path


def _component_kubeconfig_current(path: Path, server_url: str, ca_pem: bytes, user: str,
                                  groups: tuple[str, ...]) -> bool:
    import base64
    import datetime as dt

    try:
        doc = yaml.safe_load(path.read_text())
        cluster = doc["clusters"][0]["cluster"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        return False
    if cluster.get("server") != server_url or base64.b64decode(cluster.get("certificate-authority-data", "")) != (
            ca_pem if server_url.startswith("https://") else b""):
        return False
    if cert.issuer != x509.load_pem_x509_certificate(ca_pem).subject:
        return False
    fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    return fresh and pki.identity(cert) == (user, tuple(groups))


# kubeadm (1.29 and later) issues kube-apiserver's client certificate for kubelets in this group, and
# binds the group to cluster-admin with a ClusterRoleBinding of the same name.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_GROUP = "kubeadm:cluster-admins"


def ensure_kubelet_client_credentials(pki_dir: Path) -> tuple[Path, Path]:
    """The API server's client certificate for kubelets (kube-apiserver's --kubelet-client-certificate
    and -key, kubeadm's apiserver-kubelet-client.crt/.key), issued from the cluster CA when missing or
    not from the current CA; the key is written 0600."""
    from cryptography.exceptions import InvalidSignature  # here: this function is appended to the module

    cert_path, key_path = pki_dir / "apiserver-kubelet-client.crt", pki_dir / "apiserver-kubelet-client.key"
    ca = load_authority(pki_dir)
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.issuer == ca.cert.subject and pki.identity(cert) == (KUBELET_CLIENT_USER, (KUBELET_CLIENT_GROUP,)):
            try:
                cert.verify_directly_issued_by(ca.cert)
                return cert_path, key_path
            except (ValueError, TypeError, InvalidSignature):
                pass  # a certificate of an earlier CA of the same name: issue a new one
    key = pki.new_key()
    write_secret(key_path, pki.key_pem(key))
    _write_public(cert_path, pki.cert_pem(pki.issue_client(ca, KUBELET_CLIENT_USER, (KUBELET_CLIENT_GROUP,),
                                                           key.public_key())))
    return cert_path, key_path
