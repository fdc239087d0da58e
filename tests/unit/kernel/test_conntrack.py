"""The conntrack adapter: the commands it runs and how it reads what conntrack printed."""
from __future__ import annotations

import pytest

from svcnet.kernel.conntrack import ConntrackTool
from svcnet.testing.exec import FakeRunner, printed


@pytest.mark.parametrize(("returncode", "stderr", "deleted"), [
    (0, "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n", 2),
    (1, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n", 0),
    (1, "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n", 0),
])
def test_delete_counts_the_flows_conntrack_says_it_deleted(returncode, stderr, deleted):
    runner = FakeRunner(lambda argv, stdin: printed(argv, returncode, stderr=stderr))
    assert ConntrackTool(runner).delete(["-p", "udp", "--reply-src", "10.244.1.21"]) == deleted
    assert runner.calls == [(("conntrack", "-D", "-p", "udp", "--reply-src", "10.244.1.21"), None)]


def test_list_returns_what_conntrack_printed():
    runner = FakeRunner(lambda argv, stdin: printed(argv, stdout="udp 17 28 src=10.0.0.1\n"))
    assert ConntrackTool(runner).list(["-f", "ipv4"]) == "udp 17 28 src=10.0.0.1\n"
    assert runner.calls == [(("conntrack", "-L", "-f", "ipv4"), None)]


def test_a_failed_listing_is_an_os_error():
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr="conntrack: permission denied\n"))
    with pytest.raises(OSError, match="permission denied"):
        ConntrackTool(runner).list([])


def test_a_missing_conntrack_is_an_os_error():
    tool = ConntrackTool(FakeRunner(missing={"conntrack"}))
    with pytest.raises(OSError, match="command not found"):
        tool.list([])
    with pytest.raises(OSError, match="command not found"):
        tool.delete([])
