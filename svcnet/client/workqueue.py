"""client-go's rate-limited work queue, for asyncio.

The guarantees controllers rely on:
- a key waiting in the queue is there once, however often it is added;
- a key is handed to one worker at a time: added again while a worker holds
  it, it is queued only after that worker calls done(key);
- add_after(key, delay) adds it later (the earliest pending time wins);
- add_rate_limited(key) adds it after a per-key exponential backoff
  (5 ms, 10 ms, ... up to 1000 s) until forget(key) resets the count.

Time comes from a Clock so tests drive delays with FakeClock.advance(), not sleeps.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("svcnet.client.workqueue")

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """get() on a queue that is shut down and empty."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


class _FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told: advance() fires the timers that came due, in order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _FakeTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer()
        heapq.heappush(self._timers, (self._now + max(0.0, delay), next(self._seq), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            due, _, timer, callback = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            if not timer.cancelled:
                callback()
        self._now = target

    def pending_timers(self) -> int:
        return sum(1 for _, _, t, _ in self._timers if not t.cancelled)


class ExponentialBackoff(Generic[K]):
    """Per-key delay base * 2**failures, capped (client-go's ItemExponentialFailureRateLimiter)."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 64:  # 2**64 * base is far past any cap; avoid huge floats
            return self.cap
        return min(self.base * (2 ** failures), self.cap)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    """A deduplicating, delaying, rate-limited queue of keys (client-go's RateLimitingQueue)."""

    def __init__(self, *, clock: Clock | None = None, rate_limiter: ExponentialBackoff[K] | None = None,
                 name: str = "") -> None:
        self.name = name
        self._clock: Clock = clock or LoopClock()
        self._limiter: ExponentialBackoff[K] = rate_limiter or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be processed (in _queue, or to be re-queued on done)
        self._processing: set[K] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False
        # add_after: a heap of (due time, seq, key), the earliest due time per key, one timer.
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()
        self._timer: TimerHandle | None = None
        self._timer_due: float | None = None

    # -------------------------------------------------------------- basic queue
    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() re-queues it, so no two workers ever hold the same key
        self._queue.append(key)
        self._wake()

    async def get(self) -> K:
        """The next key; the caller must call done(key) when finished. Raises ShutDown."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Refuse new keys; get() hands out what is queued, then raises ShutDown."""
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._delayed.clear()
        self._due.clear()
        self._wake()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queue)

    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def _wake(self) -> None:
        # Every waiter re-checks the queue; waking all keeps cancellation from losing a wakeup.
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # ------------------------------------------------------------------ delays
    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self._clock.now() + delay
        if key in self._due and self._due[key] <= due:
            return  # an earlier add_after already covers this one
        self._due[key] = due
        heapq.heappush(self._delayed, (due, next(self._seq), key))
        self._arm_timer()

    def delayed(self) -> int:
        """How many keys wait for their add_after time."""
        return len(self._due)

    def _arm_timer(self) -> None:
        while self._delayed and self._due.get(self._delayed[0][2]) != self._delayed[0][0]:
            heapq.heappop(self._delayed)  # superseded by an earlier due time for the same key
        if not self._delayed:
            return
        due = self._delayed[0][0]
        if self._timer is not None and self._timer_due is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._clock.call_later(due - self._clock.now(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = None
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self.add(key)
        self._arm_timer()

    # ------------------------------------------------------------ rate limiting
    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """Stop tracking the key's failures (its next add_rate_limited waits the base delay)."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)


# A reconcile returns None when done, or a delay in seconds to look at the key again then.
Reconcile = Callable[[K], Awaitable[float | None]]


async def run_workers(queue: WorkQueue[K], workers: int, reconcile: Reconcile[K]) -> None:
    """Run `workers` loops over the queue until it shuts down (or the task is cancelled).

    Success forgets the key's failures; an exception is logged and the key
    retried with backoff; a returned delay re-adds the key after it.
    """

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                requeue_after = await reconcile(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception:
                log.exception("%s: reconciling %r failed (attempt %d); retrying",
                              queue.name or "workqueue", key, queue.num_requeues(key) + 1)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
                if requeue_after is not None:
                    queue.add_after(key, requeue_after)
            queue.done(key)

    await asyncio.gather(*(worker() for _ in range(workers)))
