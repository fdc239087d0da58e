"""`svcnet token create|list` and `svcnet node join`: a node on another machine gets its own identity
from a bootstrap token, as `kubeadm token create` and `kubeadm join` (with kubelet's TLS
bootstrap) do it, instead of a copy of the admin credential.

Join, step by step:
1. discovery (kubeadm's token discovery): read kube-public/cluster-info anonymously over TLS not
   yet verified, and trust it only if its `jws-kubeconfig-<token id>` signature is the token's
   (proof that whoever answered knows the token) and, with --ca-cert-hash, if the CA's public key
   hashes to one given; then read it again over TLS verified with that CA and require the same;
2. TLS bootstrap: a fresh ECDSA key (written 0600 first), a CertificateSigningRequest for
   CN=system:node:<name>, O=system:nodes to kubernetes.io/kube-apiserver-client-kubelet, made
   with the token (system:bootstrap:<id>); the controllers approve and sign it;
3. the node's kubeconfig (0600) with that certificate; the node's agent and proxy run with it.

Every connection goes to --server; cluster-info supplies only the CA (its server field names the
address the cluster advertises, which the operator already typed or chose not to).
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.credentials import component_kubeconfig_text, write_secret
from svcnet.client.config import ClientConfig
from svcnet.client.rest import ApiClient, TransportError
from svcnet.cluster.identities import (
    OVERLAY,
    OVERLAY_NAMESPACE,
    OVERLAY_SERVICE_ACCOUNT,
    kubeconfig_path,
    kubelet_kubeconfig,
)
from svcnet.core import bootstraptoken, csr, pki

SECRETS = lookup("", "v1", "secrets")
CONFIGMAPS = lookup("", "v1", "configmaps")
CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
CLUSTER_INFO_PATH = (f"/api/v1/namespaces/{bootstraptoken.CLUSTER_INFO_NAMESPACE}/configmaps/"
                     f"{bootstraptoken.CLUSTER_INFO}")


class JoinError(Exception):
    """Why a join cannot go on, in words for the operator."""


# ------------------------------------------------------------------ svcnet token
async def create_token(api: Any, ttl: dt.timedelta | None, description: str = "",
                       groups: tuple[str, ...] = (bootstraptoken.KUBEADM_NODE_GROUP,)) -> bootstraptoken.Token:
    token = bootstraptoken.generate()
    body = bootstraptoken.secret_body(token, dt.datetime.now(dt.UTC), ttl, groups, description)
    await api.create(SECRETS, bootstraptoken.NAMESPACE, body)
    return token


async def join_command(api: Any, token: bootstraptoken.Token) -> str:
    """The command that joins a node with token, as `kubeadm token create --print-join-command`."""
    info = await api.get(CONFIGMAPS, bootstraptoken.CLUSTER_INFO_NAMESPACE, bootstraptoken.CLUSTER_INFO)
    server, ca_pem = _cluster_of((info.get("data") or {}).get(bootstraptoken.KUBECONFIG_KEY, ""))
    return f"svcnet node join --server {server} --token {token} --ca-cert-hash {ca_hash(ca_pem)}"


def ca_hash(ca_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bootstraptoken.ca_cert_hash(spki)


def token_rows(secrets: list[dict[str, Any]], now: dt.datetime) -> list[list[str]]:
    """`kubeadm token list`'s columns: TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS."""
    rows = []
    for secret in secrets:
        token = bootstraptoken.token_of_secret(secret)
        if token is None:
            continue
        try:
            expires = bootstraptoken.expiration(secret)
        except bootstraptoken.TokenError:
            expires = now
        ttl = "<forever>" if expires is None else _duration(expires - now)
        usages = ",".join(sorted(k[len("usage-bootstrap-"):] for k in (secret.get("data") or {})
                                 if k.startswith("usage-bootstrap-")
                                 and bootstraptoken.secret_data(secret, k) == "true"))
        rows.append([str(token), ttl, "<never>" if expires is None else expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     usages, bootstraptoken.secret_data(secret, bootstraptoken.DESCRIPTION_KEY) or "<none>",
                     bootstraptoken.secret_data(secret, bootstraptoken.EXTRA_GROUPS_KEY)])
    return rows


