"""A small SPDY/3.1 client for tests, written apart from svcnet.core.spdy so the two check
each other: it builds and reads frames with struct and zlib straight from the draft, and
plays client-go's port-forward side (an error stream, then a data stream, per connection).
"""
from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# The draft's dictionary, pinned by the digest every SPDY implementation agrees on
# (1423 bytes, ending "enq=0."); the test module checks the production constant against it.
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
DICTIONARY_LENGTH = 1423


def control(kind: int, flags: int, payload: bytes, version: int = 3) -> bytes:
    return struct.pack("!HHI", 0x8000 | version, kind, (flags << 24) | len(payload)) + payload


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    return struct.pack("!II", stream_id, ((1 if fin else 0) << 24) | len(payload)) + payload


def name_values(pairs: dict[str, str]) -> bytes:
    out = struct.pack("!I", len(pairs))
    for name, value in pairs.items():
        out += struct.pack("!I", len(name)) + name.encode() + struct.pack("!I", len(value)) + value.encode()
    return out


@dataclass
class ClientCodec:
    dictionary: bytes
    compressor: object = None
    decompressor: object = None

    def __post_init__(self) -> None:
        assert len(self.dictionary) == DICTIONARY_LENGTH
        assert hashlib.sha256(self.dictionary).hexdigest() == DICTIONARY_SHA256
        self.compressor = zlib.compressobj(9, zdict=self.dictionary)
        self.decompressor = zlib.decompressobj(zdict=self.dictionary)

    def compress(self, raw_block: bytes) -> bytes:
        return self.compressor.compress(raw_block) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
        payload = struct.pack("!IIBB", stream_id, 0, 0, 0) + self.compress(name_values(headers))
        return control(1, 1 if fin else 0, payload)

    def headers_of(self, compressed: bytes) -> dict[str, str]:
        block = self.decompressor.decompress(compressed)
        (count,), pos, out = struct.unpack_from("!I", block), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from("!I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from("!I", block, pos)
            out[name] = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out


@dataclass
class Received:
    """A frame as the client reads it: kind is "data" or the control type number."""
    kind: str | int
    stream_id: int
    flags: int
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FrameReader:
    def __init__(self, codec: ClientCodec) -> None:
        self.codec = codec
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[Received]:
        self.buffer += chunk
        frames = []
        while len(self.buffer) >= 8:
            first, second = struct.unpack_from("!II", self.buffer)
            length = second & 0xFFFFFF
            if len(self.buffer) < 8 + length:
                break
            payload, self.buffer = self.buffer[8:8 + length], self.buffer[8 + length:]
            frames.append(self._frame(first, second >> 24, payload))
        return frames

    def _frame(self, first: int, flags: int, payload: bytes) -> Received:
        if not first & 0x80000000:
            return Received("data", first, flags, payload)
        kind = first & 0xFFFF
        stream_id = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF if len(payload) >= 4 else 0
        headers = self.codec.headers_of(payload[4:]) if kind in (2, 8) else {}
        return Received(kind, stream_id, flags, payload, headers)


class PortForwardClient:
    """client-go's port-forward over any byte pipe: `send` writes bytes, `recv` reads them."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], recv: Callable[[], Awaitable[bytes]],
                 dictionary: bytes, close: Callable[[], object] = lambda: None) -> None:
        self.send, self.recv, self.close = send, recv, close
        self.codec = ClientCodec(dictionary)
        self.reader = FrameReader(self.codec)
        self.frames: list[Received] = []
        self.next_id = 1
        self.closed = False

    async def pump(self) -> None:
        """Read frames into self.frames until the server closes."""
        while chunk := await self.recv():
            self.frames += self.reader.feed(chunk)
        self.closed = True

    async def open_pair(self, port: int, request_id: str) -> tuple[int, int]:
        """An error stream (half-closed at once, as client-go does) and a data stream."""
        error_id, data_id = self.next_id, self.next_id + 2
        self.next_id += 4
        common = {"port": str(port), "requestid": request_id}
        await self.send(self.codec.syn_stream(error_id, {"streamtype": "error", **common}))
        await self.send(data(error_id, b"", fin=True))
        await self.send(self.codec.syn_stream(data_id, {"streamtype": "data", **common}))
        return error_id, data_id

    def received(self, stream_id: int) -> bytes:
        return b"".join(f.payload for f in self.frames if f.kind == "data" and f.stream_id == stream_id)

    def finished(self, stream_id: int) -> bool:
        return any(f.kind == "data" and f.stream_id == stream_id and f.flags & 1 for f in self.frames)

    def of_kind(self, kind: int, stream_id: int | None = None) -> list[Received]:
        return [f for f in self.frames if f.kind == kind and (stream_id is None or f.stream_id == stream_id)]


async def spdy_upgrade(host: str, port: int, path: str, protocols: tuple[str, ...] = ("portforward.k8s.io",),
                       ) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send kubectl's SPDY upgrade request; returns the response head and the open pipe."""
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: SPDY/3.1"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return head.decode("latin-1"), reader, writer
