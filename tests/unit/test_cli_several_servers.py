"""The flags of leader election (`svcnet controllers`) and of `svcnet apiserver-lb`: upstream's forms,
and bad values refused with a clear message and exit status 2."""
from __future__ import annotations

import pytest

from svcnet.cli import build_parser, main


def test_leader_election_flags_take_go_durations_and_booleans_as_kube_controller_manager():
    args = build_parser().parse_args(["controllers", "--leader-elect=false", "--leader-elect-lease-duration=30s",
                                      "--leader-elect-renew-deadline=20s", "--leader-elect-retry-period=500ms",
                                      "--leader-elect-resource-name=mine"])
    assert (args.leader_elect, args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period, args.leader_elect_resource_name) == (False, 30.0, 20.0, 0.5, "mine")
    defaults = build_parser().parse_args(["controllers"])
    assert (defaults.leader_elect, defaults.leader_elect_lease_duration, defaults.leader_elect_renew_deadline,
            defaults.leader_elect_retry_period, defaults.leader_elect_resource_namespace) == \
        (True, 15.0, 10.0, 2.0, "kube-system")


@pytest.mark.parametrize(("flags", "message"), [
    (["--leader-elect-lease-duration=abc"], "invalid duration value: 'abc'"),
    (["--leader-elect=maybe"], "invalid boolean value: 'maybe'"),
    (["--leader-elect-resource-lock=endpoints"], "invalid choice: 'endpoints'"),
])
def test_bad_leader_election_flags_are_refused(flags, message, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["controllers", *flags])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_durations_client_go_refuses_are_refused_before_anything_runs(capsys, tmp_path):
    code = main(["controllers", "--data-dir", str(tmp_path), "--leader-elect-renew-deadline=20s"])
    assert code == 2 and "leaseDuration must be greater than renewDeadline" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--server", "foo"], "'foo': want HOST:PORT"),
    (["--server", "127.0.0.1:1", "--listen", "127.0.0.1"], "'127.0.0.1': want HOST:PORT"),
    (["--server", "127.0.0.1:1", "--server", "127.0.0.1:1"], "a server is listed twice"),
    (["--server", "127.0.0.1:1", "--health-interval", "0s"], "must be positive"),
])
def test_bad_load_balancer_flags_are_refused(flags, message, capsys):
    assert main(["apiserver-lb", *flags]) == 2
    assert message in capsys.readouterr().err
