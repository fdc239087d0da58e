"""The cluster's certificates: who a client certificate says it is, and what each one may be used for."""
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from svcnet.core import pki


def _authority() -> pki.Authority:
    key = pki.new_key()
    return pki.Authority.from_pem(pki.cert_pem(pki.issue_ca("test-ca", key)), pki.key_pem(key))


def test_a_client_certificate_names_the_user_as_cn_and_groups_as_organizations() -> None:
    ca = _authority()
    cert = pki.issue_client(ca, "system:node:node-1", ["system:nodes"], pki.new_key().public_key())
    assert pki.identity(cert) == ("system:node:node-1", ("system:nodes",))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)


def test_a_serving_certificate_names_its_hosts_and_addresses() -> None:
    ca = _authority()
    cert = pki.issue_serving(ca, "node-1", pki.new_key().public_key(), dns_names=["node-1"],
                             ips=["192.168.0.2", "fd00::2"])
    assert [str(ip) for ip in pki.ip_alt_names(cert)] == ["192.168.0.2", "fd00::2"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(ca.cert)


def test_the_ca_is_a_ca_and_a_leaf_is_not() -> None:
    ca = _authority()
    leaf = pki.issue_client(ca, "someone", [], pki.new_key().public_key())
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_peer_certificate_serves_and_authenticates_for_its_address() -> None:
    ca = _authority()
    cert = pki.issue_peer(ca, "svcnet-1", pki.new_key().public_key(), dns_names=["svcnet-1"], ips=["192.168.0.91"])
    assert [str(ip) for ip in pki.ip_alt_names(cert)] == ["192.168.0.91"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.cert)
