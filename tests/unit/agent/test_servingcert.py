"""The agent's kubelet serving certificate through a kubelet-serving CSR (servingcert.py), against a
fake API that plays the admin approving and the signer issuing."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from svcnet.agent import servingcert
from svcnet.core import csr, pki

ADDRESSES = ("192.168.1.108", "fd00:192:168:1::6c")


def _authority() -> pki.Authority:
    key = pki.new_key()
    return pki.Authority.from_pem(pki.cert_pem(pki.issue_ca("test-ca", key)), pki.key_pem(key))


class SigningApi:
    """Creates CSRs; each is approved (or denied) on its first read and signed with the CA."""

    def __init__(self, ca: pki.Authority, deny_first: bool = False) -> None:
        self.ca, self.deny_next = ca, deny_first
        self.created: list[dict[str, Any]] = []

    async def create(self, resource: Any, namespace: Any, body: dict[str, Any]) -> dict[str, Any]:
        obj = {**body, "metadata": {"name": f"csr-{len(self.created)}"},
               "spec": {**body["spec"], "username": "system:node:node-3"}}
        self.created.append(obj)
        return obj

    async def get(self, resource: Any, namespace: Any, name: str) -> dict[str, Any]:
        obj = next(o for o in self.created if o["metadata"]["name"] == name)
        if self.deny_next:
            self.deny_next = False
            return {**obj, "status": {"conditions": [{"type": "Denied", "status": "True", "message": "no"}]}}
        approved = {**obj, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}
        signed = csr.sign(approved, self.ca, dt.datetime.now(dt.UTC))
        assert signed.certificate_pem is not None, signed.failure
        return {**approved, "status": {**approved["status"],
                                       "certificate": base64.b64encode(signed.certificate_pem).decode()}}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servingcert, "POLL_INTERVAL", 0.0)
    monkeypatch.setattr(servingcert, "RETRY_AFTER_DENIAL", 0.0)


def test_the_certificate_is_asked_for_issued_and_then_kept(tmp_path: Path) -> None:
    ca = _authority()
    api = SigningApi(ca)
    ca_pem = pki.cert_pem(ca.cert)
    cert_path, key_path = asyncio.run(servingcert.request_serving_certificate(api, tmp_path, ca_pem, "node-3",
                                                                              ADDRESSES))
    spec = api.created[0]["spec"]
    assert (spec["signerName"], spec["usages"]) == ("kubernetes.io/kubelet-serving", ["digital signature", "server auth"])
    assert csr.kubelet_serving_problems(csr.parse_request(csr.request_bytes(api.created[0])), spec["usages"]) == []
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert cert.public_key() == key.public_key(), "the key that was asked with is the one kept"
    assert not (tmp_path / "kubelet.key.pending").exists()
    # a restart with the same addresses asks for nothing; other addresses ask again
    assert asyncio.run(servingcert.request_serving_certificate(api, tmp_path, ca_pem, "node-3", ADDRESSES)) == (
        cert_path, key_path)
    assert len(api.created) == 1
    now = dt.datetime.now(dt.UTC)
    assert servingcert.current_certificate(tmp_path, ca_pem, "node-3", ADDRESSES[:1], now) is None
    assert servingcert.current_certificate(tmp_path, ca_pem, "node-4", ADDRESSES, now) is None
    assert servingcert.current_certificate(tmp_path, pki.cert_pem(_authority().cert), "node-3", ADDRESSES, now) is None
    assert servingcert.current_certificate(tmp_path, ca_pem, "node-3", ADDRESSES, now + dt.timedelta(days=365)) is None


def test_a_denied_request_is_asked_for_again(tmp_path: Path) -> None:
    ca = _authority()
    api = SigningApi(ca, deny_first=True)
    asyncio.run(servingcert.request_serving_certificate(api, tmp_path, pki.cert_pem(ca.cert), "node-3", ADDRESSES))
    assert [o["metadata"]["name"] for o in api.created] == ["csr-0", "csr-1"]
