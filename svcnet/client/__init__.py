"""The Kubernetes API client every svcnet component uses: config, REST, informers, work queues.

It speaks only the public Kubernetes API, so controllers, agents, the proxy and
DNS run unchanged against svcnet's apiserver or a real cluster. FakeApi
(svcnet.testing.api) stands in for ApiClient in tests.
"""
from __future__ import annotations

from svcnet.client.config import (
    ClientConfig,
    ConfigError,
    in_cluster_config,
    load_kubeconfig,
    parse_kubeconfig,
    unix_socket_config,
)
from svcnet.client.informer import Backoff, Cache, Informer, object_key, split_key
from svcnet.client.rest import ApiClient, TransportError
from svcnet.client.workqueue import ShutDown, WorkQueue, run_workers

__all__ = [
    "ApiClient",
    "Backoff",
    "Cache",
    "ClientConfig",
    "ConfigError",
    "Informer",
    "ShutDown",
    "TransportError",
    "WorkQueue",
    "in_cluster_config",
    "load_kubeconfig",
    "object_key",
    "parse_kubeconfig",
    "run_workers",
    "split_key",
    "unix_socket_config",
]
