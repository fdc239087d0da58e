"""A watch callback for tests."""
from __future__ import annotations

from svcnet.storage.base import Event


class Recorder:
    """A watch callback that keeps what it is given (callbacks run in the writer's thread)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def summary(self) -> list[tuple[str, str, int]]:
        return [(event.type, event.key, event.revision) for event in self.events]
