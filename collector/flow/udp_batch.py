"""Receive many UDP datagrams per system call (Linux ``recvmmsg``), for the sFlow listener.

Why: Python's ``recvfrom`` releases and re-acquires the GIL for every datagram. While the
accounting thread computes, each re-acquisition can wait a whole switch interval (5 ms), so a
per-datagram receive loop slows to a crawl exactly when traffic is heaviest and the socket
overflows. One ``recvmmsg`` call takes up to ``batch`` datagrams with one GIL round trip, and also
saves the per-call overhead.

:class:`BatchReceiver` owns preallocated buffers; :meth:`BatchReceiver.receive` returns
``(payload, source address)`` pairs. Datagrams longer than ``max_datagram`` are reported as
truncated (counted by the caller, not decoded). The messages are unpacked into those pairs in C
(``_sflow_fast.unpack_mmsg``) when the extension is built: in Python it costs 0.6 µs more a datagram,
about a tenth of the receiver thread's cost. Where ``recvmmsg`` is missing (not Linux, no
libc), :func:`batch_receiver` returns None and the caller falls back to ``recvfrom``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
from collections.abc import Callable

import numpy as np

try:  # the per-datagram unpacking in C (collector/sflow/_sflow_fast.c); receive() has it in Python too
    from topfib.collector.sflow import _sflow_fast
except ImportError:
    _sflow_fast = None  # type: ignore[assignment]

_Unpack = Callable[[memoryview, int, dict[bytes, str]], tuple[list[tuple[bytes, str]], int]]
_unpack_mmsg: _Unpack | None = getattr(_sflow_fast, "unpack_mmsg", None)  # None: not built (or too old)

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_SOCKADDR_BYTES = 28  # sockaddr_in6, the larger of the two
# 32-bit word positions of the fields read back after each call (the headers viewed as uint32)
_HEADER_WORDS = ctypes.sizeof(_MMsgHdr) // 4
_NAMELEN_WORD = _MsgHdr.msg_namelen.offset // 4
_FLAGS_WORD = _MsgHdr.msg_flags.offset // 4
_LEN_WORD = _MMsgHdr.msg_len.offset // 4


def _load_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        function = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.POINTER(_MMsgHdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_RECVMMSG = _load_recvmmsg()


def _address(raw: bytes) -> str:
    """sockaddr_in / sockaddr_in6 bytes → address text."""
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return "?"


class BatchReceiver:
    """Up to ``batch`` datagrams per call from one non-blocking UDP socket."""

    def __init__(self, sock: socket.socket, batch: int = 256, max_datagram: int = 9216) -> None:
        assert _RECVMMSG is not None
        self._sock = sock
        self._batch = batch
        self._max_datagram = max_datagram
        self._buffer = ctypes.create_string_buffer(batch * max_datagram)
        self._names = ctypes.create_string_buffer(batch * _SOCKADDR_BYTES)
        self._iovecs = (_IoVec * batch)()
        self._headers = (_MMsgHdr * batch)()
        base = ctypes.addressof(self._buffer)
        names = ctypes.addressof(self._names)
        for i in range(batch):
            self._iovecs[i].iov_base = base + i * max_datagram
            self._iovecs[i].iov_len = max_datagram
            header = self._headers[i].msg_hdr
            header.msg_iov = ctypes.pointer(self._iovecs[i])
            header.msg_iovlen = 1
            header.msg_name = names + i * _SOCKADDR_BYTES
        self._view = memoryview(self._buffer).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        self._header_bytes = memoryview(self._headers).cast("B")
        # the same memory as self._headers, one row of 32-bit words per message
        self._words = np.frombuffer(self._header_bytes, np.uint32).reshape(batch, _HEADER_WORDS)
        self._words[:, _NAMELEN_WORD] = _SOCKADDR_BYTES
        self._address_cache: dict[bytes, str] = {}
        self.truncated = 0  # datagrams longer than max_datagram, dropped
        # the last call took fewer than ``batch``: the queue was empty then, no need to ask again
        self.emptied = False

    def receive(self) -> list[tuple[bytes, str]]:
        """What is queued now, up to ``batch`` datagrams; [] when nothing is. Raises OSError."""
        assert _RECVMMSG is not None
        count = _RECVMMSG(self._sock.fileno(), self._headers, self._batch, MSG_DONTWAIT, None)
        if count < 0:
            self.emptied = True
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return []
            raise OSError(code, os.strerror(code))
        self.emptied = count < self._batch
        cache = self._address_cache
        if len(cache) > 4096:  # bounded: sources may rotate their ports
            cache.clear()
        if _unpack_mmsg is not None:
            pairs, skipped = _unpack_mmsg(self._header_bytes, count, cache)
            self.truncated += skipped
            return pairs
        words = self._words[:count]
        lengths = words[:, _LEN_WORD].tolist()
        name_lengths = words[:, _NAMELEN_WORD].tolist()
        truncated = (words[:, _FLAGS_WORD] & MSG_TRUNC).tolist()
        words[:, _NAMELEN_WORD] = _SOCKADDR_BYTES  # the kernel wrote the actual lengths
        received: list[tuple[bytes, str]] = []
        view, names = self._view, self._names_view
        size = self._max_datagram
        for i in range(count):
            if truncated[i]:
                self.truncated += 1
                continue
            raw_name = bytes(names[i * _SOCKADDR_BYTES : i * _SOCKADDR_BYTES + name_lengths[i]])
            source = cache.get(raw_name)
            if source is None:
                source = cache[raw_name] = _address(raw_name)
            received.append((bytes(view[i * size : i * size + lengths[i]]), source))
        return received


def batch_receiver(sock: socket.socket, batch: int = 256, max_datagram: int = 9216) -> BatchReceiver | None:
    """A :class:`BatchReceiver` for ``sock``, or None where recvmmsg is unavailable."""
    if _RECVMMSG is None:
        return None
    return BatchReceiver(sock, batch, max_datagram)
