"""The kubelet API's serving certificate from a CertificateSigningRequest, as kubelet with
serverTLSBootstrap gets it (pkg/kubelet/certificate's server certificate manager) on a node that
does not hold the cluster CA's key (a node joined with `svcnet node join`).

The agent makes a key (0600), asks for `kubernetes.io/kubelet-serving` with its own identity
(CN system:node:<name>, O system:nodes, SANs its name and addresses; usages digital signature and
server auth, an ECDSA key needing no key encipherment) and waits. As upstream, nothing approves
such a request by itself (kube-controller-manager's csrapproving approves kubelet client requests
only): an admin runs `kubectl certificate approve`; then csrsigning issues it and the kubelet API
starts serving. A certificate that still names the node's addresses and is valid for more than a
day is used again at the next start, without a new request.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.client.rest import TransportError
from svcnet.core import csr, pki

log = logging.getLogger("svcnet.agent")

CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
SERVING_USAGES = ["digital signature", "server auth"]
CERT_FILE, KEY_FILE = "kubelet.crt", "kubelet.key"
POLL_INTERVAL = 1.0
RETRY_AFTER_DENIAL = 60.0  # a denied or failed request is asked for again this much later (kubelet backs off)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


def current_certificate(cert_dir: Path, ca_pem: bytes, node_name: str, addresses: tuple[str, ...],
                        now: dt.datetime) -> tuple[Path, Path] | None:
    """The certificate and key already in cert_dir when they still serve: issued by the CA, for this
    node, naming exactly its name and addresses, valid for at least another day."""
    cert_path, key_path = cert_dir / CERT_FILE, cert_dir / KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):  # any doubt: ask again
        return None
    names = (set(sans.get_values_for_type(x509.DNSName)), set(sans.get_values_for_type(x509.IPAddress)))
    wanted = ({node_name}, {ipaddress.ip_address(a) for a in addresses})
    if names != wanted or pki.identity(cert)[0] != csr.NODE_PREFIX + node_name or not key_path.exists():
        return None
    return (cert_path, key_path) if cert.not_valid_after_utc > now + dt.timedelta(days=1) else None


async def request_serving_certificate(api: Any, cert_dir: Path, ca_pem: bytes, node_name: str,
                                      addresses: tuple[str, ...]) -> tuple[Path, Path]:
    """The kubelet API's (certificate, key) paths: the current ones, or newly issued through a CSR
    (waits, asking again after a denial, until one is issued; cancel to give up)."""
    current = current_certificate(cert_dir, ca_pem, node_name, addresses, dt.datetime.now(dt.UTC))
    if current is not None:
        return current
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        key = pki.new_key()
        pending_key = cert_dir / (KEY_FILE + ".pending")
        _write_private(pending_key, pki.key_pem(key))  # before the request leaves
        request = csr.new_serving_request_pem(key, node_name, (node_name,), addresses)
        certificate = await _issued(api, request, node_name)
        if certificate is None:
            await asyncio.sleep(RETRY_AFTER_DENIAL)
            continue
        os.replace(pending_key, cert_dir / KEY_FILE)
        (cert_dir / CERT_FILE).write_bytes(certificate)
        log.info("kubelet serving certificate issued for %s (%s)", node_name, ", ".join((node_name, *addresses)))
        return cert_dir / CERT_FILE, cert_dir / KEY_FILE


async def _issued(api: Any, request_pem: bytes, node_name: str) -> bytes | None:
    """Create the CSR and wait for its certificate; None when it is denied or fails."""
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": csr.KUBELET_SERVING_SIGNER,
                     "usages": SERVING_USAGES}}
    while True:
        try:
            name = (await api.create(CSRS, None, body))["metadata"]["name"]
            break
        except (ApiError, TransportError) as exc:  # a restarting API server: ask again
            log.warning("cannot request a kubelet serving certificate: %s", getattr(exc, "message", exc))
            await asyncio.sleep(POLL_INTERVAL * 5)
    log.info("kubelet serving certificate requested for %s: certificate signing request %s is pending; "
             "approve it with: kubectl certificate approve %s", node_name, name, name)
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        try:
            obj = await api.get(CSRS, None, name)
        except (ApiError, TransportError) as exc:
            if isinstance(exc, ApiError) and exc.code == 404:
                log.warning("certificate signing request %s was deleted before it was issued", name)
                return None
            continue
        if csr.has_condition(obj, "Denied") or csr.has_condition(obj, "Failed"):
            reasons = "; ".join(f"{c.get('type')}: {c.get('message', '')}" for c in csr.conditions(obj))
            log.warning("kubelet serving certificate signing request %s was not issued: %s", name, reasons)
            return None
        certificate = (obj.get("status") or {}).get("certificate")
        if certificate:
            return base64.b64decode(certificate)
