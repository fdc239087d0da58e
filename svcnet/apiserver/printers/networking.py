"""Printers of networking.k8s.io/v1 kinds, as kube-apiserver's printServiceCIDR, printIngress and
printIngressClass."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer
from .format import Cell, Obj, age_cell, get_path, list_at, name_cell

MAX_HOSTS = 3  # formatHosts shows three hosts, then "+ N more..."


def _service_cidr_cells(cidr: Obj, now: dt.datetime) -> list[Cell]:
    cidrs = get_path(cidr, "spec", "cidrs", default=[])
    joined = ",".join(str(c) for c in cidrs) if isinstance(cidrs, list) else ""
    return [name_cell(cidr), joined, age_cell(cidr, now)]


def format_hosts(rules: list[Obj]) -> str:
    """formatHosts: the first three rules' hosts, "*" when none names one."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == MAX_HOSTS:
            more = True
        if not more and get_path(rule, "host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        return "*"
    joined = ",".join(hosts)
    return f"{joined} + {len(rules) - MAX_HOSTS} more..." if more else joined


def _ingress_address(ingress: Obj) -> str:
    """ingressLoadBalancerStatusStringer: the load balancer's IPs and hostnames."""
    addresses = []
    for entry in list_at(ingress, "status", "loadBalancer", "ingress"):
        addresses.append(str(get_path(entry, "ip", default="") or get_path(entry, "hostname", default="") or ""))
    return ",".join(a for a in addresses if a)


def _ingress_cells(ingress: Obj, now: dt.datetime) -> list[Cell]:
    spec = get_path(ingress, "spec", default={})
    return [
        name_cell(ingress),
        str(spec.get("ingressClassName") or "<none>"),
        format_hosts(list_at(ingress, "spec", "rules")),
        _ingress_address(ingress),
        "80, 443" if spec.get("tls") else "80",
        age_cell(ingress, now),
    ]


def _ingress_class_cells(ingress_class: Obj, now: dt.datetime) -> list[Cell]:
    params = get_path(ingress_class, "spec", "parameters")
    shown = "<none>"
    if isinstance(params, dict):
        kind = str(params.get("kind") or "")
        if params.get("apiGroup"):
            kind = f"{kind}.{params['apiGroup']}"
        shown = f"{kind}/{params.get('name') or ''}"
    return [name_cell(ingress_class), str(get_path(ingress_class, "spec", "controller", default="")),
            shown, age_cell(ingress_class, now)]


# networking.k8s.io/v1 kinds: their columns and cells.
NETWORKING_PRINTERS: dict[tuple[str, str], Printer] = {
    ("networking.k8s.io", "ServiceCIDR"): Printer((
        NAME,
        Column("CIDRs", "string", "The IP ranges Service ClusterIPs are allocated from: one, or one "
                                  "of each family."),
        AGE,
    ), _service_cidr_cells),
    ("networking.k8s.io", "Ingress"): Printer((
        NAME,
        Column("Class", "string", "The ingress class that serves the Ingress."),
        Column("Hosts", "string", "Hosts the Ingress's rules name."),
        Column("Address", "string", "Addresses the ingress controller published."),
        Column("Ports", "string", "Ports the Ingress is served on."),
        AGE,
    ), _ingress_cells),
    ("networking.k8s.io", "IngressClass"): Printer((
        NAME,
        Column("Controller", "string", "The controller that implements the class."),
        Column("Parameters", "string", "The class's parameters object."),
        AGE,
    ), _ingress_class_cells),
}
