"""SPDY/3.1 as kubectl and the kubelet speak it for port-forward, exec and attach: frames,
header-block compression and the server side of a session, without I/O.

The wire format is the SPDY/3.1 draft's (chromium.org spdy-protocol-draft3-1); the session
behaves as github.com/moby/spdystream, the library on both ends of every Kubernetes SPDY
connection: a SYN_STREAM with a stale or reused stream id is refused with RST_STREAM
PROTOCOL_ERROR, a PING the peer started is echoed, SETTINGS and WINDOW_UPDATE are read and
ignored (spdystream does no flow control, so neither end waits for window), frames for a
stream that is gone are dropped, and after a GOAWAY no new stream is accepted.

A frame that cannot be parsed ends the session: spdystream drops the connection; we first
send GOAWAY with PROTOCOL_ERROR, as the draft asks for a session error, so the peer learns
why. Use: `ServerSession.receive(bytes)` returns events; the caller answers with `reply`,
`reset`, `send_data`, `finish` and `go_away`, and writes `data_to_send()` to the wire.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01

# RST_STREAM status codes (the draft's section 2.6.3).
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

MAX_STREAM_ID = 0x7FFFFFFF
# A frame's length field is 24 bits; spdystream's MaxDataLength is that bound.
MAX_FRAME_LENGTH = (1 << 24) - 1
# Bounds on a decoded header block, so a small compressed block cannot expand without
# limit. spdystream bounds the pair count and each name and value; port-forward, exec and
# attach headers are a handful of short pairs, so these leave room for any real client.
MAX_HEADER_COUNT = 1000
MAX_HEADER_FIELD_SIZE = 1 << 20
MAX_HEADER_BLOCK_SIZE = 2 << 20
# Outgoing data is cut into frames of this size so one stream cannot hold the connection.
DATA_CHUNK = 32 * 1024

_FRAME_HEADER = struct.Struct("!II")
_CONTROL_BIT = 0x80000000


def _dictionary() -> bytes:
    """The draft's zlib dictionary for header blocks: length-prefixed names, then a tail."""
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
        "authorization", "cache-control", "connection", "content-base", "content-encoding",
        "content-language", "content-length", "content-location", "content-md5",
        "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
        "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
        "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
        "public", "set-cookie", "keep-alive", "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    prefixed = b"".join(struct.pack("!I", len(w)) + w.encode("ascii") for w in words)
    return prefixed + tail.encode("ascii")


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class SessionError(Exception):
    """The byte stream is not SPDY/3.1 we accept: the session must end (GOAWAY, close)."""

    def __init__(self, message: str, frames_before: Sequence[Frame] = ()) -> None:
        super().__init__(message)
        # The good frames that came in the same read as the bad one: still to be handled.
        self.frames_before = list(frames_before)


# ---------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data


# ------------------------------------------------------------------ header blocks


