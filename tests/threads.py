"""Running work on several threads released together, for tests of concurrent writes."""
from __future__ import annotations

import threading
from collections.abc import Callable


def run_at_once(work: Callable[[int], None], threads: int) -> None:
    """work(0) .. work(threads - 1), each on its own thread, all let go at the same moment; returns when all
    have ended, and fails with what any of them raised (a thread's exception would otherwise only be logged)."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    running = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert failures == []
