"""`svcnet agent --node NAME`: the node agent process (kubelet), one per node.

The caller (svcnet.cli, from the cluster's data dir) says which node this is
(its `NodePlan`) and where its state lives (`AgentConfig`); `run` holds the
node's pid lock and runs the agent until a signal. Pods keep running when it
stops: the next agent adopts them.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

from svcnet.agent.kubelet import AgentConfig, NodeAgent
from svcnet.agent.kubeletapi import KUBELET_PORT
from svcnet.agent.kubeletauth import WebhookAuth
from svcnet.agent.kubeletserver import KubeletApi, KubeletServer, ensure_serving_certificate, server_tls
from svcnet.agent.nodeplan import NodePlan
from svcnet.agent.overlay import Overlay
from svcnet.agent.podaccess import PodFiles
from svcnet.agent.servingcert import request_serving_certificate
from svcnet.agent.speaker import Speaker
from svcnet.client.rest import ApiClient
from svcnet.kernel import process
from svcnet.kernel.links import LinuxNetworkKernel
from svcnet.kernel.netns import listen_tcp_in_netns
from svcnet.runtime.containers import Runtime
from svcnet.runtime.forkserver import ForkServer
from svcnet.runtime.sandbox import PODS_DIR

log = logging.getLogger("svcnet.agent")


def read_node_resolv_conf(path: str | None = None) -> str:
    """The resolv.conf pods with dnsPolicy Default get: `path` (kubelet's --resolv-conf) when given, else
    the host's, with systemd-resolved's real one when /etc has the stub."""
    if path:
        try:
            return Path(path).read_text()
        except OSError as exc:  # as kubelet: pods still start, with no node nameservers
            log.warning("cannot read --resolv-conf %s: %s", path, exc)
            return ""
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""
    stub = all(line.split()[1].startswith("127.") for line in text.splitlines()
               if line.startswith("nameserver") and len(line.split()) > 1)
    if stub and "nameserver" in text and Path("/run/systemd/resolve/resolv.conf").exists():
        return Path("/run/systemd/resolve/resolv.conf").read_text()
    return text


class AgentProcess:
    """`svcnet agent --node NAME`: the agent as a supervisor component (one per process)."""

    def __init__(self, client_config: Any, node: NodePlan, config: AgentConfig, pki_dir: Path | None = None,
                 speaker_config: Any = None, overlay_config: Any = None) -> None:
        """pki_dir: the cluster CA's directory; with it the agent serves the kubelet API on the node's
        address (port 10250), with a serving certificate from that CA: issued here when the directory
        holds the CA's key (a node `svcnet up` runs), else asked for with a kubelet-serving CSR (a
        joined node: the API starts once an admin approved it and the signer issued it). speaker_config: the LoadBalancer
        speaker's client config; with it the node answers ARP for the LoadBalancer addresses it is
        elected for (in this process, so that the node stops announcing when its agent goes away)."""
        self.client_config = client_config
        self.speaker = Speaker(speaker_config, node.name, node.namespace) if speaker_config is not None else None
        self.node = node
        self.config = config
        self.pki_dir = pki_dir
        self.server: KubeletServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self.api: Any = None
        self.agent: NodeAgent | None = None
        self.kernel: LinuxNetworkKernel | None = None
        self.forkserver: ForkServer | None = None
        self.overlay: Overlay | None = None
        self.overlay_config = overlay_config
        self.overlay_api: Any = None

    async def start(self) -> None:
        self.api = ApiClient(self.client_config, component=f"kubelet/{self.node.name}")
        await self.api.open()
        # One netlink socket per namespace, reused (closed with the namespace, and at stop).
        self.kernel = LinuxNetworkKernel(reuse_sockets=True)
        # Sandboxes and shims are forks of one interpreter that has their modules loaded (see
        # runtime/forkserver.py), not a new interpreter each; it ends when this process does.
        self.forkserver = ForkServer(self.config.python)
        try:
            self.forkserver.start()  # now, so its imports are done before the first pod
        except OSError as exc:  # each start tries again, and falls back to `python -m` helpers
            log.warning("cannot start the fork server: %s", exc)
        runtime = Runtime(self.config.runtime_root, python=self.config.python, launcher=self.forkserver)
        try:
            if runtime.keep_pods_in_memory():
                log.info("pods' directories on a tmpfs at %s", self.config.runtime_root / PODS_DIR)
        except OSError as exc:  # no right to mount here: they stay on disk
            log.warning("pods' directories stay on disk: %s", exc)
        node = self.node
        if node.overlay:
            # flanneld's part, in the agent's process: the devices (and the pods' MTU) before any pod,
            # the annotations and the peers' entries once kubelet's half registered the Node.
            if self.overlay_config is not None:  # flannel's own identity: it reads every Node
                self.overlay_api = ApiClient(self.overlay_config, component=f"flannel/{node.name}")
                await self.overlay_api.open()
            self.overlay = Overlay(self.overlay_api or self.api, self.kernel, node)
            node = dataclasses.replace(node, pod_mtu=await self.overlay.prepare())
        self.agent = NodeAgent(self.api, self.kernel, runtime, node, self.config)
        await self.agent.start()
        if self.overlay is not None:
            await self.overlay.start()
        if self.pki_dir is not None and (self.pki_dir / "ca.key").exists():
            await self._serve_kubelet_api(runtime)
        elif self.pki_dir is not None:  # the node is Ready meanwhile; logs and exec wait for the certificate
            self._serving = asyncio.create_task(self._serve_kubelet_api(runtime), name="kubelet-serving-csr")
            self._serving.add_done_callback(_log_failure)
        if self.speaker is not None:
            await self.speaker.start()

    async def _serve_kubelet_api(self, runtime: Runtime) -> None:
        assert self.agent is not None and self.pki_dir is not None
        node = self.node
        cert_dir = self.config.runtime_root / "pki"
        if (self.pki_dir / "ca.key").exists():
            cert, key = ensure_serving_certificate(self.pki_dir, cert_dir, node.name, node.addresses)
        else:
            cert, key = await request_serving_certificate(self.api, cert_dir, (self.pki_dir / "ca.crt").read_bytes(),
                                                          node.name, node.addresses)
        # kubelet's --address 0.0.0.0, inside the node's namespace: the node's LAN address and its bridge's
        listen = partial(listen_tcp_in_netns, node.namespace, "0.0.0.0", KUBELET_PORT)
        api = KubeletApi(node.name, self.agent.pods, PodFiles(runtime), WebhookAuth(self.api))
        self.server = KubeletServer(api, listen, server_tls(self.pki_dir / "ca.crt", cert, key))
        await self.server.start()

    async def stop(self) -> None:
        if self.speaker is not None:  # first: another node takes its addresses over at once
            await self.speaker.stop()
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
        if self.server is not None:
            await self.server.stop()
        if self.overlay is not None:  # its entries stay: pods keep talking while the agent is away
            await self.overlay.stop()
        if self.agent is not None:
            await self.agent.stop()
        if self.forkserver is not None:
            await self.forkserver.close()
        if self.kernel is not None:
            self.kernel.close()
        if self.overlay_api is not None:
            await self.overlay_api.close()
        if self.api is not None:
            await self.api.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    """The kubelet API started in the background: say why it did not (the node runs on without it)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the kubelet API did not start: %s", task.exception())


def run(client_config: Any, node: NodePlan, config: AgentConfig, pid_path: Path, pki_dir: Path | None = None,
        speaker_config: Any = None, overlay_config: Any = None) -> int:
    """Run the node's agent until a signal, refusing if another holds the node's pid lock."""
    lock = process.PidLock(pid_path)
    try:
        lock.acquire()
    except process.AlreadyRunning as exc:
        print(f"svcnet: the agent for {node.name}: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(process.run([AgentProcess(client_config, node, config, pki_dir, speaker_config,
                                                         overlay_config)]))
    finally:
        lock.release()
