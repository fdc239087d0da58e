"""Printers of core/v1 ConfigMaps, Secrets and ServiceAccounts, as kube-apiserver's
printConfigMap (NAME DATA AGE), printSecret (NAME TYPE DATA AGE) and printServiceAccount
(NAME SECRETS AGE). The counts are integers in the cells, as upstream's int64s."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer
from .format import Cell, Obj, age_cell, get_path, name_cell


def _count(obj: Obj, *path: str) -> int:
    value = get_path(obj, *path)
    return len(value) if isinstance(value, dict | list) else 0


def _config_map_cells(config_map: Obj, now: dt.datetime) -> list[Cell]:
    return [name_cell(config_map), _count(config_map, "data") + _count(config_map, "binaryData"),
            age_cell(config_map, now)]


def _secret_cells(secret: Obj, now: dt.datetime) -> list[Cell]:
    return [name_cell(secret), str(get_path(secret, "type", default="") or ""), _count(secret, "data"),
            age_cell(secret, now)]


def _service_account_cells(service_account: Obj, now: dt.datetime) -> list[Cell]:
    return [name_cell(service_account), _count(service_account, "secrets"), age_cell(service_account, now)]


CONFIG_PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "ConfigMap"): Printer((
        NAME,
        Column("Data", "string", "How many keys the config map holds, in data and binaryData."),
        AGE,
    ), _config_map_cells),
    ("", "Secret"): Printer((
        NAME,
        Column("Type", "string", "The secret's type, which says which keys its data must hold."),
        Column("Data", "string", "How many keys the secret's data holds."),
        AGE,
    ), _secret_cells),
    ("", "ServiceAccount"): Printer((
        NAME,
        Column("Secrets", "string", "How many secrets the service account lists."),
        AGE,
    ), _service_account_cells),
}
