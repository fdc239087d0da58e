"""`svcnet up`'s cluster DNS objects are kubeadm's CoreDNS addon, and `svcnet dns` finds its API server
as CoreDNS does in a pod (the mounted service-account token), else through a data dir."""
from __future__ import annotations

from pathlib import Path

from svcnet.cluster import addons
from svcnet.dns.daemon import build_parser, client_config
from svcnet.dns.plugins import load
from tests.unit.dns.test_corefile import KUBEADM


def by_kind() -> dict[str, dict]:
    return {o["kind"]: o for o in addons.kube_dns_objects()}


def test_the_configmap_holds_kubeadms_default_corefile_verbatim(tmp_path: Path) -> None:
    cm = by_kind()["ConfigMap"]
    assert (cm["metadata"]["namespace"], cm["metadata"]["name"]) == ("kube-system", "coredns")
    assert cm["data"] == {"Corefile": KUBEADM}  # the text the Corefile case tables run
    assert "kubernetes example.test in-addr.arpa" in addons.kubeadm_corefile("example.test")
    load(cm["data"]["Corefile"], read_file=lambda _: "nameserver 192.0.2.53\n")  # sets up without error


def test_coredns_gets_kubeadms_service_account_cluster_role_and_binding(tmp_path: Path) -> None:
    objs = by_kind()
    assert objs["ServiceAccount"]["metadata"] == {"name": "coredns", "namespace": "kube-system"}
    role = objs["ClusterRole"]
    assert role["metadata"]["name"] == "system:coredns"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]
    binding = objs["ClusterRoleBinding"]
    assert binding["metadata"]["name"] == "system:coredns"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "system:coredns"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]


def test_the_deployment_runs_as_coredns_and_reads_the_configmap_mounted_as_kubeadms_does() -> None:
    objs = addons.kube_dns_objects()
    kinds = [o["kind"] for o in objs]
    assert kinds.index("ConfigMap") < kinds.index("Deployment")  # the pods' first mount finds it
    spec = by_kind()["Deployment"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "coredns" and spec["dnsPolicy"] == "Default"
    assert spec["volumes"] == [{"name": "config-volume", "configMap": {
        "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}]
    [container] = spec["containers"]
    assert container["volumeMounts"] == [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}]
    args = build_parser().parse_args(container["args"])
    # No --data-dir or --kubeconfig: the in-cluster config, as the coredns ServiceAccount.
    assert (args.corefile, args.corefile_configmap, args.data_dir, args.kubeconfig) == (
        "/etc/coredns/Corefile", None, None, None)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # kubeadm's probes on the health (:8080) and ready (:8181) plugins' addresses of its Corefile.
    assert ports["liveness-probe"] == 8080 and container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert ports["readiness-probe"] == 8181 and container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["port"] == "readiness-probe"


def account(tmp_path: Path, token: bool = True) -> Path:
    tmp_path.mkdir(exist_ok=True)
    if token:
        (tmp_path / "token").write_text("a-token\n")
        (tmp_path / "ca.crt").write_bytes(b"CA")
        (tmp_path / "namespace").write_text("kube-system")
    return tmp_path


POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_a_pod_with_a_token_dns_uses_the_in_cluster_config(tmp_path: Path) -> None:
    config = client_config(None, None, POD_ENV, account(tmp_path / "sa"))
    assert config.server == "https://10.96.0.1:443"
    assert config.token_file == str(tmp_path / "sa" / "token") and config.ca_data == b"CA"


def test_without_a_mounted_token_or_with_a_data_dir_dns_uses_the_data_dirs_socket(tmp_path: Path) -> None:
    # KUBERNETES_SERVICE_HOST alone (pods get it before their token is mounted) is not enough.
    no_token = client_config(None, None, POD_ENV, account(tmp_path / "none", token=False))
    assert no_token.unix_socket is not None and no_token.unix_socket.endswith("apiserver.sock")
    data_dir = client_config(None, str(tmp_path), POD_ENV, account(tmp_path / "sa"))
    assert data_dir.unix_socket == str(tmp_path / "apiserver.sock") and data_dir.token_file is None
    outside = client_config(None, None, {}, account(tmp_path / "sa"))
    assert outside.unix_socket == no_token.unix_socket
