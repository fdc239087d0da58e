"""The supervised child process that `up` runs its agents, proxies, etcd members and other API servers
as: restarted after a back-off that doubles to a maximum and starts over after a healthy run, its pid
in a file, stopped with SIGTERM then SIGKILL. Plain processes (sh, sleep), a fake clock and sleep."""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from svcnet.cluster.supervised import Backoff, SupervisedProcess, stop_all
from tests.waiting import until

EXIT_3 = ["sh", "-c", "echo ran; exit 3"]
SLEEPER = ["sleep", "3600"]
# Ignores SIGTERM, and says so once it does (a TERM before that would end it).
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring TERM', flush=True); time.sleep(3600)"]


class FakeSleep:
    """Records each back-off; returns at once for the first `instant` of them, then waits until cancelled."""

    def __init__(self, instant: int = 1_000) -> None:
        self.delays: list[float] = []
        self.instant = instant

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) > self.instant:
            await asyncio.Event().wait()


def runs_lasting(*seconds: float):
    """A clock under which the process's i-th run lasts seconds[i] (the loop reads it at each start and end)."""
    readings = iter(itertools.chain.from_iterable((0.0, ran) for ran in seconds))
    return lambda: next(readings)


def child(tmp_path: Path, argv: list[str], **kwargs) -> SupervisedProcess:
    return SupervisedProcess("the worker", argv, tmp_path / "worker.log", pid_path=tmp_path / "worker.pid", **kwargs)


def pid_in_file(tmp_path: Path) -> int:
    return int((tmp_path / "worker.pid").read_text())


async def test_a_process_that_dies_is_restarted_after_its_back_off_and_its_pid_file_follows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sleep = FakeSleep()
    worker = child(tmp_path, SLEEPER, sleep=sleep)
    await worker.start()
    try:
        first = worker.process
        assert pid_in_file(tmp_path) == first.pid
        os.kill(first.pid, signal.SIGKILL)  # our own child
        await until(lambda: worker.process is not first, timeout=30, what="the worker respawned")
        assert pid_in_file(tmp_path) == worker.process.pid != first.pid
        assert worker.process.returncode is None
        assert sleep.delays == [1.0]
        out = capsys.readouterr().out
        assert "svcnet: the worker exited (-9); restarting it in 1s\n" in out
        assert f"svcnet: restarted the worker (pid {worker.process.pid})\n" in out
    finally:
        await worker.stop()
    assert worker.process.returncode == -signal.SIGTERM
    assert not (tmp_path / "worker.pid").exists()


async def test_the_back_off_doubles_up_to_its_maximum_and_starts_over_after_a_healthy_run(tmp_path: Path) -> None:
    sleep = FakeSleep(instant=5)  # the sixth back-off lasts until stop()
    worker = child(tmp_path, EXIT_3, backoff=Backoff(initial=1, maximum=4, healthy_after=60), sleep=sleep,
                   clock=runs_lasting(0, 0, 0, 0, 61, 0))
    await worker.start()
    try:
        await until(lambda: len(sleep.delays) == 6, timeout=30, what="six back-offs")
    finally:
        await worker.stop()
    assert sleep.delays == [1, 2, 4, 4, 1, 2]  # the fifth run lasted past healthy_after
    assert (tmp_path / "worker.log").read_text() == "ran\n" * 6


async def test_a_stop_during_the_back_off_ends_it_and_starts_nothing_more(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worker = child(tmp_path, EXIT_3, backoff=Backoff(initial=3600, maximum=3600))  # the real asyncio.sleep
    await worker.start()
    printed: list[str] = []
    try:
        await until(lambda: printed.append(capsys.readouterr().out) or "restarting it in 3600s" in "".join(printed),
                    timeout=30, what="the worker's back-off")
        exited = worker.process
    finally:
        await asyncio.wait_for(worker.stop(), 60)  # a deadline: the back-off is an hour
    assert worker.process is exited and exited.returncode == 3
    assert (tmp_path / "worker.log").read_text() == "ran\n"
    assert not (tmp_path / "worker.pid").exists()


async def test_stop_terms_a_process_and_kills_one_that_outlives_its_grace(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    polite = SupervisedProcess("the polite one", SLEEPER, tmp_path / "polite.log", stop_timeout=60)
    stubborn = SupervisedProcess("the stubborn one", STUBBORN, tmp_path / "stubborn.log", stop_timeout=0.2)
    await polite.start()
    await stubborn.start()
    try:
        await until(lambda: "ignoring TERM" in (tmp_path / "stubborn.log").read_text(), timeout=30,
                    what="the stubborn one to ignore SIGTERM")
    finally:
        with caplog.at_level(logging.WARNING, logger="svcnet.cluster"):
            await stop_all([polite, stubborn])
    assert polite.process.returncode == -signal.SIGTERM
    assert stubborn.process.returncode == -signal.SIGKILL
    assert [r.getMessage() for r in caplog.records] == ["the stubborn one did not stop; killing it"]


class Hooked(SupervisedProcess):
    """Records its hooks; its first respawn never serves."""

    restarting = "restarting it and its helpers"

    def __init__(self, tmp_path: Path, sleep: FakeSleep) -> None:
        super().__init__("the hooked one", SLEEPER, tmp_path / "hooked.log", title="Hooked", sleep=sleep)
        self.events: list[str] = []

    def before_spawn(self) -> None:
        self.events.append("before_spawn")

    async def exited(self) -> None:
        self.events.append(f"exited {self.process.returncode}")

    async def serving(self) -> None:
        self.events.append("serving")
        if self.events.count("serving") == 1:
            raise OSError("the hooked one not ready")

    async def restarted(self) -> None:
        self.events.append("restarted")


async def test_a_respawn_that_does_not_serve_is_killed_and_retried_after_the_next_back_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sleep = FakeSleep()
    hooked = Hooked(tmp_path, sleep)
    await hooked.start()
    try:
        os.kill(hooked.process.pid, signal.SIGKILL)
        await until(lambda: "restarted" in hooked.events, timeout=30, what="the hooked one serving again")
    finally:
        await hooked.stop()
    assert hooked.events == ["before_spawn", "exited -9", "before_spawn", "serving",  # killed: not serving
                             "exited -9", "before_spawn", "serving", "restarted"]
    assert sleep.delays == [1.0, 2.0]
    out = capsys.readouterr().out
    assert "svcnet: Hooked exited (-9); restarting it and its helpers in 1s\n" in out
    assert "svcnet: the hooked one not ready\n" in out
    assert f"svcnet: restarted Hooked (pid {hooked.process.pid})\n" in out
