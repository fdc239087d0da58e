"""Run a Python module's main(argv) in a forked child as if the child were `python -m MODULE ARGS`.

Two places start Python programs this way instead of exec'ing a new interpreter,
whose start-up (the interpreter, `site`, the program's imports) costs ~15-30 ms of
CPU each time:

- the fork server (svcnet.runtime.forkserver) forks the runtime's helpers, a
  sandbox launcher and a shim per container;
- a shim forks the container's program when the image is one of svcnet's own
  Python programs (svcnet.runtime.images.IN_PROCESS_PROGRAMS): serve_hostname,
  which every pod of the seed runs (docs/benchmarks.md, issue 13).

The child is made to look fresh: only the descriptors it was given, signal
handlers and mask as the interpreter started with them, its own session, the
command line ps shows and sys.argv as `python -m` sets them, `random` reseeded.
It shares the forking interpreter's already-imported modules, its address-space
layout and its hash seed (the trade-off a zygote makes).
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from svcnet.kernel import process

# The signal dispositions of the interpreter that imported this first (the fork server and the shim
# import it before they set handlers of their own), restored in every child.
FRESH_SIGNALS = {sig: signal.getsignal(sig) for sig in signal.valid_signals()}


def restore_fresh_signals() -> None:
    """Signal mask empty and every handler as the interpreter started with it."""
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for sig, handler in FRESH_SIGNALS.items():
        if handler is not None:
            with contextlib.suppress(OSError, ValueError):  # SIGKILL, SIGSTOP
                signal.signal(sig, handler)


def _fresh_stdio() -> None:
    """sys.stdin/stdout/stderr over fds 0-2 as a new interpreter makes them (the parent's objects may be
    anything: buffers of its own, a test runner's capture), stdout line-buffered only on a terminal."""
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115 - they live as long as the process
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", closefd=False),  # noqa: SIM115
                                                   line_buffering=os.isatty(1))
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", closefd=False),  # noqa: SIM115
                                                   errors="backslashreplace", line_buffering=True)


def run_as_python_m(main: Callable[[Sequence[str]], object], argv: list[str], module_file: str | None) -> NoReturn:
    """In a forked child whose fds 0-2 are already its stdio: become `argv` (`python -m MODULE ARGS...`),
    run main(ARGS) and _exit with its code, as the interpreter would. Never returns."""
    code = 1
    try:
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the parent's sockets, pipes and pidfds
        _fresh_stdio()
        restore_fresh_signals()
        os.setsid()
        process.set_cmdline(argv)  # ps shows `python -m <module> <args>`
        sys.argv = [module_file or argv[2], *argv[3:]]  # as `python -m` sets it
        random.seed()  # (random also reseeds itself after fork; said here so it does not depend on that)
        try:
            result = main(argv[3:])
            code = result if isinstance(result, int) else 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
    except BaseException:  # noqa: B036 - report like the interpreter would, never return into the parent
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