def token_table(secrets: list[dict[str, Any]], now: dt.datetime) -> str:
    header = ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]
    rows = [header, *token_rows(secrets, now)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in rows)


async def delete_token(api: Any, token_or_id: str) -> None:
    """kubeadm token delete: by the whole token or its id; JoinError for neither."""
    token_id = token_or_id.split(".")[0] if bootstraptoken.parse(token_or_id) else token_or_id
    if not re.fullmatch(r"[a-z0-9]{6}", token_id):
        raise JoinError(f"given token or token ID {token_or_id[:40]!r} didn't match pattern "
                        f"[a-z0-9]{{6}} or [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    await api.delete(SECRETS, bootstraptoken.NAMESPACE, bootstraptoken.secret_name(token_id))


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "<invalid>"
    return f"{seconds // 3600}h" if seconds >= 3600 else f"{seconds // 60}m"


# ------------------------------------------------------------------ discovery
def _cluster_of(kubeconfig: str) -> tuple[str, bytes]:
    try:
        doc = yaml.safe_load(kubeconfig)
        cluster = doc["clusters"][0]["cluster"]
        return str(cluster["server"]), base64.b64decode(cluster["certificate-authority-data"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise JoinError(f"the cluster-info ConfigMap holds no usable kubeconfig: {exc}") from None


# cluster-info is read before the server is trusted: its size is bounded (the API's own object
# limit) and so is the time it may take.
MAX_CLUSTER_INFO_BYTES = 1_572_864
DISCOVERY_TIMEOUT = 30.0


async def _cluster_info(server: str, ca_pem: bytes | None) -> dict[str, str]:
    """cluster-info's data, read anonymously (over TLS verified with ca_pem, or not at all)."""
    import ssl

    import aiohttp

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=ca_pem.decode())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DISCOVERY_TIMEOUT)) as session, \
                session.get(server.rstrip("/") + CLUSTER_INFO_PATH, ssl=ctx) as resp:
            raw = await resp.content.read(MAX_CLUSTER_INFO_BYTES + 1)
            status = resp.status
    except aiohttp.ClientConnectorError as exc:
        raise JoinError(f"cannot reach {server}: {exc.os_error.strerror or exc.os_error}") from None
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        raise JoinError(f"cannot read the cluster-info ConfigMap from {server}: {exc or type(exc).__name__}") from None
    if len(raw) > MAX_CLUSTER_INFO_BYTES:
        raise JoinError(f"the cluster-info ConfigMap from {server} is larger than {MAX_CLUSTER_INFO_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict):
        message = doc.get("message") if isinstance(doc, dict) else f"HTTP {status}"
        raise JoinError(f"cannot read the cluster-info ConfigMap from {server}: {message}")
    data = doc.get("data")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


async def discover(server: str, token: bootstraptoken.Token, ca_hashes: tuple[str, ...],
                   unsafe_skip_ca_verification: bool = False) -> bytes:
    """The cluster CA (PEM), trusted as kubeadm's token discovery trusts it."""
    if not ca_hashes and not unsafe_skip_ca_verification:
        raise JoinError("give --ca-cert-hash (printed by `svcnet token create`), or "
                        "--discovery-token-unsafe-skip-ca-verification to trust the token's signature alone")
    data = await _cluster_info(server, None)
    kubeconfig = data.get(bootstraptoken.KUBECONFIG_KEY, "")
    signature = data.get(bootstraptoken.JWS_PREFIX + token.id)
    if signature is None:
        raise JoinError(f"there is no JWS signed token in the cluster-info ConfigMap for token ID {token.id!r}: "
                        f"the token is unknown or expired (create one with `svcnet token create`)")
    if not bootstraptoken.signature_valid(signature, kubeconfig, token):
        raise JoinError(f"failed to verify JWS signature of received cluster info object for token {token.id!r}")
    _, ca_pem = _cluster_of(kubeconfig)
    if ca_hashes and ca_hash(ca_pem) not in ca_hashes:
        raise JoinError(f"cluster CA found in cluster-info ConfigMap is not trusted: its public key hash is "
                        f"{ca_hash(ca_pem)}, not one given with --ca-cert-hash")
    again = await _cluster_info(server, ca_pem)
    if again.get(bootstraptoken.KUBECONFIG_KEY) != kubeconfig:
        raise JoinError("cluster-info read over the verified connection differs from the one first read")
    return ca_pem


# ------------------------------------------------------------------ TLS bootstrap
async def request_certificate(server: str, ca_pem: bytes, token: bootstraptoken.Token, node: str, key_path: Path,
                              timeout: float = 120.0) -> tuple[bytes, bytes, str]:
    """(certificate PEM, key PEM, CSR name): the key written 0600 before the CSR is sent."""
    key = pki.new_key()
    key_pem = pki.key_pem(key)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_path.parent, 0o700)
    write_secret(key_path, key_pem)
    request_pem = csr.new_request_pem(key, node)
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": csr.KUBELET_CLIENT_SIGNER,
                     "usages": ["digital signature", "client auth"]}}
    config = ClientConfig(server=server, ca_data=ca_pem, token=str(token))
    async with ApiClient(config, component="svcnet-join") as api:
        try:
            created = await api.create(CSRS, None, body)
        except ApiError as exc:
            raise JoinError(f"the API server refused the certificate signing request: {exc.message}") from None
        except TransportError as exc:
            raise JoinError(f"cannot reach {server}: {exc}") from None
        name = created["metadata"]["name"]
        return await _wait_issued(api, name, timeout), key_pem, name


