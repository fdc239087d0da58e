"""The one way tests wait: poll a condition until it holds or a deadline passes.

Tests never sleep and hope. `until` is for async tests (the condition may be a plain function or
a coroutine function); `wait_for` is for blocking tests that poll a server or a kernel from
outside. Both return the condition's last (truthy) value, and on timeout fail with what was
awaited and, when the condition raised, the last error.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


def _timed_out(what: str, last_exc: BaseException | None) -> AssertionError:
    return AssertionError(f"timed out waiting for {what}" + (f": {last_exc!r}" if last_exc else ""))


async def until(condition: Callable[[], Any], timeout: float = 5.0, *, interval: float = 0.002,
                what: str = "condition") -> Any:
    """Yield to the loop until condition() is truthy (awaiting it when it is a coroutine)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, None)
        await asyncio.sleep(interval)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Block until condition() is truthy; an exception from it counts as not yet (a server starting)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while what it probes is still starting
            last_exc = exc
        time.sleep(interval)
    raise _timed_out(what, last_exc)
