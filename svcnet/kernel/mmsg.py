"""recvmmsg/sendmmsg through ctypes: batches of datagrams in one system call each way (Linux).

Python 3.11's socket module has neither call; the DNS server's UDP transport uses this adapter
when the platform has them and falls back to recvfrom/sendto when `MmsgBatch.create` says no.
"""
from __future__ import annotations

import ctypes
import mmap
import socket
import sys


class MmsgBatch:
    """recvmmsg/sendmmsg through ctypes: one system call for a batch of datagrams each way (Linux).

    Slot i has a receive buffer, a sockaddr and a send buffer, all fixed at creation:
    reply i goes to the address query i came from, as two pieces (the query's ID, read
    in place from the receive buffer, and the rest of the reply written to the send
    buffer), so the hot path only writes the reply body and its length. Buffers are
    anonymous mappings of 64 KiB a slot (any datagram fits); pages never written to
    are never allocated.
    """

    SLOT = 65536
    NAME = 128  # sizeof(struct sockaddr_storage)

    def __init__(self, sock: socket.socket, size: int, libc: ctypes.CDLL) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.size = size
        self.slot_size = self.SLOT - 2
        self._recvmmsg = libc.recvmmsg
        self._recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        self._recvmmsg.restype = ctypes.c_int
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._sendmmsg.restype = ctypes.c_int
        self._rmap = mmap.mmap(-1, size * self.SLOT)
        self._smap = mmap.mmap(-1, size * self.SLOT)
        rbase = ctypes.addressof(ctypes.c_char.from_buffer(self._rmap))
        sbase = ctypes.addressof(ctypes.c_char.from_buffer(self._smap))
        self._names = ctypes.create_string_buffer(size * self.NAME)
        nbase = ctypes.addressof(self._names)
        self._riov = (_IoVec * size)()
        self._siov = (_IoVec * (2 * size))()
        self._rmsgs = (_MMsgHdr * size)()
        self._smsgs = (_MMsgHdr * size)()
        name_len = 28 if sock.family == socket.AF_INET6 else 16  # sockaddr_in6 / sockaddr_in
        for i in range(size):
            self._riov[i].iov_base = rbase + i * self.SLOT
            self._riov[i].iov_len = self.SLOT
            recv = self._rmsgs[i].msg_hdr
            recv.msg_name = nbase + i * self.NAME
            recv.msg_namelen = self.NAME
            recv.msg_iov = ctypes.addressof(self._riov[i])
            recv.msg_iovlen = 1
            self._siov[2 * i].iov_base = rbase + i * self.SLOT  # the query's ID, in place
            self._siov[2 * i].iov_len = 2
            self._siov[2 * i + 1].iov_base = sbase + i * self.SLOT + 2
            send = self._smsgs[i].msg_hdr
            send.msg_name = nbase + i * self.NAME
            send.msg_namelen = name_len
            send.msg_iov = ctypes.addressof(self._siov[2 * i])
            send.msg_iovlen = 2
        self._rp = ctypes.addressof(self._rmsgs)
        self._sp = ctypes.addressof(self._smsgs)
        self._msg_size = ctypes.sizeof(_MMsgHdr)
        # Hot-path views: datagram bytes, the reply bodies, msg_len of each received message,
        # iov_len of each reply body. The reply body of slot i sits at the same offset as its query.
        self.rview = memoryview(self._rmap)
        self.sview = memoryview(self._smap)[2:]
        self.lengths = memoryview(self._rmsgs).cast("B").cast("I")
        size_t = {4: "I", 8: "Q"}[ctypes.sizeof(ctypes.c_size_t)]
        self.send_sizes = memoryview(self._siov).cast("B").cast(size_t)
        len_at = _MMsgHdr.msg_len.offset
        iov_len_at = _IoVec.iov_len.offset
        self.slots = [(i, i * self.SLOT, (i * self._msg_size + len_at) // 4,
                       ((2 * i + 1) * ctypes.sizeof(_IoVec) + iov_len_at) // ctypes.sizeof(ctypes.c_size_t))
                      for i in range(size)]

    @classmethod
    def create(cls, sock: socket.socket, size: int) -> MmsgBatch | None:
        """A batch adapter for sock, or None where recvmmsg/sendmmsg are not available."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if not (hasattr(libc, "recvmmsg") and hasattr(libc, "sendmmsg")):
                return None
            return cls(sock, size, libc)
        except (OSError, AttributeError, ValueError, KeyError):
            return None

    def recv(self) -> int:
        """Datagrams waiting, up to size, without blocking; 0 when none (or an error)."""
        # The kernel writes each address's length back into msg_namelen (16 or 28): the room for
        # the next datagram from a socket of the same family, so nothing needs resetting.
        return max(0, self._recvmmsg(self.fd, self._rp, self.size, socket.MSG_DONTWAIT, None))

    def send(self, count: int, skipped: list[int]) -> None:
        """Send replies 0..count-1 but the skipped ones; a reply the kernel refuses is dropped."""
        start = 0
        for stop in [*skipped, count]:
            while start < stop:
                sent = self._sendmmsg(self.fd, self._sp + start * self._msg_size, stop - start, 0)
                start += sent if sent > 0 else 1  # skip the datagram that failed (as sendto errors are)
            start = stop + 1

    def put(self, index: int, body: bytes) -> None:
        """Reply body (all but the ID) for slot index."""
        _, offset, _, size_at = self.slots[index]
        self.sview[offset:offset + len(body)] = body
        self.send_sizes[size_at] = len(body)

    def address(self, index: int) -> tuple:
        """Slot index's peer as socket.sendto takes it."""
        raw = bytes(self._names[index * self.NAME:(index + 1) * self.NAME])
        port = int.from_bytes(raw[2:4], "big")
        if self.sock.family == socket.AF_INET6:
            return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, int.from_bytes(raw[4:8], "big"),
                    int.from_bytes(raw[24:28], sys.byteorder))
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]
