"""`svcnet controllers`: the controller-manager process (kube-controller-manager and kube-scheduler's
work in one), against svcnet's API server or any other through a kubeconfig."""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from svcnet import controllers
from svcnet.client.rest import ApiClient
from svcnet.controllers.base import ControllerManager
from svcnet.kernel import process


def controller_manager(client_config: Any, names: list[str] | None) -> ControllerManager:
    """The named controllers (all by default) over one client; ValueError names unknown ones."""
    classes = controllers.load(names)
    return ControllerManager(lambda: ApiClient(client_config, component="controller-manager"), classes)


def run(client_config: Any, names: list[str] | None) -> int:
    """Run the controllers until a signal; 2 if a name is unknown."""
    try:
        manager = controller_manager(client_config, names)
    except ValueError as exc:
        print(f"svcnet: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(process.run([manager]))
