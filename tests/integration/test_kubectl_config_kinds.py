"""ConfigMaps, Secrets and ServiceAccounts through the real API server with the real kubectl:
the imperative generators (protobuf bodies), get/describe, edit of immutable objects, pruning,
and the default ServiceAccount the controllers give every namespace."""
from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.apiserver_harness import kubectl_available, kubectl_client_minor
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")]

IMMUTABLE = "field is immutable when `immutable` is set"


def _key_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, PEM files, for `kubectl create secret tls`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _editor(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    """A KUBE_EDITOR that replaces `old` with `new` in the file kubectl edit opens, and appends each
    file it was given to edits.log (kubectl reopens a refused edit with the errors as comments)."""
    script = tmp_path / "edit.py"
    script.write_text("import sys, pathlib\n"
                      "p = pathlib.Path(sys.argv[1])\n"
                      "text = p.read_text()\n"
                      f"with open({str(tmp_path / 'edits.log')!r}, 'a') as log:\n"
                      "    log.write(text)\n"
                      f"p.write_text(text.replace({old!r}, {new!r}))\n")
    # kubectl keeps a refused edit in a file under TMPDIR: keep it inside the test's directory
    return {"KUBE_EDITOR": f"{sys.executable} {script}", "TMPDIR": str(tmp_path)}


def test_create_configmap_get_describe_and_edit(apiserver, tmp_path):
    assert "configmap/x created" in apiserver.kubectl("create", "configmap", "x", "--from-literal=a=b").stdout
    cm = apiserver.kubectl_json("get", "configmap", "x")
    assert cm["data"] == {"a": "b"}
    header, row = apiserver.kubectl("get", "cm", "x").stdout.splitlines()
    assert (header.split(), row.split()[:2]) == (["NAME", "DATA", "AGE"], ["x", "1"])
    described = apiserver.kubectl("describe", "configmap", "x").stdout
    assert "Name:         x" in described and "a:\n----\nb" in described

    apiserver.kubectl("edit", "configmap", "x", env=_editor(tmp_path, "a: b", "a: c"))
    assert apiserver.kubectl_json("get", "configmap", "x")["data"] == {"a": "c"}


def test_an_immutable_configmap_refuses_edits_of_its_data(apiserver, tmp_path):
    apiserver.kubectl("create", "configmap", "frozen", "--from-literal=a=b")
    apiserver.kubectl("patch", "configmap", "frozen", "-p", '{"immutable": true}')
    result = apiserver.kubectl("edit", "configmap", "frozen", env=_editor(tmp_path, "a: b", "a: c"),
                               check=False)
    assert result.returncode != 0 and 'configmaps "frozen" is invalid' in result.stderr
    assert f"# * data: Forbidden: {IMMUTABLE}" in (tmp_path / "edits.log").read_text()
    refused = apiserver.kubectl("patch", "configmap", "frozen", "-p", '{"immutable": false}', check=False)
    assert refused.returncode != 0 and f"immutable: Forbidden: {IMMUTABLE}" in refused.stderr
    kept = apiserver.kubectl_json("get", "configmap", "frozen")
    assert (kept["data"], kept["immutable"]) == ({"a": "b"}, True)
    # metadata still changes
    apiserver.kubectl("label", "configmap", "frozen", "team=a")
    assert apiserver.kubectl_json("get", "configmap", "frozen")["metadata"]["labels"] == {"team": "a"}


def test_create_secret_generic_keeps_data_base64_and_string_data_is_never_returned(apiserver, tmp_path):
    created = apiserver.kubectl("create", "secret", "generic", "creds", "--from-literal=user=admin")
    assert "secret/creds created" in created.stdout
    secret = apiserver.kubectl_json("get", "secret", "creds")
    assert (secret["type"], secret["data"]) == ("Opaque", {"user": base64.b64encode(b"admin").decode()})

    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mixed"},
                "data": {"a": base64.b64encode(b"old").decode()}, "stringData": {"a": "new", "b": "two"}}
    apiserver.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    stored = apiserver.kubectl_json("get", "secret", "mixed")
    assert "stringData" not in stored
    assert {k: base64.b64decode(v) for k, v in stored["data"].items()} == {"a": b"new", "b": b"two"}

    described = apiserver.kubectl("describe", "secret", "creds").stdout
    assert "Type:  Opaque" in described and "user:  5 bytes" in described
    assert "admin" not in described

    root = base64.b64encode(b"root").decode()
    apiserver.kubectl("edit", "secret", "creds", env=_editor(tmp_path, secret["data"]["user"], root))
    assert apiserver.kubectl_json("get", "secret", "creds")["data"] == {"user": root}


