"""Printer of networking.k8s.io/v1 ServiceCIDRs: NAME, CIDRS, AGE, as kube-apiserver's printServiceCIDR."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer
from .format import Cell, Obj, age_cell, get_path, name_cell


def _service_cidr_cells(cidr: Obj, now: dt.datetime) -> list[Cell]:
    cidrs = get_path(cidr, "spec", "cidrs", default=[])
    joined = ",".join(str(c) for c in cidrs) if isinstance(cidrs, list) else ""
    return [name_cell(cidr), joined, age_cell(cidr, now)]


# networking.k8s.io/v1 ServiceCIDR: its columns and cells.
NETWORKING_PRINTERS: dict[tuple[str, str], Printer] = {
    ("networking.k8s.io", "ServiceCIDR"): Printer((
        NAME,
        Column("CIDRs", "string", "The IP ranges Service ClusterIPs are allocated from: one, or one "
                                  "of each family."),
        AGE,
    ), _service_cidr_cells),
}
