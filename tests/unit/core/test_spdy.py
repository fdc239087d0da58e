"""svcnet.core.spdy: frames built by hand (and by the tests' own client codec) decode to
what the draft says; what we encode decodes with plain zlib; a session answers bad input
as spdystream does."""
from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from svcnet.core import spdy
from tests.spdy_client import (
    DICTIONARY_LENGTH,
    DICTIONARY_SHA256,
    ClientCodec,
    FrameReader,
    control,
    data,
    name_values,
)


def test_dictionary_is_the_drafts_byte_for_byte() -> None:
    assert len(spdy.DICTIONARY) == DICTIONARY_LENGTH
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == DICTIONARY_SHA256
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options") and spdy.DICTIONARY.endswith(b"enq=0.")


def test_header_blocks_compress_in_one_zlib_stream_that_plain_zlib_reads_back() -> None:
    compressor = spdy.HeaderCompressor()
    reader = zlib.decompressobj(zdict=spdy.DICTIONARY)
    first = {"streamType": ["data"], "port": ["9376"], "requestID": ["0"]}
    second = {"streamtype": ["error"], "port": ["9376"], "x": ["a", "b"]}
    block1 = reader.decompress(compressor.compress(first))
    block2 = reader.decompress(compressor.compress(second))
    assert block1 == name_values({"streamtype": "data", "port": "9376", "requestid": "0"})
    assert block2 == name_values({"streamtype": "error", "port": "9376", "x": "a\x00b"})


def test_header_blocks_from_an_independent_compressor_decompress_in_order() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    ours = spdy.HeaderDecompressor()
    for n in range(3):
        block = client.compress(name_values({"streamtype": "data", "requestid": str(n)}))
        assert ours.decompress(block) == {"streamtype": ["data"], "requestid": [str(n)]}


def _decode(raw: bytes) -> list[spdy.Frame]:
    return spdy.FrameDecoder().feed(raw)


def test_syn_stream_from_the_client_codec_decodes_with_flags_and_headers() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    (frame,) = _decode(client.syn_stream(5, {"streamtype": "error", "port": "80"}, fin=True))
    assert frame == spdy.SynStream(5, {"streamtype": ["error"], "port": ["80"]}, fin=True)


@pytest.mark.parametrize("raw, frame", [
    (control(spdy.RST_STREAM, 0, struct.pack("!II", 3, spdy.CANCEL)), spdy.RstStream(3, spdy.CANCEL)),
    (control(spdy.SETTINGS, 1, struct.pack("!III", 1, (1 << 24) | 7, 65536)), spdy.Settings(((1, 7, 65536),), clear=True)),
    (control(spdy.PING, 0, struct.pack("!I", 9)), spdy.Ping(9)),
    (control(spdy.GOAWAY, 0, struct.pack("!II", 7, 1)), spdy.GoAway(7, 1)),
    (control(spdy.WINDOW_UPDATE, 0, struct.pack("!II", 3, 1000)), spdy.WindowUpdate(3, 1000)),
    (data(3, b"abc", fin=True), spdy.Data(3, b"abc", fin=True)),
    (data(3, b""), spdy.Data(3, b"")),
])
def test_hand_built_frames_decode(raw: bytes, frame: spdy.Frame) -> None:
    assert _decode(raw) == [frame]


@pytest.mark.parametrize("frame", [
    spdy.SynStream(1, {"a": ["b"]}, associated_id=0, priority=3, fin=True, unidirectional=True),
    spdy.SynReply(1, {"x": ["1", "2"]}, fin=True),
    spdy.HeadersFrame(3, {"k": ["v"]}),
    spdy.RstStream(1, spdy.PROTOCOL_ERROR),
    spdy.Settings(((0, 4, 100), (1, 7, 1 << 20))),
    spdy.Ping(2),
    spdy.GoAway(5, spdy.GOAWAY_OK),
    spdy.WindowUpdate(1, 42),
    spdy.Data(7, b"x" * 70000, fin=True),
])
def test_every_frame_type_round_trips_through_encoder_and_decoder(frame: spdy.Frame) -> None:
    assert _decode(spdy.FrameEncoder().encode(frame)) == [frame]


