"""First-start credentials: a CA, the serving certificate, a bearer token, a kubeconfig.

Everything lives in the data directory; secrets (keys, token, kubeconfig) are
written 0600 before any byte of them is, so they are never world-readable.

A start writes only what is missing or different (kube-apiserver writes
nothing at startup that it does not need): a restart on a full disk must not
fail on a kubeconfig it already has. A write that fails leaves no .tmp behind.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


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


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer_name: x509.Name, issuer_key, public_key, *, ca: bool,
           sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650 if ca else 365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(sans or []), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def server_sans(extra_ips: tuple[str, ...] = ()) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"), x509.DNSName("kubernetes.default.svc.cluster.local"),
    ]
    for ip in ("127.0.0.1", "::1", *extra_ips):
        names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return names


def ensure_credentials(data_dir: Path, extra_ips: tuple[str, ...] = ()) -> Credentials:
    """Create what is missing; reuse what exists so kubeconfigs stay valid across restarts."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    ca_cert_path, ca_key_path = pki / "ca.crt", pki / "ca.key"
    cert_path, key_path = pki / "apiserver.crt", pki / "apiserver.key"
    token_path = pki / "token"

    if not (ca_cert_path.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("svcnet-ca", _name("svcnet-ca"), ca_key, ca_key.public_key(), ca=True)
        write_secret(ca_key_path, _key_pem(ca_key))
        _write_public(ca_cert_path, ca.public_bytes(serialization.Encoding.PEM))
        for stale in (cert_path, key_path):
            stale.unlink(missing_ok=True)
    if cert_path.exists() and not _names_every_ip(cert_path, extra_ips):
        # New addresses (the cluster network came up after the certificate was made): issue a new one
        # from the same CA, so kubeconfigs stay valid.
        cert_path.unlink()
    if not (cert_path.exists() and key_path.exists()):
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue("kube-apiserver", ca.subject, ca_key, key.public_key(), ca=False,
                      sans=server_sans(extra_ips))
        write_secret(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    if not token_path.exists():
        write_secret(token_path, secrets.token_urlsafe(32).encode())
    token = token_path.read_text().strip()
    sa_key, sa_pub = ensure_service_account_keys(pki)
    return Credentials(ca_cert_path, cert_path, key_path, token, token_path, sa_key, sa_pub)


def ensure_service_account_keys(pki: Path) -> tuple[Path, Path]:
    """The key pair service-account tokens are signed with, made once and kept: a new key
    would invalidate every token issued so far. The public half is rewritten from the key
    when missing or different, so the two never disagree."""
    key_path, pub_path = pki / "sa.key", pki / "sa.pub"
    if not key_path.exists():
        write_secret(key_path, _key_pem(ec.generate_private_key(ec.SECP256R1())))
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
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        named = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress)
    except x509.ExtensionNotFound:
        return not ips
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
