"""Running a command inside one named network namespace and collecting what it printed.

The iptables and conntrack adapters (svcnet.kernel.iptables,
svcnet.kernel.conntrack) take a `CommandRunner`: `NetnsRunner` here in a node,
svcnet.testing.exec.FakeRunner in tests. A command runs from a short-lived
thread that has joined the namespace (checked before every exec), so the
process it starts is born in it; there is no way to name the host namespace.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel import KernelError, check_namespace_name
from svcnet.kernel.netns import netns_path, run_in_netns


class CommandNotFound(KernelError):
    """The program is not installed (in the namespace's view of the file system)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"{program}: command not found (install iptables / conntrack)")
        self.program = program


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    """Run argv to completion with `input` on stdin; a non-zero exit is a result, not an error."""

    def __call__(self, argv: Sequence[str], input: str | None = None, timeout: float = 120.0,
                 ) -> CommandResult: ...


class NetnsRunner:
    """Runs commands inside one named network namespace (never the host's)."""

    def __init__(self, netns: str) -> None:
        self.netns = check_namespace_name(netns)

    def __call__(self, argv: Sequence[str], input: str | None = None, timeout: float = 120.0,
                 ) -> CommandResult:
        return run_in_netns(self.netns, self._run_here, tuple(argv), input, timeout)

    def _run_here(self, argv: tuple[str, ...], input: str | None, timeout: float) -> CommandResult:
        # A child process is born in its parent thread's namespace; make sure that is the node's.
        here = os.stat("/proc/thread-self/ns/net")
        target = os.stat(netns_path(self.netns))
        if (here.st_dev, here.st_ino) != (target.st_dev, target.st_ino):
            raise KernelError(f"refusing to run {argv[0]}: not inside network namespace {self.netns}")
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except FileNotFoundError:
            raise CommandNotFound(argv[0]) from None
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)
