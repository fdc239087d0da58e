"""Registry writes as steps, and the two ways to run them: inline, or from the event loop
with slow store writes on threads.

A registry write is a generator: it does its own work (defaulting, validation, managedFields,
admission) where it runs, and yields each call it makes on the store (a function of no
arguments) for its driver to run; the driver sends back the call's result, or throws its
exception in. One body of code therefore serves both callers:

- `run_inline` makes the calls where it is (tests, the daemon's own loops, MemoryStore);
- `run_off_loop` (the HTTP handlers) makes the calls on the loop while the store's writes are
  quick; once they take longer (a slow or busy disk: fsync), it hands the writes to
  threads (reads stay: they never wait for a commit), but for one write in PROBE_EVERY that
  measures the disk again, so the loop goes on
  serving other requests meanwhile and writes from concurrent requests meet in the store,
  whose group commit gives them one transaction.

Why not always threads: the registry's CPU work stays on the loop thread either way (Python
threads share one interpreter lock; with the whole registry call on 8 threads creates ran 5
times slower), and a hand-over costs CPU (~50-90 us a call here, more with lock contention).
Measured on this 2-core machine (docs/benchmarks.md, "API server"): with a fast fsync
(~0.15 ms) the loop's CPU per create (~0.7 ms) is the limit, 16 clients never have more than
one write in the store at once (1.2 writes per transaction), and threads only added CPU
(+350 us a create); with a slow fsync the loop would wait for every one of them.
kube-apiserver runs each request in its own goroutine, bounded by
--max-mutating-requests-inflight (default 200, k8s.io/apiserver
pkg/server/options/server_run_options.go); here WRITE_WORKERS threads bound the writes
waiting for a commit at once.
"""
from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

StoreCall = Callable[[], Any]


class Read(functools.partial):
    """A store call that only reads: its latency says nothing of the disk's (StoreCalls)."""

# yields store calls, is sent their results, returns the write's result
Steps = Generator[StoreCall, Any, T]

# Threads that wait for store writes. A batch settles near half the writers waiting
# (docs/benchmarks.md, "Group commit"); each thread holds one write.
WRITE_WORKERS = 8
# Writes go to threads once their recent latency (an exponential average) is above this: a
# hand-over then costs less than what the loop would wait. Measured (docs/benchmarks.md): on
# a quiet disk 2 ms keeps writes on the loop as never handing over does (a quick fsync,
# ~0.15 ms, with checkpoint spikes the slow average absorbs); under load 1 ms gave 1.3-1.6x
# the creates/s of never or always, and 0.3 ms less.
OFFLOAD_ABOVE = 0.002  # seconds
_SMOOTHING = 0.05  # weight of the newest write in the average: one spike does not tip it
# While writes go to threads, every this many is made on the loop again to measure the disk.
PROBE_EVERY = 16


class StoreCalls:
    """Where run_off_loop makes store writes: on the loop while they are quick, else on threads.

    The latency it goes by is what a write costs the loop: measured on writes made on the loop
    only. A write on a thread waits for the interpreter lock and for other writers' batches as
    well, which would keep writes on threads after the disk turned quick again (measured: a
    whole run at +50% CPU a create); so while offloading, one write in PROBE_EVERY is made on
    the loop, and those bring writes back once the disk is quick."""

    def __init__(self, offload_above: float = OFFLOAD_ABOVE, workers: int = WRITE_WORKERS,
                 clock: Callable[[], float] = time.perf_counter, probe_every: int = PROBE_EVERY) -> None:
        self.offload_above = offload_above  # negative: on threads but for the probes (tests)
        self.workers = workers
        self.clock = clock
        self.probe_every = probe_every
        self.latency = 0.0
        self._since_probe = 0
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def offloading(self) -> bool:
        """Whether the next write goes to a thread (False for a probe)."""
        if self.latency <= self.offload_above:
            return False
        self._since_probe += 1
        if self._since_probe >= self.probe_every:
            self._since_probe = 0
            return False
        return True

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="store-write")
            return self._pool

    def timed(self, call: StoreCall) -> Any:
        start = self.clock()
        try:
            return call()
        finally:
            self.latency += _SMOOTHING * (self.clock() - start - self.latency)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


DEFAULT_CALLS = StoreCalls()


def run_inline(steps: Steps[T]) -> T:
    """Drive steps here, each store call made by this thread."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            call = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value
        try:
            result, error = call(), None
        except Exception as exc:
            result, error = None, exc


def inline(steps_method: Callable[..., Steps[T]]) -> Callable[..., T]:
    """A method that runs steps_method's steps inline: `create = inline(create_steps)`."""

    @functools.wraps(steps_method)
    def method(*args: Any, **kwargs: Any) -> T:
        return run_inline(steps_method(*args, **kwargs))

    return method


async def run_off_loop(steps: Steps[T], calls: StoreCalls = DEFAULT_CALLS) -> T:
    """Drive steps on the running loop, slow store writes on threads (see StoreCalls).

    A write, once started, runs to its end even when the request that asked for it goes away
    (a client that disconnects cancels the awaiting handler): stopping it between its store
    call and what follows (committing the ClusterIP it took, say) would leave the two apart.
    """
    task = asyncio.ensure_future(_drive(steps, calls))
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


async def _drive(steps: Steps[T], calls: StoreCalls) -> T:
    loop = asyncio.get_running_loop()
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            call = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as stop:
            return stop.value
        try:
            if isinstance(call, Read):
                # always here: the store's reads do not wait for a commit (SqliteStore.get has a
                # connection of its own), and a hand-over to a thread cost the loop more than the
                # read (under a pod burst, half the loop's time in the registry went to handing
                # reads and writes over: py-spy, issue 13)
                result = call()
            elif calls.offloading():
                result = await loop.run_in_executor(calls.pool(), call)
            else:
                result = calls.timed(call)
            error = None
        except Exception as exc:
            result, error = None, exc


def _retrieve(task: asyncio.Future) -> None:
    """The outcome of a write whose request was cancelled is nobody's: mark it seen (an error
    was already answered as a Status to no one; there is nothing else to do with it)."""
    if not task.cancelled():
        task.exception()
