from __future__ import annotations

import pytest

from svcnet.runtime.containers import RunState, interpret_state
from svcnet.runtime.shim import exit_code_of

RUNNING = {"state": "running", "startedAt": 5_000_000_000, "process": {"pid": 10, "startTicks": 1},
           "shim": {"pid": 9, "startTicks": 1}}
EXITED = {"state": "exited", "startedAt": 5_000_000_000, "finishedAt": 7_000_000_000, "exitCode": 1,
          "reason": "Error", "message": ""}


@pytest.mark.parametrize("state, process_alive, shim_alive, expected", [
    (RUNNING, True, True, (RunState.RUNNING, None, "")),
    (RUNNING, False, True, (RunState.RUNNING, None, "")),  # the shim is about to record the exit
    (RUNNING, True, False, (RunState.RUNNING, None, "")),  # the shim was killed; the program still runs
    (RUNNING, False, False, (RunState.EXITED, 255, "Unknown")),
    (EXITED, False, False, (RunState.EXITED, 1, "Error")),
    (None, False, False, (RunState.EXITED, 128, "StartError")),
])
def test_status_from_the_state_record_and_live_processes(state: dict | None, process_alive: bool, shim_alive: bool,
                                                         expected: tuple) -> None:
    status = interpret_state("app", 2, state, process_alive=process_alive, shim_alive=shim_alive)
    assert (status.state, status.exit_code, status.reason) == expected
    assert status.restart_count == 2


def test_exited_status_carries_times_in_seconds() -> None:
    status = interpret_state("app", 0, EXITED, process_alive=False, shim_alive=False)
    assert (status.started_at, status.finished_at) == (5.0, 7.0)


@pytest.mark.parametrize("wait_status, code", [(0, 0), (3 << 8, 3), (9, 137), (15, 143)])
def test_exit_codes_are_128_plus_the_signal(wait_status: int, code: int) -> None:
    assert exit_code_of(wait_status) == code
