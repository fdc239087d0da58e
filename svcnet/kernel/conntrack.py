"""The conntrack table of one node namespace, through the `conntrack` command (conntrack-tools).

The adapter only runs `conntrack -L` and `conntrack -D` with the arguments it is
given and hands back what the tool printed; svcnet.proxy.conntrack builds the
arguments, parses the listing and decides which flows are stale (its
`ConntrackTable` puts this adapter behind the proxy's `Conntrack` seam, whose
fake is svcnet.testing.conntrack.FakeConntrack). Failures are OSError, as from
a socket, so callers that tolerate a missing tool catch one thing.
"""
from __future__ import annotations

from collections.abc import Sequence

from svcnet.kernel.exec import CommandNotFound, CommandResult, CommandRunner


class ConntrackTool:
    """`conntrack` run by a CommandRunner inside the node namespace."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def _run(self, argv: list[str]) -> CommandResult:
        try:
            return self.runner(argv)
        except CommandNotFound as exc:  # the tool is not installed
            raise OSError(str(exc)) from None

    def list(self, args: Sequence[str]) -> str:
        """What `conntrack -L ARGS` printed."""
        result = self._run(["conntrack", "-L", *args])
        if result.returncode != 0:
            raise OSError(f"conntrack -L failed: {result.stderr.strip()}")
        return result.stdout

    def delete(self, args: Sequence[str]) -> int:
        """`conntrack -D ARGS`: how many flows it deleted."""
        result = self._run(["conntrack", "-D", *args])
        # Exit status 1 with "0 flow entries have been deleted" only means it was already gone.
        for line in result.stderr.splitlines():
            words = line.split()
            if "deleted." in words and words[-6:-5]:
                try:
                    return int(words[-6])
                except ValueError:
                    break
        return 0
