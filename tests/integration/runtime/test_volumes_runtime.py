"""Volumes in a real pod mount namespace (root): mounted where the pod asks, updated in place, and
nothing of it on the host (no new mount, no new directory), during the pod's life or after."""
from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

import pytest

from svcnet.agent.dnsconfig import sandbox_config
from svcnet.core.volumes import FileToWrite
from svcnet.runtime.atomicwriter import write_volume
from svcnet.runtime.containers import Runtime
from svcnet.runtime.sandbox import PodKey, SandboxError, VolumeMount, pod_directory, run_in_pod
from tests.integration.runtime.conftest import POD_IP
from tests.integration.runtime.test_runtime import HOST_RESOLV, host_mounts_but_netns, make_pod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root and real namespaces")

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


async def sh(infra, script: str) -> tuple[int, str, str]:
    code, out, err = await run_in_pod(infra, ["sh", "-c", script], timeout=20)
    return code, out.decode(), err.decode()


async def test_volumes_are_mounted_only_inside_the_pod_and_follow_the_writer(runtime: Runtime, pod_netns: str) -> None:
    tag = secrets.token_hex(4)
    config_path, data_path = f"/etc/svcnet-test-{tag}/config", f"/opt/svcnet-test-{tag}/data"
    assert not os.path.lexists(f"/etc/svcnet-test-{tag}") and not os.path.lexists("/run/secrets")
    host_mounts = host_mounts_but_netns()
    etc_entries = sorted(os.listdir("/etc"))
    pod = make_pod("vol-0", uid=f"uid-{tag}")
    key = PodKey.of(pod)
    volumes = pod_directory(runtime.root, key) / "_volumes"
    config_dir, token_dir, cache_dir = volumes / "cm" / "config", volumes / "p" / "api", volumes / "e" / "cache"
    write_volume(config_dir, {"app.conf": FileToWrite(b"color=blue\n", 0o644)})
    write_volume(token_dir, {"token": FileToWrite(b"jwt-1", 0o644), "namespace": FileToWrite(b"default", 0o644)})
    cache_dir.mkdir(parents=True)
    mounts = (VolumeMount(str(config_dir), config_path, True),
              VolumeMount(str(config_dir), f"/etc/svcnet-test-{tag}.conf", True, sub_path="app.conf"),
              VolumeMount(str(token_dir), SA_PATH, True),
              VolumeMount(str(cache_dir), data_path, False, sub_path="sub", create_sub_path=True),
              VolumeMount(str(config_dir), f"{data_path}/config", True))
    config = dataclasses.replace(sandbox_config(pod, netns=pod_netns, pod_ips=[POD_IP], node_resolv_conf=HOST_RESOLV),
                                 mounts=mounts, memory_volumes=((str(cache_dir), 1 << 20),))
    sandbox = await runtime.create_sandbox(key, config)

    assert await sh(sandbox.infra, f"cat {config_path}/app.conf {SA_PATH}/token") == (0, "color=blue\njwt-1", "")
    assert (await sh(sandbox.infra, f"cat /etc/svcnet-test-{tag}.conf"))[1] == "color=blue\n"
    # A mount point inside a writable volume is made in the volume, not under another overlay.
    assert (await sh(sandbox.infra, f"cat {data_path}/config/app.conf; ls {data_path}"))[1] == "color=blue\nconfig\n"
    assert (await sh(sandbox.infra, "grep -c ' overlay ' /proc/self/mountinfo"))[1] == "3\n"  # /etc, /opt and /run only
    code, _, err = await sh(sandbox.infra, f"echo x > {config_path}/new")
    assert code != 0 and "Read-only file system" in err
    assert (await sh(sandbox.infra, f"echo kept > {data_path}/f && cat {data_path}/f && "
                                    f"stat -f -c %T {data_path}"))[1] == "kept\ntmpfs\n"
    # The parent's own entries stay visible where a missing mountPath was made, and /etc/resolv.conf is the pod's.
    _, listing, _ = await sh(sandbox.infra, "ls -a /etc")
    assert set(etc_entries) <= set(listing.split())
    assert "nameserver 10.96.0.10" in (await sh(sandbox.infra, "cat /etc/resolv.conf"))[1]

    write_volume(config_dir, {"app.conf": FileToWrite(b"color=green\n", 0o644)})
    assert (await sh(sandbox.infra, f"cat {config_path}/app.conf"))[1] == "color=green\n"

    # The host: no new mount, nothing new under /etc, no /etc/<test>, no /run/secrets, no /opt/<test>.
    assert host_mounts_but_netns() == host_mounts
    assert sorted(os.listdir("/etc")) == etc_entries
    assert not os.path.lexists("/run/secrets") and not os.path.lexists(f"/opt/svcnet-test-{tag}")
    assert not (cache_dir / "sub" / "f").exists()  # the memory-backed emptyDir is the pod's tmpfs

    await runtime.remove_pod(sandbox, grace_seconds=0)
    assert host_mounts_but_netns() == host_mounts
    assert sorted(os.listdir("/etc")) == etc_entries
    assert not Path(pod_directory(runtime.root, key)).exists()


async def test_a_subpath_leading_out_of_the_volume_fails_the_sandbox(runtime: Runtime, pod_netns: str) -> None:
    pod = make_pod("vol-1", uid=f"uid-{secrets.token_hex(4)}")
    key = PodKey.of(pod)
    volume = pod_directory(runtime.root, key) / "_volumes" / "e" / "x"
    volume.mkdir(parents=True)
    (volume / "escape").symlink_to("/etc")
    config = dataclasses.replace(sandbox_config(pod, netns=pod_netns, pod_ips=[POD_IP], node_resolv_conf=HOST_RESOLV),
                                 mounts=(VolumeMount(str(volume), "/opt/x", False, sub_path="escape"),))
    with pytest.raises(SandboxError, match="points outside the volume"):
        await runtime.create_sandbox(key, config)
