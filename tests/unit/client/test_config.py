"""Kubeconfig, in-cluster and unix-socket configuration."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from svcnet.client.config import (
    UNIX_SOCKET_URL,
    ConfigError,
    in_cluster_config,
    load_kubeconfig,
    parse_kubeconfig,
    unix_socket_config,
)

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(**overrides) -> dict:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "svcnet", "cluster": {"server": "https://127.0.0.1:6443",
                                           "certificate-authority-data": b64(CA)}},
            {"name": "other", "cluster": {"server": "https://10.0.0.1:443/",
                                          "insecure-skip-tls-verify": True,
                                          "tls-server-name": "kubernetes"}},
        ],
        "users": [
            {"name": "admin", "user": {"token": "s3cret"}},
            {"name": "certs", "user": {"client-certificate-data": b64(b"CERT"),
                                       "client-key-data": b64(b"KEY")}},
            {"name": "tokenfile", "user": {"tokenFile": "tok"}},
        ],
        "contexts": [
            {"name": "svcnet", "context": {"cluster": "svcnet", "user": "admin", "namespace": "apps"}},
            {"name": "certs", "context": {"cluster": "other", "user": "certs"}},
            {"name": "tokenfile", "context": {"cluster": "svcnet", "user": "tokenfile"}},
            {"name": "dangling", "context": {"cluster": "missing", "user": "admin"}},
        ],
        "current-context": "svcnet",
    }
    doc.update(overrides)
    return doc


def test_current_context_gives_server_token_ca_and_namespace():
    cfg = parse_kubeconfig(kubeconfig())
    assert (cfg.server, cfg.token, cfg.ca_data, cfg.namespace, cfg.insecure) == (
        "https://127.0.0.1:6443", "s3cret", CA, "apps", False)


def test_named_context_gives_client_certificates_insecure_and_tls_server_name():
    cfg = parse_kubeconfig(kubeconfig(), context="certs")
    assert cfg.server == "https://10.0.0.1:443"  # trailing slash dropped so paths join cleanly
    assert (cfg.client_cert_data, cfg.client_key_data) == (b"CERT", b"KEY")
    assert cfg.insecure is True
    assert cfg.tls_server_name == "kubernetes"
    assert cfg.namespace == "default"
    assert cfg.token is None


def test_token_file_is_resolved_against_the_kubeconfig_directory(tmp_path: Path):
    cfg = parse_kubeconfig(kubeconfig(), context="tokenfile", base_dir=tmp_path)
    assert cfg.token_file == str(tmp_path / "tok")


def test_file_references_are_read_relative_to_the_kubeconfig(tmp_path: Path):
    (tmp_path / "ca.crt").write_bytes(CA)
    doc = kubeconfig()
    doc["clusters"][0]["cluster"] = {"server": "https://h:1", "certificate-authority": "ca.crt"}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    assert load_kubeconfig(path).ca_data == CA


@pytest.mark.parametrize("doc, context, message", [
    (kubeconfig(), "nope", "no context named 'nope'"),
    (kubeconfig(), "dangling", "no cluster named 'missing'"),
    (kubeconfig(**{"current-context": ""}), None, "no current-context"),
    ("just text", None, "not a kubeconfig"),
])
def test_broken_kubeconfigs_raise_config_error_naming_the_problem(doc, context, message):
    with pytest.raises(ConfigError, match=message):
        parse_kubeconfig(doc, context)


def test_invalid_base64_is_a_config_error():
    doc = kubeconfig()
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = "!!not base64!!"
    with pytest.raises(ConfigError, match="certificate-authority-data"):
        parse_kubeconfig(doc)


def test_missing_kubeconfig_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "absent")


def test_svcnet_written_kubeconfig_loads(tmp_path: Path):
    from svcnet.apiserver.credentials import ensure_credentials, write_kubeconfig

    creds = ensure_credentials(tmp_path)
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:7443", creds)
    cfg = load_kubeconfig(path)
    assert cfg.server == "https://127.0.0.1:7443"
    assert cfg.token == creds.token
    assert cfg.ca_data == creds.ca_cert.read_bytes()


def test_in_cluster_config_reads_service_account_files(tmp_path: Path):
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_bytes(CA)
    (tmp_path / "namespace").write_text("kube-system")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = in_cluster_config(env, tmp_path)
    assert (cfg.server, cfg.token_file, cfg.ca_data, cfg.namespace) == (
        "https://10.96.0.1:443", str(tmp_path / "token"), CA, "kube-system")


def test_in_cluster_config_brackets_an_ipv6_host(tmp_path: Path):
    (tmp_path / "token").write_text("tok")
    env = {"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_config(env, tmp_path).server == "https://[fd00:10:96::1]:443"


def test_in_cluster_config_outside_a_cluster_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not running in a cluster"):
        in_cluster_config({}, tmp_path)


def test_unix_socket_config_has_no_token():
    cfg = unix_socket_config("/var/lib/svcnet/apiserver.sock")
    assert (cfg.server, cfg.unix_socket, cfg.token) == (UNIX_SOCKET_URL, "/var/lib/svcnet/apiserver.sock", None)


def test_repr_hides_the_token():
    assert "s3cret" not in repr(parse_kubeconfig(kubeconfig()))