def test_syn_reply_we_encode_is_read_by_the_client_codec() -> None:
    encoder, client = spdy.FrameEncoder(), ClientCodec(spdy.DICTIONARY)
    reader = FrameReader(client)
    raw = encoder.encode(spdy.SynReply(1, {})) + encoder.encode(spdy.SynReply(3, {"a": ["b"]}))
    first, second = reader.feed(raw)
    assert (first.kind, first.stream_id, first.headers) == (spdy.SYN_REPLY, 1, {})
    assert (second.kind, second.stream_id, second.headers) == (spdy.SYN_REPLY, 3, {"a": "b"})


def test_frames_split_anywhere_across_reads_decode_once_complete() -> None:
    raw = control(spdy.PING, 0, struct.pack("!I", 1)) + data(1, b"hello")
    decoder = spdy.FrameDecoder()
    frames = [f for i in range(len(raw)) for f in decoder.feed(raw[i:i + 1])]
    assert frames == [spdy.Ping(1), spdy.Data(1, b"hello")]


@pytest.mark.parametrize("raw, why", [
    (control(spdy.PING, 0, struct.pack("!I", 1), version=2), "version 2"),
    (control(42, 0, b""), "unknown control frame type 42"),
    (control(spdy.PING, 0, b"\x00\x00\x00"), "PING frame of 3 bytes"),
    (control(spdy.PING, 0, struct.pack("!I", 0)), "PING with id 0"),
    (control(spdy.GOAWAY, 0, struct.pack("!I", 1)), "GOAWAY frame of 4 bytes"),
    (control(spdy.RST_STREAM, 0, struct.pack("!II", 1, 0)), "status 0"),
    (control(spdy.RST_STREAM, 0, struct.pack("!II", 0, 1)), "RST_STREAM on stream 0"),
    (control(spdy.SETTINGS, 0, struct.pack("!I", 5)), "SETTINGS claims 5 entries"),
    (control(spdy.WINDOW_UPDATE, 1, struct.pack("!II", 1, 1)), "WINDOW_UPDATE with flags"),
    (control(spdy.SYN_STREAM, 0, b"\x00" * 5), "shorter than 10"),
    (control(spdy.SYN_STREAM, 0, struct.pack("!IIBB", 1, 0, 0, 0) + b"not zlib"), "does not decompress"),
    (data(0, b"x"), "DATA on stream 0"),
])
def test_malformed_frames_are_session_errors(raw: bytes, why: str) -> None:
    with pytest.raises(spdy.SessionError, match=why):
        _decode(raw)


def _syn_with_block(block: bytes, stream_id: int = 1) -> bytes:
    return control(spdy.SYN_STREAM, 0, struct.pack("!IIBB", stream_id, 0, 0, 0) + ClientCodec(spdy.DICTIONARY).compress(block))


@pytest.mark.parametrize("block, why", [
    (struct.pack("!I", spdy.MAX_HEADER_COUNT + 1), "more than 1000"),
    (struct.pack("!II", 1, spdy.MAX_HEADER_FIELD_SIZE + 1), "over"),
    (name_values({"Port": "1"}), "not lower case"),
    (struct.pack("!I", 2) + name_values({"a": "1"})[4:] * 2, "appears twice"),
    (struct.pack("!I", 2) + name_values({"a": "1"})[4:], "truncated"),
    (name_values({"a": "1"}) + b"junk", "after its last pair"),
])
def test_bad_header_blocks_are_session_errors(block: bytes, why: str) -> None:
    with pytest.raises(spdy.SessionError, match=why):
        _decode(_syn_with_block(block))


def test_a_header_block_expanding_past_the_bound_is_refused_before_it_is_all_inflated() -> None:
    bomb = struct.pack("!II", 1, 4) + b"name" + struct.pack("!I", 3 << 20) + b"\x00" * (3 << 20)
    compressed = _syn_with_block(bomb)
    assert len(compressed) < 10_000
    with pytest.raises(spdy.SessionError, match="expands past"):
        _decode(compressed)


