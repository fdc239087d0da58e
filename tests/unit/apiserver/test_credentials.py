"""A start writes only what is missing or changed, and a failed write leaves no .tmp behind."""
from __future__ import annotations

import errno
import os

import pytest

from svcnet.apiserver import credentials
from svcnet.apiserver.credentials import ensure_credentials, write_kubeconfig


def snapshot(directory) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file: a rewrite (tmp + rename) changes the inode."""
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_second_start_writes_nothing(tmp_path):
    creds = ensure_credentials(tmp_path)
    write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", creds)
    before = snapshot(tmp_path)
    again = ensure_credentials(tmp_path)
    write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", again)
    assert snapshot(tmp_path) == before


def test_a_changed_kubeconfig_is_rewritten_0600(tmp_path):
    creds = ensure_credentials(tmp_path)
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", creds)
    write_kubeconfig(path, "https://127.0.0.1:7443", creds)
    assert "https://127.0.0.1:7443" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_write_that_fails_leaves_the_old_file_and_no_tmp(tmp_path, monkeypatch):
    creds = ensure_credentials(tmp_path)
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", creds)
    old = path.read_bytes()

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(credentials.os, "write", full_disk)
    with pytest.raises(OSError):
        write_kubeconfig(path, "https://127.0.0.1:7443", creds)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["kubeconfig", "pki"]


def test_a_new_address_reissues_the_serving_certificate_from_the_same_ca(tmp_path):
    from cryptography import x509 as x

    first = ensure_credentials(tmp_path)
    ca_before, token_before = first.ca_cert.read_bytes(), first.token
    again = ensure_credentials(tmp_path, ("10.96.0.1", "192.168.0.100"))
    cert = x.load_pem_x509_certificate(again.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x.IPAddress)} >= {"10.96.0.1", "192.168.0.100"}
    assert "kubernetes.default.svc" in names.get_values_for_type(x.DNSName)
    # Kubeconfigs stay valid: same CA, same token; and a certificate that names them all is kept.
    assert (again.ca_cert.read_bytes(), again.token) == (ca_before, token_before)
    kept = again.server_cert.read_bytes()
    assert ensure_credentials(tmp_path, ("10.96.0.1",)).server_cert.read_bytes() == kept


def test_the_kubelet_client_certificate_is_kubeadms_identity_from_the_cluster_ca_with_a_0600_key(tmp_path):
    from cryptography import x509

    from svcnet.core import pki

    ensure_credentials(tmp_path)
    cert_path, key_path = credentials.ensure_kubelet_client_credentials(tmp_path / "pki")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert pki.identity(cert) == ("kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",))
    cert.verify_directly_issued_by(credentials.load_authority(tmp_path / "pki").cert)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert credentials.ensure_kubelet_client_credentials(tmp_path / "pki") == (cert_path, key_path)
    assert cert_path.read_bytes() == pki.cert_pem(cert)  # kept: nothing rewritten


def test_a_kubelet_client_certificate_of_another_ca_is_issued_again(tmp_path):
    from cryptography import x509

    ensure_credentials(tmp_path)
    cert_path, _ = credentials.ensure_kubelet_client_credentials(tmp_path / "pki")
    for name in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key"):
        (tmp_path / "pki" / name).unlink()
    ensure_credentials(tmp_path)  # a new CA of the same name
    credentials.ensure_kubelet_client_credentials(tmp_path / "pki")
    x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(
        credentials.load_authority(tmp_path / "pki").cert)
