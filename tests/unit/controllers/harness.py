"""Running one controller over FakeApi in a unit test: start, settle, stop."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from svcnet.client.informer import Informer, object_key
from svcnet.controllers.base import Controller, InformerFactory
from svcnet.testing.api import FakeApi
from tests.waiting import until


class RunningController:
    """A controller with its own informers and worker task over a FakeApi."""

    def __init__(self, api: FakeApi, make: Callable[[FakeApi, InformerFactory], Controller]) -> None:
        self.api = api
        self.informers = InformerFactory(api)
        self.controller = make(api, self.informers)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> RunningController:
        self.controller.setup()
        self.informers.start()
        await self.informers.wait_synced()
        self.task = asyncio.create_task(self.controller.run())
        return self

    async def stop(self) -> None:
        self.controller.shutdown()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.informers.stop()

    async def settled(self) -> None:
        """Wait until the queue is drained and no key is being worked on."""
        queue = self.controller.queue
        await until(lambda: len(queue) == 0 and not queue.processing() and queue.delayed() == 0)


async def caches_caught_up(api: FakeApi, informers: list[Informer], timeout: float = 5) -> None:
    """Wait until each informer's cache holds what the fake API holds (same resourceVersions)."""
    def versions(objects: list[dict]) -> dict[str, str]:
        return {object_key(o): o["metadata"]["resourceVersion"] for o in objects}

    async def caught_up() -> None:
        for informer in informers:
            while versions(informer.list()) != versions(api.objects(informer.resource)):
                await asyncio.sleep(0)

    await asyncio.wait_for(caught_up(), timeout)


@contextlib.asynccontextmanager
async def controller_starter(
    api: FakeApi, make: Callable[[FakeApi, InformerFactory], Controller],
) -> AsyncIterator[Callable[[], Awaitable[RunningController]]]:
    """A `start()` that runs another instance of the controller; all are stopped at the end."""
    started: list[RunningController] = []

    async def start() -> RunningController:
        running = await RunningController(api, make).start()
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await running.stop()
