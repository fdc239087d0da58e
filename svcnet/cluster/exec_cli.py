"""`svcnet exec POD [-n NS] [-c CONTAINER] -- CMD...`: run a command inside a pod, as `kubectl exec` does.

The pod is looked up through the API (its node and uid), its sandbox through
that node's runtime state (the directory the Node's runtime-root annotation
names, or DATA_DIR/nodes/<node>), and the command runs in the sandbox's
network, UTS and mount namespaces with the container's environment and
working directory. stdin, stdout and stderr are this process's; the exit code
is the command's.
"""
from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from svcnet.agent.kubelet import PODS
from svcnet.agent.node import NODES, RUNTIME_ROOT_ANNOTATION
from svcnet.api.errors import ApiError
from svcnet.api.objects import annotations_of, spec_of
from svcnet.cluster.spec import runtime_root
from svcnet.runtime.containers import RunState, Runtime
from svcnet.runtime.sandbox import PodKey, exec_in_pod


class ExecError(Exception):
    """What kubectl would print (the message is complete, `error: ...` or `Error from server ...`)."""


@dataclass(frozen=True)
class ExecTarget:
    infra: Any  # svcnet.kernel.process.ProcessId
    container: str
    env: dict[str, str]
    working_dir: str


def default_container(pod: dict[str, Any], stderr: TextIO) -> str:
    containers = [c["name"] for c in spec_of(pod).get("containers") or []]
    annotated = annotations_of(pod).get("kubectl.kubernetes.io/default-container")
    if annotated in containers:
        return annotated
    if len(containers) > 1:
        print(f'Defaulted container "{containers[0]}" out of: {", ".join(containers)}', file=stderr)
    return containers[0]


async def find_target(api: Any, data_dir: Path, namespace: str, name: str, container: str | None,
                      stderr: TextIO = sys.stderr) -> ExecTarget:
    try:
        pod = await api.get(PODS, namespace, name)
    except ApiError as exc:
        if exc.code == 404:
            raise ExecError(f'Error from server (NotFound): pods "{name}" not found') from None
        raise ExecError(f"Error from server ({exc.reason}): {exc.message}") from None
    spec = spec_of(pod)
    node = spec.get("nodeName")
    if not node:
        raise ExecError(f"error: unable to upgrade connection: pod {name} is not scheduled to a node yet")
    names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    container = container or default_container(pod, stderr)
    if container not in names:
        raise ExecError(f"error: unable to upgrade connection: container {container} not found in pod {name}")
    root = runtime_root(data_dir, node)
    try:
        node_obj = await api.get(NODES, None, node)
        annotated = annotations_of(node_obj).get(RUNTIME_ROOT_ANNOTATION)
        if annotated:
            root = Path(annotated)
    except ApiError:
        pass
    runtime = Runtime(root)
    sandbox = runtime.get_sandbox(PodKey.of(pod))
    status = runtime.status(sandbox, container) if sandbox is not None else None
    if sandbox is None or not sandbox.alive() or status is None or status.state is not RunState.RUNNING:
        raise ExecError(f'error: unable to upgrade connection: container not found ("{container}")')
    try:
        spec = json.loads((sandbox.directory / container / f"{status.restart_count}.spec.json").read_text())
    except (OSError, ValueError):
        spec = {}
    return ExecTarget(sandbox.infra, container, dict(spec.get("env") or {}), str(spec.get("workingDir") or ""))


async def run_exec(client_config: Any, data_dir: Path, namespace: str, name: str, container: str | None,
                   argv: list[str]) -> int:
    from svcnet.client.rest import ApiClient

    async with ApiClient(client_config, component="exec") as api:
        target = await find_target(api, data_dir, namespace, name, container)
    env = target.env or None
    return await exec_in_pod(target.infra, argv, env=env, cwd=target.working_dir or None)


def main(client_config: Any, data_dir: Path, namespace: str, name: str, container: str | None,
         argv: list[str]) -> int:
    if not argv:
        print("error: you must specify at least one command for the container", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run_exec(client_config, data_dir, namespace, name, container, argv))
    except ExecError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
