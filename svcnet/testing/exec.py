"""The fake of running commands in a namespace: a CommandRunner that runs nothing.

FakeRunner stands where svcnet.kernel.exec.NetnsRunner stands in a node, under
the iptables and conntrack adapters (svcnet.kernel.iptables.NetnsIptables,
svcnet.kernel.conntrack.ConntrackTool), so tests see the exact commands they run
and script what those commands print.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from svcnet.kernel.exec import CommandNotFound, CommandResult

Answer = Callable[[tuple[str, ...], str | None], CommandResult]


def printed(argv: Sequence[str], returncode: int = 0, stdout: str = "", stderr: str = "") -> CommandResult:
    """The result of a command that exited with `returncode` after printing stdout and stderr."""
    return CommandResult(tuple(argv), returncode, stdout, stderr)


class FakeRunner:
    """Records every command (argv, stdin) in `calls` and answers it with `answer(argv, stdin)`.

    `iptables --version` prints `iptables_version`; a program in `missing` is not
    installed; without `answer` every other command succeeds and prints nothing.
    """

    def __init__(self, answer: Answer | None = None, *,
                 iptables_version: str = "iptables v1.8.9 (nf_tables)\n", missing: Iterable[str] = ()) -> None:
        self.answer = answer or (lambda argv, stdin: printed(argv))
        self.iptables_version = iptables_version
        self.missing = frozenset(missing)
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def __call__(self, argv: Sequence[str], input: str | None = None, timeout: float = 120.0,
                 ) -> CommandResult:
        command = tuple(argv)
        self.calls.append((command, input))
        if command[0] in self.missing:
            raise CommandNotFound(command[0])
        if command == ("iptables", "--version"):
            return printed(command, stdout=self.iptables_version)
        return self.answer(command, input)

    def inputs(self) -> list[str]:
        """What each command given stdin (each restore) was given, in order."""
        return [stdin for _, stdin in self.calls if stdin is not None]
