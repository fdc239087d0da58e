"""`svcnet controllers`: the controller-manager process (kube-controller-manager and kube-scheduler's
work in one), against svcnet's API server or any other through a kubeconfig."""
from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

from svcnet import controllers
from svcnet.client.rest import ApiClient
from svcnet.controllers.base import ControllerManager
from svcnet.controllers.rootcacert import RootCACertPublisher
from svcnet.kernel import process


def controller_manager(client_config: Any, names: list[str] | None, *,
                       root_ca_file: Path | None = None) -> ControllerManager:
    """The named controllers (all by default) over one client; ValueError names unknown ones.

    root_ca_file: the CA the root-ca-cert-publisher puts in every namespace (kube-controller-manager's
    --root-ca-file); without it, the CA the client trusts."""
    classes: list[Any] = controllers.load(names)
    if root_ca_file is not None:
        classes = [functools.partial(c, root_ca_file=root_ca_file) if c is RootCACertPublisher else c
                   for c in classes]
    return ControllerManager(lambda: ApiClient(client_config, component="controller-manager"), classes)


def run(client_config: Any, names: list[str] | None) -> int:
    """Run the controllers until a signal; 2 if a name is unknown."""
    try:
        manager = controller_manager(client_config, names)
    except ValueError as exc:
        print(f"svcnet: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(process.run([manager]))
