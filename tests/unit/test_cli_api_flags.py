"""The API server's flag checks: --insecure only on loopback, --advertise-address a routable IP."""
from __future__ import annotations

import pytest

from svcnet.cli import build_parser


def problem(*flags: str) -> SystemExit | None:
    from svcnet.cli import _api_config

    args = build_parser().parse_args(["apiserver", *flags])
    try:
        _api_config(args)
    except SystemExit as exc:
        return exc
    return None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.4.5", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])
def test_insecure_is_allowed_on_loopback(address):
    assert problem("--insecure", "--bind-address", address) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.0.0.1", "fe80::1", "example.com", "::ffff:10.0.0.1"])
def test_insecure_elsewhere_exits_2_with_the_reason(address, capsys):
    refused = problem("--insecure", "--bind-address", address)
    assert refused is not None and refused.code == 2
    assert f"may only listen on a loopback address (127.0.0.0/8, ::1, localhost); got --bind-address {address}" \
        in capsys.readouterr().err


def test_a_secure_server_may_bind_anywhere():
    assert problem("--bind-address", "0.0.0.0") is None


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "169.254.1.1", "not-an-ip"])
def test_the_advertise_address_must_be_one_pods_can_reach(address, capsys):
    refused = problem("--advertise-address", address)
    assert refused is not None and refused.code == 2
    assert "--advertise-address" in capsys.readouterr().err


def test_a_routable_advertise_address_reaches_the_config():
    from svcnet.cli import _api_config

    assert _api_config(build_parser().parse_args(["apiserver", "--advertise-address", "192.0.2.10"])) \
        .advertise_address == "192.0.2.10"
