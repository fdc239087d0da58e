"""The API server's one way to reach what runs on a node: container logs and exec.

Upstream, kube-apiserver proxies pods/log and pods/exec to the kubelet of the
pod's node. svcnet has no kubelet API yet: the entry point injects an
implementation that reads the node's files and enters the pod's namespaces
(`NodeFiles` in agent/podaccess.py). A kubelet client will replace it behind
this same interface. Without one (`NO_NODE_ACCESS`), every node is unreachable
and the server answers as for a pod whose node is unknown.

The handlers stay in the API server (which container, which options, which
Status to answer); an implementation only finds the container on its node,
reads its log and starts commands in it.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from svcnet.api.podlogs import LogOptions

Obj = Mapping[str, Any]


class Reader(Protocol):
    async def read(self, size: int) -> bytes:
        """Up to size bytes; b"" at the end."""


class ExecSession(Protocol):
    """A command running in a container, with the streams the exec request asked for."""

    stdout: Reader | None  # with a terminal: everything the command writes
    stderr: Reader | None

    async def write_stdin(self, data: bytes) -> None:
        """Input for the command; dropped if it takes none or stopped reading."""

    def close_stdin(self) -> None:
        """End of input (on a terminal: its EOF character)."""

    def resize(self, width: int, height: int) -> None:
        """The client's terminal size (only a session with a terminal has one)."""

    async def wait(self) -> int:
        """The command's exit code (128+N when killed by signal N)."""

    def kill(self) -> None:
        """End the command and everything it started (the client went away)."""

    def close(self) -> None:
        """Release what the session holds once it is over."""


class ContainerLog(Protocol):
    """One container instance's log, found on its node."""

    async def read(self, options: LogOptions) -> bytes:
        """What kubectl logs shows; FileNotFoundError if the log went away."""

    def follow(self, options: LogOptions, pod_gone: Callable[[], bool]) -> AsyncIterator[bytes]:
        """The log as it is written, until the container's log closes or pod_gone() is true
        (FileNotFoundError if the pod's files go away meanwhile)."""


class RunningContainer(Protocol):
    async def exec(self, command: Sequence[str], *, stdin: bool, stdout: bool, stderr: bool,
                   tty: bool) -> ExecSession:
        """Start command in the container; OSError if it cannot start."""


class NodeAccess(Protocol):
    """What the API server asks of a node. node is the pod's Node object, pod the Pod.

    Only builtin exceptions cross it, so an implementation needs nothing from the API server.
    """

    def reaches(self, node: Obj) -> bool:
        """Whether this node's pods can be reached at all."""

    def container_log(self, node: Obj, pod: Obj, container: str, *, previous: bool) -> ContainerLog | None:
        """The log of the container's latest instance (or the one before, with previous).

        None when the pod is not on the node (yet); LookupError when there is no such log,
        with the message kubectl prints (e.g. no previous instance).
        """

    def running_container(self, node: Obj, pod: Obj, container: str) -> RunningContainer | None:
        """The container if it runs now, else None."""


class _NoNodeAccess:
    """Every node unreachable: the API server run without node access."""

    def reaches(self, node: Obj) -> bool:
        return False

    def container_log(self, node: Obj, pod: Obj, container: str, *, previous: bool) -> ContainerLog | None:
        return None

    def running_container(self, node: Obj, pod: Obj, container: str) -> RunningContainer | None:
        return None


NO_NODE_ACCESS: NodeAccess = _NoNodeAccess()
