"""Certificates for the cluster, from its one CA (pure: objects in, objects and PEM bytes out).

kubeadm issues every certificate of a cluster from the cluster CA: the API
server's serving certificate, each kubelet's client certificate
(CN=system:node:<name>, O=system:nodes), the controller manager's and the
scheduler's, and kube-apiserver-kubelet-client for the API server's calls to
kubelets. Who someone is comes from the subject: the common name is the user
name and each organization a group, as kube-apiserver's x509 authenticator
reads them. Writing the files (0600 for keys) is the caller's business.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365


@dataclass(frozen=True)
class Authority:
    """The CA that signs: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> Authority:
        key = serialization.load_pem_private_key(key_pem, None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the cluster CA key must be an ECDSA key")
        return cls(x509.load_pem_x509_certificate(cert_pem), key)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def subject(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    """CN is the user, each O a group (as kube-apiserver's x509 authenticator reads a client certificate)."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(name: x509.Name, issuer: x509.Name, public_key, *, days: int, ca: bool) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))


def _leaf_usage(builder: x509.CertificateBuilder, *usages) -> x509.CertificateBuilder:
    return (builder
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False))


def issue_ca(common_name: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = subject(common_name)
    builder = _builder(name, name, key.public_key(), days=CA_DAYS, ca=True).add_extension(
        x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                      key_encipherment=False, data_encipherment=False, key_agreement=False,
                      encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(key, hashes.SHA256())


def alt_names(dns_names: Iterable[str] = (), ips: Iterable[str] = ()) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)
    return names


def issue_serving(ca: Authority, common_name: str, public_key, *, dns_names: Iterable[str] = (),
                  ips: Iterable[str] = (), days: int = LEAF_DAYS) -> x509.Certificate:
    """A TLS server certificate for the names and addresses given."""
    builder = _leaf_usage(_builder(subject(common_name), ca.cert.subject, public_key, days=days, ca=False),
                          ExtendedKeyUsageOID.SERVER_AUTH)
    builder = builder.add_extension(x509.SubjectAlternativeName(alt_names(dns_names, ips)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def issue_peer(ca: Authority, common_name: str, public_key, *, dns_names: Iterable[str] = (),
               ips: Iterable[str] = (), days: int = LEAF_DAYS) -> x509.Certificate:
    """A certificate both ends of a connection between equals present (kubeadm's etcd peer certificate):
    serving its peers and authenticating to them, for the names and addresses given (etcd checks a
    peer's client certificate against the address it connects from)."""
    builder = _leaf_usage(_builder(subject(common_name), ca.cert.subject, public_key, days=days, ca=False),
                          ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = builder.add_extension(x509.SubjectAlternativeName(alt_names(dns_names, ips)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def issue_client(ca: Authority, user: str, groups: Iterable[str], public_key, *,
                 days: int = LEAF_DAYS) -> x509.Certificate:
    """A TLS client certificate that authenticates as user in groups."""
    builder = _leaf_usage(_builder(subject(user, groups), ca.cert.subject, public_key, days=days, ca=False),
                          ExtendedKeyUsageOID.CLIENT_AUTH)
    return builder.sign(ca.key, hashes.SHA256())


def identity(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """The user and groups a client certificate names (CN, then each O in order)."""
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(common[0].value) if common else "", tuple(str(org.value) for org in orgs))


def ip_alt_names(cert: x509.Certificate) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress)
    except x509.ExtensionNotFound:
        return []
