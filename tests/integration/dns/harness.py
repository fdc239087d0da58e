"""Run `svcnet dns` as a process on a loopback port and ask it questions with dig."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.apiserver_harness import REPO, free_port
from tests.waiting import wait_for


def dig_available() -> bool:
    return shutil.which("dig") is not None


@dataclass
class DigAnswer:
    status: str
    flags: set[str]
    answer: list[str] = field(default_factory=list)
    authority: list[str] = field(default_factory=list)
    additional: list[str] = field(default_factory=list)
    raw: str = ""


def parse_dig(text: str) -> DigAnswer:
    status = ""
    flags: set[str] = set()
    sections: dict[str, list[str]] = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
    current: list[str] | None = None
    for line in text.splitlines():
        if "->>HEADER<<-" in line:
            status = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; flags:"):
            flags = set(line.split(":", 1)[1].split(";")[0].split())
        elif line.startswith(";; ") and line.rstrip().endswith("SECTION:"):
            current = sections.get(line[3:].split()[0])
        elif not line.strip():
            current = None
        elif current is not None and not line.startswith(";"):
            current.append(" ".join(line.split()))
    return DigAnswer(status, flags, sections["ANSWER"], sections["AUTHORITY"], sections["ADDITIONAL"], text)


def dig(port: int, qname: str, qtype: str, *options: str, timeout: float = 10) -> DigAnswer:
    result = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), qname, qtype, "+tries=1", "+time=3",
                             *options], capture_output=True, text=True, timeout=timeout)
    return parse_dig(result.stdout)


@dataclass
class DnsProcess:
    args: list[str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self, wait_name: str = "kubernetes.default.svc.cluster.local.",
              wait_status: tuple[str, ...] = ("NOERROR", "NXDOMAIN", "SERVFAIL")) -> DnsProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svcnet.dns", "--listen", f"127.0.0.1:{self.port}", *self.args],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
        log.close()

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"svcnet dns exited {self.proc.returncode}: {self.log_text()}")
            return dig(self.port, wait_name, "A", "+time=1").status in wait_status
        wait_for(up, timeout=20, what=f"svcnet dns on {self.port}")
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
