"""A raw ARP socket on one interface of a namespace (AF_PACKET, ETH_P_ARP): what the
LoadBalancer speaker answers ARP with and sends gratuitous ARP from.

The socket is made from a thread that joined the namespace (svcnet.kernel.netns) and stays that
namespace's; it sees only ARP frames of the bound interface. Frames are built and parsed by
svcnet.core.arp. Needs CAP_NET_RAW (the agent runs as root).
"""
from __future__ import annotations

import socket

from svcnet.core.arp import ETH_P_ARP, mac_text
from svcnet.kernel.netns import run_in_netns


class ArpSocket:
    """A non-blocking AF_PACKET socket bound to `interface` in namespace `netns`."""

    ethertype = ETH_P_ARP  # the frames it sees (svcnet.kernel.ndp's subclass: IPv6)

    def __init__(self, netns: str, interface: str) -> None:
        self.netns = netns
        self.interface = interface
        ethertype = self.ethertype

        def open_bound() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
            try:
                self.prepare(sock)
                sock.bind((interface, ethertype))
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock

        self.sock: socket.socket = run_in_netns(netns, open_bound)
        # After bind, the socket's address carries the interface's hardware address.
        self.mac: bytes = self.sock.getsockname()[4]

    def prepare(self, sock: socket.socket) -> None:
        """Set the socket up before it is bound (nothing for ARP)."""

    @property
    def mac_text(self) -> str:
        return mac_text(self.mac)

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> list[bytes]:
        """Every frame waiting (none when nothing is)."""
        frames = []
        while True:
            try:
                data, address = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return frames
            if address[2] != socket.PACKET_OUTGOING:  # not our own frames looped back
                frames.append(data)

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def close(self) -> None:
        self.sock.close()