def encode_header_block(headers: Mapping[str, Sequence[str]]) -> bytes:
    """The uncompressed name/value block: names lowercased, several values joined by NUL
    (as Go's framer writes an http.Header)."""
    parts = [struct.pack("!I", len(headers))]
    for name, values in headers.items():
        raw_name = name.lower().encode("utf-8")
        raw_value = "\x00".join(values).encode("utf-8")
        parts += [struct.pack("!I", len(raw_name)), raw_name, struct.pack("!I", len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    """Parse an uncompressed name/value block, refusing what spdystream's framer refuses:
    too many pairs, oversized fields, upper-case or repeated names, truncation."""
    count, pos = _read_u32(block, 0)
    if count > MAX_HEADER_COUNT:
        raise SessionError(f"header block has {count} pairs, more than {MAX_HEADER_COUNT}")
    headers: Headers = {}
    for _ in range(count):
        name_bytes, pos = _read_field(block, pos)
        value_bytes, pos = _read_field(block, pos)
        name = name_bytes.decode("utf-8", "replace")
        if name != name.lower():
            raise SessionError(f"header name {name!r} is not lower case")
        if name in headers:
            raise SessionError(f"header {name!r} appears twice")
        headers[name] = value_bytes.decode("utf-8", "replace").split("\x00")
    if pos != len(block):
        raise SessionError("header block has bytes after its last pair")
    return headers


def _read_u32(block: bytes, pos: int) -> tuple[int, int]:
    if pos + 4 > len(block):
        raise SessionError("header block is truncated")
    return struct.unpack_from("!I", block, pos)[0], pos + 4


def _read_field(block: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _read_u32(block, pos)
    if length > MAX_HEADER_FIELD_SIZE:
        raise SessionError(f"header field of {length} bytes is over {MAX_HEADER_FIELD_SIZE}")
    if pos + length > len(block):
        raise SessionError("header block is truncated")
    return block[pos:pos + length], pos + length


class HeaderCompressor:
    """One zlib stream per direction of a connection, primed with the dictionary; each
    block ends with a sync flush so the peer can decode it on its own."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)

    def compress(self, headers: Mapping[str, Sequence[str]]) -> bytes:
        block = encode_header_block(headers)
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, payload: bytes) -> Headers:
        try:
            block = self._zlib.decompress(payload, MAX_HEADER_BLOCK_SIZE)
        except zlib.error as err:
            raise SessionError(f"header block does not decompress: {err}") from None
        if self._zlib.unconsumed_tail:
            raise SessionError(f"header block expands past {MAX_HEADER_BLOCK_SIZE} bytes")
        return decode_header_block(block)


# ------------------------------------------------------------------------- codec


class FrameEncoder:
    """Frames to bytes for one direction of one connection (it owns that direction's
    header compression context)."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            return _data_frame(frame)
        kind, flags, payload = self._control_payload(frame)
        return _control_frame(kind, flags, payload)

    def _control_payload(self, frame: Frame) -> tuple[int, int, bytes]:
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            fixed = struct.pack("!IIBB", frame.stream_id, frame.associated_id, (frame.priority & 7) << 5, frame.slot)
            return SYN_STREAM, flags, fixed + self._headers.compress(frame.headers)
        if isinstance(frame, SynReply):
            return SYN_REPLY, _fin(frame.fin), struct.pack("!I", frame.stream_id) + self._headers.compress(frame.headers)
        if isinstance(frame, HeadersFrame):
            return HEADERS, _fin(frame.fin), struct.pack("!I", frame.stream_id) + self._headers.compress(frame.headers)
        if isinstance(frame, RstStream):
            return RST_STREAM, 0, struct.pack("!II", frame.stream_id, frame.status)
        if isinstance(frame, Settings):
            body = b"".join(struct.pack("!II", (f << 24) | i, v) for f, i, v in frame.entries)
            return SETTINGS, FLAG_SETTINGS_CLEAR if frame.clear else 0, struct.pack("!I", len(frame.entries)) + body
        if isinstance(frame, Ping):
            return PING, 0, struct.pack("!I", frame.ping_id)
        if isinstance(frame, GoAway):
            return GOAWAY, 0, struct.pack("!II", frame.last_good_stream_id, frame.status)
        if isinstance(frame, WindowUpdate):
            return WINDOW_UPDATE, 0, struct.pack("!II", frame.stream_id, frame.delta)
        raise TypeError(f"not a SPDY frame: {frame!r}")


def _fin(fin: bool) -> int:
    return FLAG_FIN if fin else 0


def _control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise ValueError(f"control frame payload of {len(payload)} bytes does not fit 24 bits")
    return _FRAME_HEADER.pack(_CONTROL_BIT | (VERSION << 16) | kind, (flags << 24) | len(payload)) + payload


def _data_frame(frame: Data) -> bytes:
    if len(frame.data) > MAX_FRAME_LENGTH:
        raise ValueError(f"data frame of {len(frame.data)} bytes does not fit 24 bits")
    return _FRAME_HEADER.pack(frame.stream_id & MAX_STREAM_ID, (_fin(frame.fin) << 24) | len(frame.data)) + frame.data


class FrameDecoder:
    """Bytes to frames for one direction: `feed` returns every complete frame so far.

    Raises SessionError for what spdystream's framer cannot read: the session is over."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            first, second = _FRAME_HEADER.unpack_from(self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = second >> 24
            try:
                if first & _CONTROL_BIT:
                    frames.append(self._control(first, flags, payload))
                else:
                    frames.append(_parse_data(first, flags, payload))
            except SessionError as err:
                raise SessionError(str(err), frames) from None
        return frames

    def _control(self, first: int, flags: int, payload: bytes) -> Frame:
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SessionError(f"SPDY version {version} is not supported (want {VERSION})")
        parse = _CONTROL_PARSERS.get(kind)
        if parse is None:
            raise SessionError(f"unknown control frame type {kind}")
        return parse(self, flags, payload)

    def _syn_stream(self, flags: int, payload: bytes) -> Frame:
        _need(payload, 10, "SYN_STREAM")
        stream_id, associated, priority, slot = struct.unpack_from("!IIBB", payload)
        headers = self._headers.decompress(payload[10:])
        stream_id &= MAX_STREAM_ID
        _nonzero(stream_id, "SYN_STREAM")
        return SynStream(stream_id, headers, associated & MAX_STREAM_ID, priority >> 5, slot,
                         bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL))

    def _reply_like(self, flags: int, payload: bytes, what: str) -> tuple[int, Headers, bool]:
        _need(payload, 4, what)
        stream_id = struct.unpack_from("!I", payload)[0] & MAX_STREAM_ID
        headers = self._headers.decompress(payload[4:])
        _nonzero(stream_id, what)
        return stream_id, headers, bool(flags & FLAG_FIN)

    def _syn_reply(self, flags: int, payload: bytes) -> Frame:
        return SynReply(*self._reply_like(flags, payload, "SYN_REPLY"))

    def _headers_frame(self, flags: int, payload: bytes) -> Frame:
        return HeadersFrame(*self._reply_like(flags, payload, "HEADERS"))

    def _rst_stream(self, flags: int, payload: bytes) -> Frame:
        _exact(payload, 8, "RST_STREAM")
        stream_id, status = struct.unpack("!II", payload)
        _nonzero(stream_id & MAX_STREAM_ID, "RST_STREAM")
        if status == 0:
            raise SessionError("RST_STREAM with status 0")
        return RstStream(stream_id & MAX_STREAM_ID, status)

    def _settings(self, flags: int, payload: bytes) -> Frame:
        _need(payload, 4, "SETTINGS")
        count = struct.unpack_from("!I", payload)[0]
        if count > (len(payload) - 4) // 8:
            raise SessionError(f"SETTINGS claims {count} entries in {len(payload)} bytes")
        entries = tuple(
            (word >> 24, word & 0xFFFFFF, value)
            for word, value in struct.iter_unpack("!II", payload[4:4 + 8 * count])
        )
        return Settings(entries, bool(flags & FLAG_SETTINGS_CLEAR))

    def _ping(self, flags: int, payload: bytes) -> Frame:
        _exact(payload, 4, "PING")
        ping_id = struct.unpack("!I", payload)[0]
        if ping_id == 0 or flags:
            raise SessionError("PING with id 0 or with flags")
        return Ping(ping_id)

    def _go_away(self, flags: int, payload: bytes) -> Frame:
        _exact(payload, 8, "GOAWAY")
        if flags:
            raise SessionError("GOAWAY with flags")
        last, status = struct.unpack("!II", payload)
        return GoAway(last & MAX_STREAM_ID, status)

    def _window_update(self, flags: int, payload: bytes) -> Frame:
        _exact(payload, 8, "WINDOW_UPDATE")
        if flags:
            raise SessionError("WINDOW_UPDATE with flags")
        stream_id, delta = struct.unpack("!II", payload)
        return WindowUpdate(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)


_CONTROL_PARSERS = {
    SYN_STREAM: FrameDecoder._syn_stream,
    SYN_REPLY: FrameDecoder._syn_reply,
    RST_STREAM: FrameDecoder._rst_stream,
    SETTINGS: FrameDecoder._settings,
    PING: FrameDecoder._ping,
    GOAWAY: FrameDecoder._go_away,
    HEADERS: FrameDecoder._headers_frame,
    WINDOW_UPDATE: FrameDecoder._window_update,
}


def _parse_data(first: int, flags: int, payload: bytes) -> Data:
    _nonzero(first, "DATA")
    return Data(first, payload, bool(flags & FLAG_FIN))


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise SessionError(f"{what} frame of {len(payload)} bytes is shorter than {size}")


def _exact(payload: bytes, size: int, what: str) -> None:
    if len(payload) != size:
        raise SessionError(f"{what} frame of {len(payload)} bytes, want {size}")


def _nonzero(stream_id: int, what: str) -> None:
    if stream_id == 0:
        raise SessionError(f"{what} on stream 0")


# ----------------------------------------------------------------------- session


@dataclass(frozen=True)
class StreamOpened:
    """The peer opened a stream; answer with `reply` (accept) or `reset` (refuse)."""
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True)
class DataReceived:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamEnded:
    """The peer half-closed the stream: it sends no more data on it."""
    stream_id: int


@dataclass(frozen=True)
class StreamReset:
    stream_id: int
    status: int


@dataclass(frozen=True)
class SessionEnded:
    """The session is over: we sent GOAWAY after a bad frame."""
    reason: str


@dataclass(frozen=True)
class GoneAway:
    """The peer sent GOAWAY: it opens no more streams, the open ones run to their end and
    then the connection closes (spdystream's shutdown after a GOAWAY)."""
    last_good_stream_id: int


Event = StreamOpened | DataReceived | StreamEnded | StreamReset | SessionEnded | GoneAway


@dataclass
class _Stream:
    remote_open: bool = True
    local_open: bool = True


@dataclass
class ServerSession:
    """The server end of a SPDY/3.1 session, as spdystream's Connection with server=true:
    the client opens odd-numbered streams; server PINGs would be even, so an odd PING is
    the client's and is echoed."""

    streams: dict[int, _Stream] = field(default_factory=dict)
    next_remote_id: int = 1
    gone_away: bool = False
    _decoder: FrameDecoder = field(default_factory=FrameDecoder)
    _encoder: FrameEncoder = field(default_factory=FrameEncoder)
    _out: list[bytes] = field(default_factory=list)

    def receive(self, data: bytes) -> list[Event]:
        failure = None
        try:
            frames = self._decoder.feed(data)
        except SessionError as err:
            frames, failure = err.frames_before, err
        events: list[Event] = []
        for frame in frames:
            events += self._on_frame(frame)
        if failure is not None:
            self.go_away(GOAWAY_PROTOCOL_ERROR)
            events.append(SessionEnded(f"protocol error: {failure}"))
        return events

    def data_to_send(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def reply(self, stream_id: int) -> None:
        if stream_id in self.streams:
            self._send(SynReply(stream_id, {}))

    def reset(self, stream_id: int, status: int = CANCEL) -> None:
        if self.streams.pop(stream_id, None) is not None:
            self._send(RstStream(stream_id, status))

    def send_data(self, stream_id: int, data: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            return
        for start in range(0, len(data), DATA_CHUNK):
            self._send(Data(stream_id, data[start:start + DATA_CHUNK]))

    def finish(self, stream_id: int) -> None:
        """Half-close our side of the stream (spdystream's Stream.Close: an empty FIN)."""
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            return
        stream.local_open = False
        self._send(Data(stream_id, b"", fin=True))
        self._forget_if_closed(stream_id, stream)

    def go_away(self, status: int = GOAWAY_OK) -> None:
        if self.gone_away:
            return
        self.gone_away = True
        self._send(GoAway(max(self.next_remote_id - 2, 0), status))

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self.streams

    def _send(self, frame: Frame) -> None:
        self._out.append(self._encoder.encode(frame))

    def _on_frame(self, frame: Frame) -> list[Event]:
        if isinstance(frame, SynStream):
            return self._on_syn_stream(frame)
        if isinstance(frame, Data):
            return self._on_data(frame.stream_id, frame.data, frame.fin)
        if isinstance(frame, HeadersFrame):
            return self._on_data(frame.stream_id, b"", frame.fin)
        if isinstance(frame, RstStream):
            if self.streams.pop(frame.stream_id, None) is None:
                return []
            return [StreamReset(frame.stream_id, frame.status)]
        if isinstance(frame, Ping):
            if frame.ping_id & 1:
                self._send(frame)
            return []
        if isinstance(frame, GoAway):
            self.gone_away = True
            return [GoneAway(frame.last_good_stream_id)]
        # SETTINGS, WINDOW_UPDATE and SYN_REPLY (we open no streams) need nothing.
        return []

    def _on_syn_stream(self, frame: SynStream) -> list[Event]:
        if self.gone_away:
            return []
        if frame.stream_id < self.next_remote_id:
            self._send(RstStream(frame.stream_id, PROTOCOL_ERROR))
            return []
        self.next_remote_id = frame.stream_id + 2
        self.streams[frame.stream_id] = _Stream(remote_open=not frame.fin, local_open=not frame.unidirectional)
        events: list[Event] = [StreamOpened(frame.stream_id, frame.headers, frame.fin)]
        if frame.fin:
            events.append(StreamEnded(frame.stream_id))
        return events

    def _on_data(self, stream_id: int, data: bytes, fin: bool) -> list[Event]:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.remote_open:
            return []
        events: list[Event] = [DataReceived(stream_id, data)] if data else []
        if fin:
            stream.remote_open = False
            events.append(StreamEnded(stream_id))
            self._forget_if_closed(stream_id, stream)
        return events

    def _forget_if_closed(self, stream_id: int, stream: _Stream) -> None:
        if not stream.remote_open and not stream.local_open:
            del self.streams[stream_id]


def header_value(headers: Mapping[str, Sequence[str]], name: str) -> str:
    """The first value of a header, "" when absent (Go's http.Header.Get)."""
    values = headers.get(name.lower()) or [""]
    return values[0]
