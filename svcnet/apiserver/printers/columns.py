"""Table columns and the Printer that pairs them with a kind's cell function."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .format import Cell, Obj


@dataclass(frozen=True)
class Column:
    """One TableColumnDefinition. priority 0 shows by default; 1 only with `-o wide`."""

    name: str
    type: str
    description: str
    priority: int = 0
    format: str = ""

    def to_dict(self) -> Obj:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, dt.datetime], list[Cell]]
    conditions: Callable[[Obj], list[Obj]] | None = None


def wide(name: str, description: str) -> Column:
    return Column(name, "string", description, priority=1)


NAME = Column("Name", "string", "The object's name, unique within its namespace and kind.", format="name")
AGE = Column("Age", "string", "Time since the object was created (metadata.creationTimestamp).")
CONTAINERS = wide("Containers", "Names of the containers in the pod template.")
IMAGES = wide("Images", "Images of the containers in the pod template.")
