"""Compare answers with the table in cases.py, whichever way they were obtained."""
from __future__ import annotations

from collections.abc import Iterable

import yaml

from tests.unit.dns.cases import CLUSTER

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
CLASSES = {"IN": 1, "CH": 3, "HS": 4}
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "HINFO": 13, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
          "SRV": 33, "AXFR": 252}


def cluster_objects() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(CLUSTER.read_text()) if doc]


def normalize_record(line: str) -> tuple[str, ...]:
    """A zone-file line -> (owner, ttl, type, rdata), names as spelled, the SOA serial masked."""
    fields = line.split()
    owner, ttl, _cls, rtype, *rdata = fields
    if rtype == "SOA":
        rdata[2] = "SERIAL"
    return (owner, ttl, rtype, " ".join(rdata))


def normalize(lines: Iterable[str]) -> list[tuple[str, ...]]:
    return sorted(normalize_record(line) for line in lines)


def headless_service(name: str, namespace: str, endpoints: int, per_slice: int = 100) -> list[dict]:
    """A headless Service with `endpoints` ready endpoints (10.240.x.y) on port http/TCP 80, in slices."""
    objects: list[dict] = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                            "spec": {"clusterIP": "None", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}]
    for first in range(0, endpoints, per_slice):
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{first // per_slice}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            "endpoints": [{"addresses": [f"10.240.{index // 250}.{index % 250 + 1}"], "conditions": {"ready": True}}
                          for index in range(first, min(first + per_slice, endpoints))]})
    return objects
