"""The svcnet command: up (detached), a second up refused, kubeconfig, down, bad flags."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.apiserver_harness import KUBECTL, REPO, free_port


def svcnet(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcnet", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, stdin=subprocess.DEVNULL)


def test_up_detached_then_second_up_refused_then_down(tmp_path):
    data = str(tmp_path / "data")
    port = str(free_port())
    up = svcnet("up", "--detach", "--data-dir", data, "--port", port)
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={data}/kubeconfig" in up.stdout

        again = svcnet("up", "--detach", "--data-dir", data, "--port", port)
        assert again.returncode != 0
        assert "already running" in again.stderr

        path = svcnet("kubeconfig", "--data-dir", data)
        assert path.stdout.strip() == f"{data}/kubeconfig"
        raw = svcnet("kubeconfig", "--data-dir", data, "--raw")
        assert f"server: https://127.0.0.1:{port}" in raw.stdout
        assert os.stat(path.stdout.strip()).st_mode & 0o777 == 0o600

        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(KUBECONFIG=f"{data}/kubeconfig", HOME=str(tmp_path))
        ns = subprocess.run([KUBECTL, "get", "ns", "-o", "name"], capture_output=True, text=True,
                            env=env, timeout=60)
        assert "namespace/default" in ns.stdout, ns.stderr
    finally:
        down = svcnet("down", "--data-dir", data)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert svcnet("down", "--data-dir", data).stdout.startswith("svcnet: nothing is running")


def test_bad_flags_get_a_clear_error():
    result = svcnet("apiserver", "--port", "70000")
    assert result.returncode == 2
    assert "port must be 1-65535" in result.stderr
    result = svcnet("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_kubeconfig_before_start_says_what_to_do(tmp_path):
    result = svcnet("kubeconfig", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "svcnet up" in result.stderr


def test_up_without_root_says_what_is_missing(tmp_path):
    import shutil

    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux's setpriv is part of Debian's base system"
    result = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                             "-m", "svcnet", "up", "--data-dir", str(tmp_path / "data")],
                            capture_output=True, text=True, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "must run as root" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or written
