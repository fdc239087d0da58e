"""Pods as processes in real namespaces (root): sandbox, containers, exec, logs, probes, adoption."""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.dnsconfig import sandbox_config
from svcnet.agent.envvars import process_env
from svcnet.agent.probes import (
    ProbeKind,
    ProbeRunner,
    ProbeSpec,
    ProbeTarget,
    ProbeVerdict,
    Result,
    exec_in_pod_runner,
    run_probe,
)
from svcnet.agent.restart import BackOffPolicy, PodIdentity, compute_pod_actions
from svcnet.api.podlogs import LogOptions
from svcnet.kernel import process
from svcnet.runtime.containers import ContainerSpec, RunState, Runtime
from svcnet.runtime.forkserver import ForkServer
from svcnet.runtime.images import container_argv, resolve_image
from svcnet.runtime.logs import read_log, stream_log
from svcnet.runtime.sandbox import PodKey, Sandbox, exec_in_pod, run_in_pod
from tests.integration.runtime.conftest import POD_IP
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root and real namespaces")

HOST_RESOLV = "nameserver 192.0.2.53\nsearch corp.example\n"
CLUSTER_FIRST = ("search default.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                 "nameserver 10.96.0.10\noptions ndots:5\n")


def make_pod(name: str, uid: str = "uid-1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": spec}


async def start_pod(runtime: Runtime, netns: str, pod: dict[str, Any]) -> Sandbox:
    config = sandbox_config(pod, netns=netns, pod_ips=[POD_IP], node_resolv_conf=HOST_RESOLV)
    return await runtime.create_sandbox(PodKey.of(pod), config)


def spec_for(name: str, image: str, sandbox: Sandbox, command: list[str] | None = None,
             args: list[str] | None = None) -> ContainerSpec:
    program = resolve_image(image, python=sys.executable, has_command=bool(command))
    env = process_env((), program.env, sandbox.hostname)
    return ContainerSpec(name, container_argv(program, command, args, env), env)


async def wait_for_output(runtime: Runtime, sandbox: Sandbox, name: str, text: bytes) -> bytes:
    """Follow the container's log until text appears (or the log closes)."""
    seen = b""
    path = runtime.log_path(sandbox, name)
    instance = int(path.stem)
    async for chunk in stream_log(path, LogOptions(follow=True), poll_seconds=0.02,
                                  log_closed=lambda: runtime.log_closed(sandbox, name, instance)):
        seen += chunk
        if text in seen:
            break
    return seen


async def test_serve_hostname_pod_answers_http_on_9376_with_its_name(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("hostnames-7x2kq"))
    await runtime.start_container(sandbox, spec_for("hostnames", "k8s.gcr.io/serve_hostname", sandbox))
    await wait_for_output(runtime, sandbox, "hostnames", b"Serving on port 9376")
    netns_name = Path(pod_netns).name
    curl = subprocess.run(["ip", "netns", "exec", netns_name, "curl", "-s", f"http://{POD_IP}:9376/"],
                          capture_output=True, timeout=10)
    assert curl.stdout == b"hostnames-7x2kq"
    code, out, _ = await run_in_pod(sandbox.infra, [sys.executable, "-c", textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
        s.sendto(b"?", ("{POD_IP}", 9376)); print(s.recv(100).decode())""")], timeout=10)
    assert (code, out) == (0, b"hostnames-7x2kq\n")


async def test_serve_hostname_is_forked_by_its_shim_as_the_process_python_m_would_make(runtime: Runtime,
                                                                                    pod_netns: str) -> None:
    """svcnet's own program runs in a fork of its shim (no new interpreter), yet is the process `python -m`
    makes: its own session under the shim, the container's environment and command line, stdin on
    /dev/null, none of the shim's descriptors, default signal handling (SIGTERM ends it with code 0)."""
    sandbox = await start_pod(runtime, pod_netns, make_pod("forked-0"))
    spec = spec_for("hostnames", "k8s.gcr.io/serve_hostname", sandbox)
    await runtime.start_container(sandbox, spec)
    await wait_for_output(runtime, sandbox, "hostnames", b"Serving on port 9376")
    status = runtime.status(sandbox, "hostnames")
    assert status and status.process and status.shim
    pid = status.process.pid
    assert session_and_parent(pid) == (pid, status.shim.pid)
    # Forked, not exec'd: its environment area is where its shim's is (an exec lays out a new stack).
    assert env_area(pid)[0] == env_area(status.shim.pid)[0]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert dict(item.decode().split("=", 1) for item in environ if item) == dict(spec.env)
    cmdline = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    assert cmdline == list(spec.argv) == [sys.executable, "-m", "svcnet.images.serve_hostname", "--udp"]
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert all(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(("socket:", "pipe:"))
               for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2)  # its listeners only
    assert os.readlink(f"/proc/{pid}/fd/1").startswith("pipe:")  # into the shim's log pump
    stopped = await runtime.stop_container(sandbox, "hostnames", grace_seconds=30)
    assert stopped and stopped.state is RunState.EXITED and stopped.exit_code == 0


async def test_exec_in_pod_runs_in_the_pod_namespaces_with_stdio_and_exit_code(runtime: Runtime, pod_netns: str,
                                                                              tmp_path: Path) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("web-0"))
    out_path, in_path = tmp_path / "out", tmp_path / "in"
    in_path.write_text("from stdin\n")
    with open(in_path) as stdin, open(out_path, "w") as stdout:
        code = await exec_in_pod(sandbox.infra, ["sh", "-c", "hostname; cat; ip -o -4 addr show lo | wc -l; exit 3"],
                                 stdin=stdin, stdout=stdout, timeout=10)
    assert code == 3
    assert out_path.read_text().split("\n")[:3] == ["web-0", "from stdin", "2"]


def host_mounts_but_netns() -> list[str]:
    """The host's mount table without its nsfs mounts (/run/netns/*: other tests and benchmarks on the
    host add and remove those at any time)."""
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.partition(" - ")[2].split(" ", 1)[0] != "nsfs"]


async def test_pod_sees_its_own_resolv_conf_and_hosts_while_the_host_keeps_its_own(runtime: Runtime,
                                                                                  pod_netns: str) -> None:
    host_files = {path: Path(path).read_bytes() for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname")
                  if Path(path).exists()}
    host_mounts = host_mounts_but_netns()
    host_name = os.uname().nodename
    pod = make_pod("web-0", hostname="db", subdomain="backend")
    sandbox = await start_pod(runtime, pod_netns, pod)
    _, resolv, _ = await run_in_pod(sandbox.infra, ["cat", "/etc/resolv.conf"], timeout=10)
    _, hosts, _ = await run_in_pod(sandbox.infra, ["cat", "/etc/hosts"], timeout=10)
    _, name, _ = await run_in_pod(sandbox.infra, ["hostname"], timeout=10)
    assert resolv.decode() == CLUSTER_FIRST
    assert hosts.decode().startswith("# Kubernetes-managed hosts file.\n")
    assert f"{POD_IP}\tdb.backend.default.svc.cluster.local\tdb\n" in hosts.decode()
    assert name == b"db\n"
    assert {path: Path(path).read_bytes() for path in host_files} == host_files
    assert host_mounts_but_netns() == host_mounts
    assert os.uname().nodename == host_name


async def test_a_sandbox_holds_no_copy_of_any_named_network_namespace(runtime: Runtime, pod_netns: str) -> None:
    # A copy of /run/netns/X in a pod's mount namespace would keep X alive after `ip netns del X`.
    others = [f"svcnet-rt-other-{secrets.token_hex(3)}" for _ in range(3)]
    try:
        for name in others:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        sandbox = await start_pod(runtime, pod_netns, make_pod("web-0"))
        mounts = Path(f"/proc/{sandbox.infra.pid}/mountinfo").read_text().splitlines()
        assert any("/run/netns/" + name in line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                   for name in others), "the host has the namespaces mounted"
        assert [line for line in mounts if line.partition(" - ")[2].startswith("nsfs ")] == []
    finally:
        for name in others:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


async def test_crashing_container_restarts_with_growing_backoff(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("crash-0"))
    policy = BackOffPolicy(initial=1.0, maximum=4.0)  # kubelet's 10 s .. 5 min, scaled down
    identity = PodIdentity("crash-0", "default", "uid-1")
    spec = spec_for("app", "busybox", sandbox, command=["sh", "-c", "echo crashing; exit 1"])
    backoffs: dict = {}
    waits: list[float] = []
    await runtime.start_container(sandbox, spec)
    for _ in range(4):
        status = await runtime.wait_container(sandbox, "app", timeout=10)
        assert status and status.state is RunState.EXITED and status.exit_code == 1
        actions = compute_pod_actions(identity, "Always", [], ["app"], {"app": status.view()}, backoffs,
                                      now=status.finished_at or 0, policy=policy)
        if actions.waiting:
            waiting = actions.waiting["app"]
            assert waiting.reason == "CrashLoopBackOff"
            waits.append(waiting.retry_at - (status.finished_at or 0))
            # The clock is the decision's input: ask again at the retry time instead of sleeping.
            actions = compute_pod_actions(identity, "Always", [], ["app"], {"app": status.view()}, backoffs,
                                          now=waiting.retry_at, policy=policy)
        assert actions.start == ("app",)
        backoffs = dict(actions.backoffs)
        await runtime.start_container(sandbox, spec)
    assert waits == pytest.approx([1.0, 2.0, 4.0])
    final = await runtime.wait_container(sandbox, "app", timeout=10)
    assert final and final.restart_count == 4
    assert read_log(runtime.log_path(sandbox, "app", previous=True)) == b"crashing\n"


async def test_stop_delivers_sigterm_to_the_program(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("term-0"))
    program = textwrap.dedent("""
        import signal, sys, time
        def on_term(signum, frame):
            print("got SIGTERM", flush=True); sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while True: signal.pause()""")
    await runtime.start_container(sandbox, spec_for("app", "busybox", sandbox, command=[sys.executable, "-c", program]))
    await wait_for_output(runtime, sandbox, "app", b"ready")
    status = await runtime.stop_container(sandbox, "app", grace_seconds=30)
    assert status and status.state is RunState.EXITED and status.exit_code == 0
    assert read_log(runtime.log_path(sandbox, "app")) == b"ready\ngot SIGTERM\n"


async def test_program_ignoring_sigterm_is_killed_after_the_grace_period(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("stubborn-0"))
    await runtime.start_container(sandbox, spec_for("app", "busybox", sandbox, command=[
        sys.executable, "-c", "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', "
                              "flush=True); signal.pause()"]))
    await wait_for_output(runtime, sandbox, "app", b"ready")
    status = await runtime.stop_container(sandbox, "app", grace_seconds=0.2)
    assert status and status.exit_code == 137


def env_area(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[47]), int(fields[48])  # env_start, env_end (stat fields 50 and 51)


def session_and_parent(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[3]), int(fields[1])  # (session id, parent pid)


async def test_shim_outlives_its_starter_and_a_new_runtime_adopts_it(runtime: Runtime, pod_netns: str,
                                                                    tmp_path: Path) -> None:
    """The starter (an agent) dies by SIGKILL with its process group; its sandbox and shim (started the
    way the fixture's runtime starts them: a new interpreter, or a fork of the agent's fork server)
    keep running in their own sessions, and a new runtime adopts them. A fork server ends with its agent."""
    trigger = tmp_path / "exit-now"
    use_forkserver = isinstance(runtime.launcher, ForkServer)
    starter = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from svcnet.runtime.containers import ContainerSpec, Runtime
        from svcnet.runtime.forkserver import ForkServer
        from svcnet.agent.dnsconfig import sandbox_config
        from svcnet.runtime.sandbox import PodKey
        async def main():
            server = ForkServer() if {use_forkserver!r} else None
            if server is not None:
                server.start()
            rt = Runtime(Path({str(runtime.root)!r}), launcher=server)
            pod = {{"metadata": {{"name": "adopt-0", "namespace": "default", "uid": "u-9"}}, "spec": {{}}}}
            sandbox = await rt.create_sandbox(PodKey.of(pod), sandbox_config(
                pod, netns={pod_netns!r}, pod_ips=[], node_resolv_conf=""))
            argv = ("sh", "-c", "echo started; while [ ! -e {trigger} ]; do sleep 0.05; done; exit 7")
            await rt.start_container(sandbox, ContainerSpec("app", argv, {{"PATH": "/usr/bin:/bin"}}))
            assert server is None or server.restarts == 0
            print("started", server.pid if server else 0, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())""")
    proc = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout
        word, server_pid = proc.stdout.readline().split()
        assert word == b"started"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the starter and its whole process group
        proc.wait()
    if use_forkserver:
        wait_for(lambda: process.process_id(int(server_pid)) is None, timeout=30,
                 what="the fork server to end with its agent")
    adopted = Runtime(runtime.root)
    [sandbox] = adopted.sandboxes()
    assert sandbox.alive() and sandbox.key.name == "adopt-0"
    status = adopted.status(sandbox, "app")
    assert status and status.state is RunState.RUNNING and process.is_alive(status.shim)
    assert status.shim and status.process
    for helper in (sandbox.infra, status.shim):  # each leads its own session; nobody's child but init's
        session, parent = session_and_parent(helper.pid)
        assert session == helper.pid and parent not in (proc.pid, int(server_pid))
    assert session_and_parent(status.process.pid) == (status.process.pid, status.shim.pid)  # under its shim
    cmdline = Path(f"/proc/{status.shim.pid}/cmdline").read_bytes().split(b"\0")
    assert [part.decode() for part in cmdline if part] == [  # what ps shows
        sys.executable, "-m", "svcnet.runtime.shim", str(sandbox.directory / "app" / "0.spec.json")]
    trigger.touch()
    final = await adopted.wait_container(sandbox, "app", timeout=20)
    assert final and final.state is RunState.EXITED and final.exit_code == 7
    assert read_log(runtime.log_path(sandbox, "app")) == b"started\n"


async def test_logs_are_written_in_cri_format_and_read_back_with_tail(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("logs-0"))
    await runtime.start_container(sandbox, spec_for("app", "busybox", sandbox, command=[
        "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2"]))
    await runtime.wait_container(sandbox, "app", timeout=10)
    path = runtime.log_path(sandbox, "app")
    assert path.name == "0.log" and path.parent.parent.name == "default_logs-0_uid-1"
    raw = path.read_text().splitlines()
    assert raw[0].endswith(" stdout F line1") and raw[-1].endswith(" stderr F oops")
    assert read_log(path, LogOptions(tail_lines=2)) == b"line5\noops\n"


async def test_program_that_cannot_start_is_a_start_error(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("bad-0"))
    status = await runtime.start_container(sandbox, ContainerSpec("app", ("no-such-program-xyz",), {"PATH": "/bin"}))
    assert (status.state, status.exit_code, status.reason) == (RunState.EXITED, 128, "StartError")
    assert 'exec: "no-such-program-xyz": executable file not found in $PATH' in status.message


async def test_readiness_http_probe_flips_ready_when_the_server_answers(runtime: Runtime, pod_netns: str,
                                                                       tmp_path: Path) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("ready-0"))
    trigger = tmp_path / "serve-now"
    serve = f"{sys.executable} -m svcnet.images.serve_hostname"
    status = await runtime.start_container(sandbox, spec_for("app", "busybox", sandbox, command=[
        "sh", "-c", f"while [ ! -e {trigger} ]; do sleep 0.05; done; exec {serve}"]))
    container = {"readinessProbe": {"httpGet": {"path": "/", "port": 9376}, "periodSeconds": 0.05,
                                    "failureThreshold": 1}}
    verdicts: list[ProbeVerdict] = []
    ready = asyncio.Event()

    def on_change(verdict: ProbeVerdict) -> None:
        verdicts.append(verdict)
        if verdict.ready:
            ready.set()
        elif len(verdicts) == 1:
            trigger.touch()  # not ready at first; now let the server start

    runner = ProbeRunner(container, status.started_at or 0, ProbeTarget(sandbox.netns_of_infra, POD_IP), on_change)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(ready.wait(), 20)
    finally:
        task.cancel()
    assert [v.ready for v in verdicts] == [False, True]
    assert runner.last_messages


async def test_removing_a_pod_ends_its_processes(runtime: Runtime, pod_netns: str) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("gone-0"))
    status = await runtime.start_container(sandbox, spec_for("app", "busybox", sandbox, command=[
        "sh", "-c", "sleep 1000 & wait"]))
    await runtime.remove_pod(sandbox, grace_seconds=5)
    assert not sandbox.alive() and not process.is_alive(status.process) and not process.is_alive(status.shim)
    assert not sandbox.directory.exists()
    assert status.process and process.live_group_members(status.process.pid) == []


@pytest.mark.parametrize("handler, expected", [
    ({"exec": {"command": ["sh", "-c", "test \"$(hostname)\" = probe-0"]}}, Result.SUCCESS),
    ({"exec": {"command": ["false"]}}, Result.FAILURE),
    ({"exec": {"command": ["sleep", "5"]}}, Result.FAILURE),  # cut at timeoutSeconds
    ({"tcpSocket": {"port": 1}}, Result.FAILURE),
])
async def test_exec_and_tcp_probes_run_in_the_pod(runtime: Runtime, pod_netns: str, handler: dict,
                                                  expected: Result) -> None:
    sandbox = await start_pod(runtime, pod_netns, make_pod("probe-0"))
    target = ProbeTarget(sandbox.netns_of_infra, POD_IP, exec_command=exec_in_pod_runner(sandbox.infra))
    outcome, _ = await run_probe(ProbeSpec(ProbeKind.LIVENESS, handler, timeout=0.5), target)
    assert outcome is expected