# ---------------------------------------------------------------------- session


def _session_with(*raw: bytes) -> tuple[spdy.ServerSession, list[spdy.Event]]:
    session = spdy.ServerSession()
    return session, session.receive(b"".join(raw))


def _sent(session: spdy.ServerSession) -> list[spdy.Frame]:
    return spdy.FrameDecoder().feed(session.data_to_send())


def test_session_reports_streams_data_and_half_close_and_replies_on_request() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, events = _session_with(client.syn_stream(1, {"port": "80"}), data(1, b"hi"), data(1, b"", fin=True))
    assert events == [spdy.StreamOpened(1, {"port": ["80"]}, False), spdy.DataReceived(1, b"hi"), spdy.StreamEnded(1)]
    session.reply(1)
    session.send_data(1, b"x" * (spdy.DATA_CHUNK + 1))
    session.finish(1)
    assert _sent(session) == [spdy.SynReply(1, {}), spdy.Data(1, b"x" * spdy.DATA_CHUNK), spdy.Data(1, b"x"),
                              spdy.Data(1, b"", fin=True)]
    assert not session.is_open(1)  # closed both ways: forgotten, later frames are dropped
    assert session.receive(data(1, b"late")) == []


def test_session_resets_a_syn_stream_whose_id_goes_backwards_with_protocol_error() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, events = _session_with(client.syn_stream(5, {}), client.syn_stream(3, {}))
    assert events == [spdy.StreamOpened(5, {}, False)]
    assert _sent(session) == [spdy.RstStream(3, spdy.PROTOCOL_ERROR)]


def test_session_echoes_client_pings_only() -> None:
    session, events = _session_with(control(spdy.PING, 0, struct.pack("!I", 3)),
                                    control(spdy.PING, 0, struct.pack("!I", 4)))
    assert events == []
    assert _sent(session) == [spdy.Ping(3)]


def test_session_ignores_settings_and_window_updates() -> None:
    session, events = _session_with(control(spdy.SETTINGS, 0, struct.pack("!III", 1, 7, 1)),
                                    control(spdy.WINDOW_UPDATE, 0, struct.pack("!II", 1, 10)))
    assert events == [] and session.data_to_send() == b""


def test_session_reports_a_reset_and_forgets_the_stream() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, events = _session_with(client.syn_stream(1, {}), control(spdy.RST_STREAM, 0, struct.pack("!II", 1, 5)))
    assert events[-1] == spdy.StreamReset(1, spdy.CANCEL)
    session.send_data(1, b"nobody")
    assert session.data_to_send() == b""


def test_session_after_peer_goaway_accepts_no_new_stream_but_open_ones_go_on() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, events = _session_with(client.syn_stream(1, {}), control(spdy.GOAWAY, 0, struct.pack("!II", 0, 0)),
                                    client.syn_stream(3, {}), data(1, b"still"))
    assert events == [spdy.StreamOpened(1, {}, False), spdy.GoneAway(0), spdy.DataReceived(1, b"still")]


def test_session_answers_a_malformed_frame_with_goaway_protocol_error() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, _ = _session_with(client.syn_stream(1, {}))
    session.data_to_send()
    events = session.receive(control(spdy.PING, 0, b"\x00"))
    assert isinstance(events[0], spdy.SessionEnded) and "protocol error" in events[0].reason
    assert _sent(session) == [spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)]


def test_session_handles_good_frames_read_together_with_a_bad_one_before_ending() -> None:
    session, events = _session_with(control(spdy.PING, 0, struct.pack("!I", 1)), control(77, 0, b""))
    assert isinstance(events[-1], spdy.SessionEnded)
    assert _sent(session) == [spdy.Ping(1), spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)]


def test_session_reset_refuses_a_stream_with_cancel_as_kubelet_does() -> None:
    client = ClientCodec(spdy.DICTIONARY)
    session, _ = _session_with(client.syn_stream(1, {}))
    session.reset(1)
    assert _sent(session) == [spdy.RstStream(1, spdy.CANCEL)]
    assert not session.is_open(1)
