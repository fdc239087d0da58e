"""The exec channel protocol: frames, options, the Status on the error channel, subprotocol choice.

The exec session itself (exit codes, terminal size) is the node side's: tests/unit/agent/test_podaccess.py.
"""
from __future__ import annotations

import json

import pytest

from svcnet.agent import execstream
from svcnet.agent.execstream import (
    PROTOCOL_V4,
    PROTOCOL_V5,
    Closed,
    Data,
    ProtocolError,
    Resize,
    StreamOptions,
)


@pytest.mark.parametrize(("channel", "payload", "wire"), [
    (execstream.STDOUT, b"hello\n", b"\x01hello\n"),
    (execstream.STDERR, b"oops", b"\x02oops"),
    (execstream.ERROR, b"{}", b"\x03{}"),
    (execstream.STDOUT, b"", b"\x01"),
])
def test_encode_data_prefixes_the_channel_byte(channel: int, payload: bytes, wire: bytes) -> None:
    assert execstream.encode_data(channel, payload) == wire


def test_encode_close_is_255_then_the_channel() -> None:
    assert execstream.encode_close(execstream.STDIN) == b"\xff\x00"


@pytest.mark.parametrize(("wire", "protocol", "frame"), [
    (b"\x00hi\n", PROTOCOL_V5, Data(0, b"hi\n")),
    (b"\x00", PROTOCOL_V4, Data(0, b"")),
    (b"\xff\x00", PROTOCOL_V5, Closed(0)),
    (b'\x04{"Width":80,"Height":24}', PROTOCOL_V5, Resize(80, 24)),
    (b'\x04{"Width":120,"Height":40}', PROTOCOL_V4, Resize(120, 40)),
])
def test_decode_frame_reads_channel_and_payload(wire: bytes, protocol: str, frame: object) -> None:
    assert execstream.decode_frame(wire, protocol) == frame


@pytest.mark.parametrize(("wire", "protocol"), [
    (b"", PROTOCOL_V5),  # no channel byte
    (b"\xff\x00", PROTOCOL_V4),  # close messages are v5 only
    (b"\xff", PROTOCOL_V5),  # close without a channel
    (b"\xff\x00\x01", PROTOCOL_V5),  # close naming two channels
    (b"\x04not json", PROTOCOL_V5),
])
def test_decode_frame_rejects_malformed_messages(wire: bytes, protocol: str) -> None:
    with pytest.raises(ProtocolError):
        execstream.decode_frame(wire, protocol)


def test_exit_status_for_zero_is_success() -> None:
    assert execstream.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}


def test_exit_status_for_nonzero_carries_the_code_as_an_exit_code_cause() -> None:
    status = execstream.exit_status(3, ["sh", "-c", "exit 3"])
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(json.dumps(status)) == status  # it goes on the wire as JSON


@pytest.mark.parametrize(("offered", "chosen"), [
    ("v5.channel.k8s.io, v4.channel.k8s.io", PROTOCOL_V5),
    ("v4.channel.k8s.io", PROTOCOL_V4),
    ("v4.channel.k8s.io,v5.channel.k8s.io", PROTOCOL_V4),  # the client's order wins
    ("base64.channel.k8s.io", None),
    ("", None),
    (None, None),
])
def test_negotiate_picks_the_clients_first_supported_subprotocol(offered: str | None, chosen: str | None) -> None:
    assert execstream.negotiate(offered) == chosen


def test_options_from_query_reads_kubectls_parameters() -> None:
    query = {"stdin": "true", "stdout": "true", "stderr": "true", "tty": "false"}
    options = StreamOptions.from_query(query, ["sh", "-c", "echo hi"])
    assert options == StreamOptions(("sh", "-c", "echo hi"), True, True, True, False)


@pytest.mark.parametrize(("query", "commands", "message"), [
    ({"stdout": "true"}, [], "at least 1 command"),
    ({}, ["true"], "at least 1 of stdin, stdout, stderr"),
])
def test_options_from_query_rejects_what_upstream_rejects(query: dict[str, str], commands: list[str],
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamOptions.from_query(query, commands)


def test_options_from_query_accepts_a_tty() -> None:
    options = StreamOptions.from_query({"stdin": "true", "stdout": "true", "tty": "true"}, ["sh"])
    assert options.tty and options.stdin and not options.stderr



def test_attach_needs_no_command_but_still_a_stream() -> None:
    assert StreamOptions.from_query({"stdout": "true"}, [], exec_=False).command == ()
    with pytest.raises(ValueError, match="at least 1 of stdin"):
        StreamOptions.from_query({}, [], exec_=False)
