"""Printer of discovery.k8s.io/v1 EndpointSlices."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer
from .format import Cell, Obj, age_cell, get_path, list_at, more_than_three, name_cell


def _slice_ports(slice_: Obj) -> str:
    ports = list_at(slice_, "ports")
    shown = []
    for port in ports[:3]:
        number = get_path(port, "port")
        if isinstance(number, int):
            shown.append(str(number))
        elif get_path(port, "name") is not None:
            shown.append(str(get_path(port, "name")))
        else:
            shown.append("*")
    return more_than_three(shown, len(ports)) or "<unset>"


def _slice_endpoints(slice_: Obj) -> str:
    addresses = [str(a) for e in list_at(slice_, "endpoints") for a in list_at(e, "addresses")]
    return more_than_three(addresses[:3], len(addresses)) or "<unset>"


def _endpoint_slice_cells(slice_: Obj, now: dt.datetime) -> list[Cell]:
    return [
        name_cell(slice_),
        str(get_path(slice_, "addressType", default="")),
        _slice_ports(slice_),
        _slice_endpoints(slice_),
        age_cell(slice_, now),
    ]


# discovery.k8s.io/v1 EndpointSlice: its columns and cells.
DISCOVERY_PRINTERS: dict[tuple[str, str], Printer] = {
    ("discovery.k8s.io", "EndpointSlice"): Printer((
        NAME,
        Column("AddressType", "string", "The kind of addresses in the slice: IPv4, IPv6 or FQDN."),
        Column("Ports", "string", "The ports every endpoint in the slice serves."),
        Column("Endpoints", "string", "Addresses of the endpoints in the slice."),
        AGE,
    ), _endpoint_slice_cells),
}