async def _wait_issued(api: ApiClient, name: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            obj = await api.get(CSRS, None, name)
        except (ApiError, TransportError):  # a restarting API server: ask again
            await asyncio.sleep(0.5)
            continue
        if csr.has_condition(obj, "Denied") or csr.has_condition(obj, "Failed"):
            reasons = "; ".join(f"{c.get('type')}: {c.get('message', '')}" for c in csr.conditions(obj))
            raise JoinError(f"certificate signing request {name} was not issued: {reasons}")
        certificate = (obj.get("status") or {}).get("certificate")
        if certificate:
            return base64.b64decode(certificate)
        await asyncio.sleep(0.5)
    raise JoinError(f"certificate signing request {name} was not approved and issued within {timeout:g}s "
                    f"(approve it with: kubectl certificate approve {name})")


def write_node_kubeconfigs(data_dir: Path, server: str, ca_pem: bytes, node: str, cert_pem: bytes,
                           key_pem: bytes) -> Path:
    """The node's kubeconfig (kubelet.conf) and, with the same identity, its proxy's."""
    user = csr.NODE_PREFIX + node
    text = component_kubeconfig_text(server, ca_pem, user, cert_pem, key_pem).encode()
    path = kubelet_kubeconfig(data_dir, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, text)
    write_secret(kubeconfig_path(data_dir, "kube-proxy"), text)
    return path


async def bootstrap_identity(server: str, token_text: str, ca_hashes: tuple[str, ...], node: str,
                             data_dir: Path, unsafe_skip_ca_verification: bool = False) -> Path:
    if not server.startswith("https://") or len(server) > 2048:
        raise JoinError(f"--server must be the API server's https:// URL, got {server[:100]!r}")
    from svcnet.api.selectors import dns1123_subdomain_errors

    problems = dns1123_subdomain_errors(node)
    if problems:
        raise JoinError(f"--name {node[:300]!r}: {problems[0]}")
    token = bootstraptoken.parse(token_text)
    if token is None:
        raise JoinError("--token must be of the form [a-z0-9]{6}.[a-z0-9]{16}")
    current = kubelet_kubeconfig(data_dir, node)
    if identity_current(current, server, node, dt.datetime.now(dt.UTC)):
        # As kubelet with a kubeconfig already bootstrapped: the token is not needed (nor used) again.
        progress(f"{current} already holds a current identity for {csr.NODE_PREFIX}{node}; not bootstrapping")
        return current
    ca_pem = await discover(server, token, ca_hashes, unsafe_skip_ca_verification)
    progress(f"trusted the cluster CA of {server} ({ca_hash(ca_pem)})")
    cert_pem, key_pem, name = await request_certificate(server, ca_pem, token, node,
                                                        data_dir / "pki" / "kubelet-client.key")
    progress(f"certificate signing request {name} approved and issued for {csr.NODE_PREFIX}{node}")
    # The cluster CA, as kubelet's --client-ca-file: its API verifies the API server's client certificate.
    (data_dir / "pki" / "ca.crt").write_bytes(ca_pem)
    return write_node_kubeconfigs(data_dir, server, ca_pem, node, cert_pem, key_pem)


MAX_TOKEN_BYTES = 16384


def write_overlay_kubeconfig(data_dir: Path, server: str, token_file: Path) -> Path:
    """kubeconfigs/flannel.conf: the overlay's identity on this node, a ServiceAccount token of
    kube-flannel/flannel (`kubectl create token -n kube-flannel flannel`), as flanneld run outside the
    cluster is given a kubeconfig (--kubeconfig-file) instead of its pod's mounted token."""
    try:
        raw = token_file.read_bytes()[:MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise JoinError(f"--overlay-token-file {token_file}: {exc.strerror or exc}") from None
    token = raw.decode(errors="replace").strip()
    if len(raw) > MAX_TOKEN_BYTES or not re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token):
        raise JoinError(f"--overlay-token-file {token_file}: not a ServiceAccount token (a JWT; make one with "
                        f"`kubectl create token -n {OVERLAY_NAMESPACE} {OVERLAY_SERVICE_ACCOUNT}`)")
    try:
        ca_pem = (data_dir / "pki" / "ca.crt").read_bytes()
    except OSError:
        raise JoinError(f"{data_dir / 'pki' / 'ca.crt'} is missing: join again with a token") from None
    user = f"system:serviceaccount:{OVERLAY_NAMESPACE}:{OVERLAY_SERVICE_ACCOUNT}"
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "svcnet", "cluster": {
               "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
           "users": [{"name": user, "user": {"token": token}}],
           "contexts": [{"name": "flannel", "context": {"cluster": "svcnet", "user": user}}],
           "current-context": "flannel", "preferences": {}}
    path = kubeconfig_path(data_dir, OVERLAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path


def identity_current(path: Path, server: str, node: str, now: dt.datetime) -> bool:
    """Whether path is this node's kubeconfig for server with a certificate valid for at least
    another day (kubelet bootstraps only when its kubeconfig is missing or expired)."""
    try:
        doc = yaml.safe_load(path.read_text())
        cluster = doc["clusters"][0]["cluster"]
        pem = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        return False
    return (cluster.get("server") == server and pki.identity(cert) == (csr.NODE_PREFIX + node, (csr.NODES_GROUP,))
            and cert.not_valid_after_utc > now + dt.timedelta(days=1))


def progress(message: str) -> None:
    print(f"svcnet: {message}", flush=True)


def error(message: str) -> int:
    print(f"svcnet: {message}", file=sys.stderr)
    return 1



# ------------------------------------------------------------------ the joined node, simulated on this machine
JOINED_DIR = "joined"  # in the cluster's data dir: DATA_DIR/joined/<node> names a joined node's data dir


class SimulatedHost:
    """One-machine stand-in for "another machine": the next node namespace on the LAN of the
    `svcnet up` cluster in lan_of (host `host` of a several-host cluster; 0: round-robin), planned
    by the same topology code as `up`'s nodes. On one LAN the other nodes get routes to its pod CIDR
    (host-gw); across hosts the overlay carries its pods' traffic and only its own namespace and its
    port on its host's LAN are made here. Only cluster.json is read in lan_of; the node records its
    data dir in lan_of/joined/ so that `svcnet down` of the cluster stops it first."""

    def __init__(self, lan_of: Path, data_dir: Path, host: int = 0) -> None:
        from svcnet.cluster.spec import load_cluster_spec

        spec = load_cluster_spec(lan_of)
        if spec is None:
            raise JoinError(f"--lan-of {lan_of}: no svcnet up cluster there ({lan_of / 'cluster.json'} is missing)")
        if host and not 1 <= host <= spec.hosts:
            raise JoinError(f"--host {host}: the cluster in {lan_of} has host{'s 1-' if spec.hosts > 1 else ' '}"
                            f"{spec.hosts}")
        self.lan_of = lan_of
        self.data_dir = data_dir
        earlier = load_cluster_spec(data_dir)  # a restart keeps the node it was
        if earlier is not None and earlier.cluster_id == spec.cluster_id:
            self.spec = earlier
        else:
            index = self._next_index(spec)
            placements = spec.placements + (((index, host),) if host else ())
            self.spec = replace(spec, nodes=index, lb_pool=None, placements=placements)
        self.node = self.spec.plan().nodes[-1]
        if host and self.node.host != host:
            raise JoinError(f"{data_dir} holds {self.node.name}, on host {self.node.host}, not {host}: "
                            f"give another --data-dir for a node on host {host}")

    @staticmethod
    def _next_index(spec: Any) -> int:
        from svcnet.cluster.topology import cluster_prefix
        from svcnet.kernel.links import LinuxNetworkKernel

        prefix = cluster_prefix(spec.cluster_id) + "node-"
        taken = [int(n[len(prefix):]) for n in LinuxNetworkKernel().list_namespaces()
                 if n.startswith(prefix) and n[len(prefix):].isdigit()]
        return max([spec.nodes, *taken]) + 1

    def network(self) -> tuple[Any, ...]:
        """What to converge: on one LAN the whole plan (every node routes to the new pod CIDR); across
        hosts the node's namespace and its port on its host's LAN, nothing of the other nodes (whose
        placement this data dir does not know) and no pod route (the overlay's)."""
        plan = self.spec.plan()
        if plan.router_namespace is None:
            return plan.namespaces
        lan = plan.hosts[self.node.host - 1].lan_namespace
        own = []
        for ns in plan.namespaces:
            if ns.name == self.node.namespace:
                own.append(ns)
            elif ns.name == lan:
                own.append(replace(ns, links=tuple(link for link in ns.links
                                                   if link.kind != "veth" or link.name == self.node.name)))
        return tuple(own)

    @property
    def record(self) -> Path:
        return self.lan_of / JOINED_DIR / self.node.name

    async def start(self) -> None:
        from svcnet.cluster.spec import save_cluster_spec
        from svcnet.kernel.converge import converge
        from svcnet.kernel.links import LinuxNetworkKernel

        save_cluster_spec(self.data_dir, self.spec)
        self.record.parent.mkdir(exist_ok=True)
        self.record.write_text(f"{self.data_dir.resolve()}\n")
        await asyncio.to_thread(converge, LinuxNetworkKernel(), self.network())
        where = f" on host {self.node.host} ({self.node.lan_cidrs[0]})" if self.node.overlay else ""
        progress(f"{self.node.name}: namespace {self.node.namespace}, IP {self.node.ipv4}{where}, "
                 f"pod CIDR {self.node.pod_cidr_v4}")

    async def stop(self) -> None:
        from svcnet.cluster.lifecycle import stop_all_pods
        from svcnet.kernel.links import LinuxNetworkKernel

        pods = await stop_all_pods(self.data_dir)
        if pods:
            progress(f"stopped {pods} pod(s) of {self.node.name}")
        await asyncio.to_thread(LinuxNetworkKernel().delete_namespace, self.node.namespace)
        progress(f"removed {self.node.namespace}")
        self.record.unlink(missing_ok=True)


def _is_join_process(pid: int, data_dir: Path) -> bool:
    """Whether pid runs `svcnet node join` with this --data-dir."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = {str(data_dir).encode(), str(data_dir.resolve()).encode()}
    return b"join" in argv and any(a in wanted for a in argv)


async def stop_joined_nodes(cluster_data_dir: Path, timeout: float = 60.0) -> list[str]:
    """`svcnet down`'s first step: end every `node join --lan-of` of the cluster (SIGTERM to the join
    process, whose pid lock names it; it stops its agent, proxy and pods and removes its namespace,
    as on Ctrl-C), then SIGKILL what is left after timeout. Returns the nodes stopped."""
    import contextlib
    import signal

    from svcnet.cluster.lifecycle import stop_all_pods
    from svcnet.cluster.supervisor import stop_agent_processes
    from svcnet.kernel import process

    records = cluster_data_dir / JOINED_DIR
    found: list[tuple[str, Path, int | None]] = []
    for record in sorted(records.iterdir()) if records.is_dir() else []:
        node_dir = Path(record.read_text().strip()[:4096])
        pid = process.read_pid(node_dir / "svcnet.pid")
        if pid and process.is_locked(node_dir / "svcnet.pid") and _is_join_process(pid, node_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            found.append((record.name, node_dir, pid))
        else:
            found.append((record.name, node_dir, None))
    deadline = time.monotonic() + timeout
    for name, node_dir, pid in found:
        while pid and _is_join_process(pid, node_dir) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if pid and _is_join_process(pid, node_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # a join killed, or gone without stopping them: its agent, proxy and pods by their pid files
        await asyncio.to_thread(stop_agent_processes, node_dir)
        await stop_all_pods(node_dir)
        (records / name).unlink(missing_ok=True)
    return [name for name, _, _ in found]


def _serving_certificate_current(data_dir: Path, node: Any) -> bool:
    from svcnet.agent.servingcert import current_certificate
    from svcnet.cluster.spec import runtime_root

    try:
        ca_pem = (data_dir / "pki" / "ca.crt").read_bytes()
    except OSError:
        return False
    return current_certificate(runtime_root(data_dir, node.name) / "pki", ca_pem, node.name, node.addresses,
                               dt.datetime.now(dt.UTC)) is not None


def run_joined_node(data_dir: Path, host: SimulatedHost) -> int:
    """The node's agent and proxy (the supervisor `svcnet up` uses), until a signal."""
    from svcnet.cluster.supervisor import AgentSupervisor
    from svcnet.kernel import process

    lock = process.PidLock(data_dir / "svcnet.pid")
    try:
        lock.acquire()
    except process.AlreadyRunning as exc:
        return error(f"{exc}: a node already runs from {data_dir}")
    try:
        stages = [host, AgentSupervisor(data_dir, host.spec, only=(host.node.name,))]
        # As upstream, nobody approves a kubelet serving certificate but an admin: until then the node
        # runs pods, and `kubectl logs/exec` cannot reach them.
        ready = f"svcnet: {host.node.name} joined; stop it with Ctrl-C"
        if not _serving_certificate_current(data_dir, host.node):
            ready += (f"\nsvcnet: its kubelet API waits for its serving certificate: on the control plane, "
                      f"`kubectl get csr` shows a Pending kubernetes.io/kubelet-serving request by "
                      f"{csr.NODE_PREFIX}{host.node.name}; approve it with kubectl certificate approve NAME")
        return asyncio.run(process.run(stages, ready))
    finally:
        lock.release()
