"""`svcnet controllers`: the controller-manager process (kube-controller-manager and kube-scheduler's
work in one), against svcnet's API server or any other through a kubeconfig."""
from __future__ import annotations

import asyncio
import functools
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet import controllers
from svcnet.client.leaderelection import LeaderElected, new_identity
from svcnet.client.rest import ApiClient
from svcnet.controllers.base import ControllerManager
from svcnet.controllers.loadbalancer import LoadBalancerController
from svcnet.controllers.nodebootstrap import CsrSigner
from svcnet.controllers.rootcacert import RootCACertPublisher
from svcnet.controllers.tokens import TokensController
from svcnet.core.leaderelection import LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, ElectionConfig
from svcnet.core.loadbalancer import parse_pools
from svcnet.kernel import process

log = logging.getLogger("svcnet.controllers")


@dataclass(frozen=True)
class ControllerFiles:
    """kube-controller-manager's --service-account-private-key-file and --root-ca-file: what the
    tokens controller signs with and puts in each token Secret's ca.crt, and the CA the
    root-ca-cert-publisher puts in every namespace's kube-root-ca.crt (without one: the CA the
    client trusts)."""

    service_account_private_key_file: Path | None = None
    root_ca_file: Path | None = None
    # --lb-pool: the addresses the service-lb controller hands out (MetalLB's IPAddressPool);
    # without one that controller does not run.
    lb_pool: str | None = None
    # --cluster-signing-cert-file and --cluster-signing-key-file: the CA the csrsigning controller
    # signs kubelet client certificates with; without them that controller does not run.
    cluster_signing_cert_file: Path | None = None
    cluster_signing_key_file: Path | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ControllerFiles:
        """svcnet's API server keeps them in its data dir (pki/sa.key, pki/ca.crt, pki/ca.key)."""
        pki = data_dir / "pki"
        return cls(pki / "sa.key", pki / "ca.crt", cluster_signing_cert_file=pki / "ca.crt",
                   cluster_signing_key_file=pki / "ca.key")


@dataclass(frozen=True)
class LeaderElection:
    """kube-controller-manager's and kube-scheduler's --leader-elect* flags (component-base's
    LeaderElectionConfiguration): on by default, so only one instance of each acts."""

    enabled: bool = True
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    resource_namespace: str = "kube-system"
    # The Lease's name; empty: the component's own (kube-controller-manager, kube-scheduler).
    resource_name: str = ""

    def config(self, identity: str) -> ElectionConfig:
        config = ElectionConfig(identity, self.lease_duration, self.renew_deadline, self.retry_period)
        config.check()
        return config


CONTROLLER_MANAGER_LEASE = "kube-controller-manager"
SCHEDULER_LEASE = "kube-scheduler"


def elected_components(client_config: Any, names: list[str] | None, files: ControllerFiles = ControllerFiles(),
                       election: LeaderElection = LeaderElection()) -> list[Any]:
    """The controllers and the scheduler as supervisor components: with leader election each
    group runs only while this instance holds its Lease (kube-controller-manager's for the
    controllers, kube-scheduler's for the scheduler, as the two upstream binaries elect apart).
    ValueError as controller_manager, or for durations client-go refuses."""
    wanted = list(controllers.CONTROLLERS) if names is None else names
    groups = []
    if "scheduler" in wanted:
        groups.append((SCHEDULER_LEASE, controller_manager(client_config, ["scheduler"], files)))
    if any(name != "scheduler" for name in wanted):
        groups.append((CONTROLLER_MANAGER_LEASE, controller_manager(client_config, names, files,
                                                                    leave_out=("scheduler",))))
    if not election.enabled:
        return [manager for _, manager in groups]
    identity = new_identity()
    config = election.config(identity)
    return [LeaderElected(lambda: ApiClient(client_config, component="leader-election"),
                          election.resource_name or lease, config, manager,
                          namespace=election.resource_namespace)
            for lease, manager in groups]


def controller_manager(client_config: Any, names: list[str] | None,
                       files: ControllerFiles = ControllerFiles(), *,
                       leave_out: tuple[str, ...] = ()) -> ControllerManager:
    """The named controllers (all by default, but those in leave_out) over one client; ValueError
    names unknown ones, or the tokens controller asked for by name without a signing key."""
    factories = []
    if names is None:
        classes = [cls for cls in controllers.load(None) if _table_name(cls) not in leave_out]
    else:
        classes = controllers.load([name for name in names if name not in leave_out])
    for cls in classes:
        if cls is TokensController:
            key = _signing_key(files.service_account_private_key_file)
            if key is None:
                if names is not None:
                    raise ValueError("serviceaccount-token needs --service-account-private-key-file")
                log.info("serviceaccount-token controller disabled: no service-account private key")
                continue
            root_ca = files.root_ca_file.read_bytes() if files.root_ca_file and files.root_ca_file.exists() else b""
            factories.append(functools.partial(TokensController, signing_key=key, root_ca=root_ca))
        elif cls is LoadBalancerController:
            if not files.lb_pool:
                if names is not None:
                    raise ValueError("service-lb needs --lb-pool")
                log.info("service-lb controller disabled: no --lb-pool")
                continue
            factories.append(functools.partial(LoadBalancerController, pool=parse_pools(files.lb_pool)))
        elif cls is CsrSigner:
            if not (files.cluster_signing_cert_file and files.cluster_signing_key_file):
                if names is not None:
                    raise ValueError("csrsigning needs --cluster-signing-cert-file and --cluster-signing-key-file")
                log.info("csrsigning controller disabled: no cluster signing CA")
                continue
            factories.append(functools.partial(CsrSigner, ca_cert_file=files.cluster_signing_cert_file,
                                               ca_key_file=files.cluster_signing_key_file))
        elif cls is RootCACertPublisher and files.root_ca_file is not None:
            factories.append(functools.partial(RootCACertPublisher, root_ca_file=files.root_ca_file))
        else:
            factories.append(cls)
    return ControllerManager(lambda: ApiClient(client_config, component="controller-manager"), factories)


def _table_name(cls: type) -> str:
    """The controller's name in the table (`--controllers` names)."""
    path = f"{cls.__module__}:{cls.__name__}"
    return next((name for name, where in controllers.CONTROLLERS.items() if where == path), "")


def _signing_key(path: Path | None) -> ec.EllipticCurvePrivateKey | None:
    if path is None or not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: the service-account private key must be an ECDSA key")
    return key


def run(client_config: Any, names: list[str] | None, files: ControllerFiles = ControllerFiles(),
        election: LeaderElection = LeaderElection()) -> int:
    """Run the controllers until a signal; 2 if a name is unknown or a flag bad."""
    try:
        components = elected_components(client_config, names, files, election)
    except ValueError as exc:
        print(f"svcnet: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(process.run(components))
