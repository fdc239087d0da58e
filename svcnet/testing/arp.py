"""FakeArpSocket: svcnet.kernel.arp.ArpSocket's interface without a network, for speaker tests.

Frames a test `inject`s are what `receive` returns; frames the code `send`s pile up in `sent`.
A socketpair gives it a real file descriptor, so an event loop's add_reader wakes on inject.
"""
from __future__ import annotations

import contextlib
import socket

from svcnet.core.arp import mac_text


class FakeArpSocket:
    def __init__(self, netns: str, interface: str, mac: str = "0a:58:c0:a8:00:6b") -> None:
        self.netns = netns
        self.interface = interface
        self.mac = bytes(int(part, 16) for part in mac.split(":"))
        self.sent: list[bytes] = []
        self._waiting: list[bytes] = []
        self._wake, self._reader = socket.socketpair()
        self._reader.setblocking(False)

    @property
    def mac_text(self) -> str:
        return mac_text(self.mac)

    def fileno(self) -> int:
        return self._reader.fileno()

    def inject(self, frame: bytes) -> None:
        self._waiting.append(frame)
        self._wake.send(b"!")

    def receive(self) -> list[bytes]:
        with contextlib.suppress(BlockingIOError):
            self._reader.recv(4096)
        frames, self._waiting = self._waiting, []
        return frames

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def close(self) -> None:
        self._wake.close()
        self._reader.close()