def test_create_secret_tls_and_docker_registry_and_the_types_required_keys(apiserver, tmp_path):
    cert, key = _key_pair(tmp_path)
    apiserver.kubectl("create", "secret", "tls", "web-tls", "--cert", str(cert), "--key", str(key))
    tls = apiserver.kubectl_json("get", "secret", "web-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]) == cert.read_bytes()
    apiserver.kubectl("create", "secret", "docker-registry", "pull", "--docker-server=registry.example",
                      "--docker-username=u", "--docker-password=p")
    assert apiserver.kubectl_json("get", "secret", "pull")["type"] == "kubernetes.io/dockerconfigjson"
    table = apiserver.kubectl("get", "secrets").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert {tuple(line.split()[:3]) for line in table[1:]} == {
        ("pull", "kubernetes.io/dockerconfigjson", "1"), ("web-tls", "kubernetes.io/tls", "2")}

    missing_key = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half"},
                   "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}}
    refused = apiserver.kubectl("create", "-f", "-", input=json.dumps(missing_key), check=False)
    assert refused.returncode != 0
    assert 'Secret "half" is invalid: data[tls.key]: Required value' in refused.stderr
    retyped = apiserver.kubectl("patch", "secret", "pull", "-p", '{"type": "Opaque"}', check=False)
    assert retyped.returncode != 0 and 'type: Invalid value: "Opaque": field is immutable' in retyped.stderr


def test_an_immutable_secret_refuses_new_data(apiserver):
    apiserver.kubectl("create", "secret", "generic", "sealed", "--from-literal=k=v")
    apiserver.kubectl("patch", "secret", "sealed", "-p", '{"immutable": true}')
    refused = apiserver.kubectl("patch", "secret", "sealed", "-p", '{"stringData": {"k": "w"}}', check=False)
    assert refused.returncode != 0 and f"data: Forbidden: {IMMUTABLE}" in refused.stderr
    assert base64.b64decode(apiserver.kubectl_json("get", "secret", "sealed")["data"]["k"]) == b"v"


def test_create_serviceaccount_get_describe_and_edit(apiserver, tmp_path):
    assert "serviceaccount/bot created" in apiserver.kubectl("create", "serviceaccount", "bot").stdout
    apiserver.kubectl("patch", "serviceaccount", "bot", "-p",
                      '{"imagePullSecrets": [{"name": "pull"}], "automountServiceAccountToken": false}')
    sa = apiserver.kubectl_json("get", "serviceaccount", "bot")
    assert (sa["imagePullSecrets"], sa["automountServiceAccountToken"]) == ([{"name": "pull"}], False)
    assert apiserver.kubectl("get", "sa", "bot").stdout.splitlines()[0].split() == ["NAME", "SECRETS", "AGE"]
    # describe lists the token secrets (annotated with the account's name and uid) through a
    # `type` field selector on secrets
    token = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": {"name": "bot-token", "annotations": {
                 "kubernetes.io/service-account.name": "bot",
                 "kubernetes.io/service-account.uid": sa["metadata"]["uid"]}}}
    apiserver.kubectl("create", "-f", "-", input=json.dumps(token))
    described = apiserver.kubectl("describe", "serviceaccount", "bot").stdout
    assert "Image pull secrets:  pull" in described
    if kubectl_client_minor() <= 32:  # newer kubectl no longer lists legacy token Secrets
        assert "Tokens:              bot-token" in described
    apiserver.kubectl("edit", "serviceaccount", "bot", env=_editor(
        tmp_path, "automountServiceAccountToken: false", "automountServiceAccountToken: true"))
    assert apiserver.kubectl_json("get", "serviceaccount", "bot")["automountServiceAccountToken"] is True
    tokens = apiserver.kubectl("get", "secrets", "--field-selector", "type=kubernetes.io/service-account-token",
                               "-o", "name").stdout.split()
    assert tokens == ["secret/bot-token"]


def test_apply_prune_deletes_labelled_configmaps_and_secrets_left_out(apiserver):
    def manifest(*names: str) -> str:
        docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"app": "x"}},
                 "data": {"k": n}} for n in names if n != "s"]
        if "s" in names:
            docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"app": "x"}},
                         "stringData": {"k": "v"}})
        return yaml.safe_dump_all(docs)

    allow = ["--prune-allowlist=core/v1/ConfigMap", "--prune-allowlist=core/v1/Secret"]
    apiserver.kubectl("apply", "--prune", "-l", "app=x", *allow, "-f", "-", input=manifest("a", "b", "s"))
    apiserver.kubectl("create", "configmap", "unlabelled", "--from-literal=k=v")
    pruned = apiserver.kubectl("apply", "--prune", "-l", "app=x", *allow, "-f", "-", input=manifest("a"))
    assert "configmap/b pruned" in pruned.stdout and "secret/s pruned" in pruned.stdout
    names = {cm["metadata"]["name"] for cm in apiserver.kubectl_json("get", "configmaps")["items"]}
    assert {"a", "unlabelled"} <= names and "b" not in names


def test_a_new_namespace_gets_a_default_serviceaccount_and_gets_it_back(control_plane):
    control_plane.kubectl("create", "namespace", "team-a")

    def default_uid() -> str | None:
        result = control_plane.kubectl("get", "serviceaccount", "default", "-n", "team-a", "-o", "json",
                                       check=False)
        return json.loads(result.stdout)["metadata"]["uid"] if result.returncode == 0 else None

    first = wait_for(default_uid, timeout=60, what="team-a/default")
    control_plane.kubectl("delete", "serviceaccount", "default", "-n", "team-a")
    wait_for(lambda: default_uid() not in (None, first), timeout=60, what="a new team-a/default")

    # the namespace still goes away with its contents: nothing recreates them while it terminates
    control_plane.kubectl("create", "configmap", "cfg", "-n", "team-a", "--from-literal=a=b")
    control_plane.kubectl("create", "secret", "generic", "s", "-n", "team-a", "--from-literal=a=b")
    control_plane.kubectl("delete", "namespace", "team-a", "--wait=false")
    wait_for(lambda: 'namespaces "team-a" not found' in control_plane.kubectl(
        "get", "namespace", "team-a", check=False).stderr, timeout=60, what="team-a deleted")
