"""Types of the compiled batched UDP I/O (ice/aio/_udpio.pyx); see its module doc."""

import socket as _socket
from collections.abc import Sequence
from typing import Any

from _typeshed import ReadableBuffer

#: True where recvmmsg/sendmmsg exist (Linux); elsewhere BatchSocket loops.
HAVE_MMSG: bool
#: True where `ReadySet` works (Linux, with recvmmsg/sendmmsg).
HAVE_READY_SET: bool

class BatchSocket:
    """A UDP socket read and written ``batch`` datagrams per system call."""

    @property
    def socket(self) -> _socket.socket:
        """The wrapped socket (not owned: closing it is the caller's job)."""

    def __init__(
        self,
        sock: _socket.socket,
        batch: int = 64,
        max_size: int = 65535,
        *,
        mmsg: bool = True,
        send_batch: int | None = None,
        gso: bool = False,
    ) -> None: ...
    @property
    def fileno(self) -> int:
        """The socket's file descriptor (-1 once it is closed)."""

    @property
    def batch(self) -> int: ...
    @property
    def max_size(self) -> int: ...
    @property
    def mmsg(self) -> bool:
        """True while recvmmsg/sendmmsg are used (False: recvfrom/sendto loops)."""

    @property
    def gso(self) -> bool:
        """True while runs of datagrams to one address go out as one UDP GSO send."""

    @property
    def gso_max(self) -> int:
        """The longest datagram still sent in GSO runs (0: none)."""

    @property
    def gso_sent(self) -> int:
        """Datagrams that went out inside GSO runs."""

    @property
    def dropped(self) -> int:
        """Datagrams send/sendto dropped (refused by the kernel, or a full buffer)."""

    def recv(self, limit: int = 0) -> list[tuple[bytes, tuple[str, int]]]:
        """Up to ``batch`` waiting datagrams (up to ``limit`` while full batches come);
        [] when none is waiting. Never blocks."""

    def send(self, items: Sequence[tuple[ReadableBuffer, tuple[str, int]]]) -> int:
        """Send the datagrams; how many the kernel took (the rest count in dropped)."""

    def sendto(self, data: ReadableBuffer, addr: tuple[str, int]) -> bool:
        """Send one datagram; False when it was dropped. Never blocks."""

def send_queues(queues: dict[Any, Any], senders: dict[Any, Any]) -> int:
    """Send each queue with the sender of its key (one with ``send``), then clear them."""

class ReadySet:
    """Many BatchSockets read through one file descriptor (an epoll set; Linux)."""

    def __init__(self, max_events: int = 256) -> None: ...
    @property
    def fileno(self) -> int:
        """The epoll descriptor: readable while a member is (-1 once closed)."""

    def __len__(self) -> int: ...
    def add(self, bsock: BatchSocket, token: object) -> None:
        """Read ``bsock`` through this set; its datagrams come back with ``token``."""

    def discard(self, bsock: BatchSocket) -> None:
        """Stop reading ``bsock`` (call it before closing the socket)."""

    def recv(self, limit: int = 0) -> list[tuple[Any, list[tuple[bytes, tuple[str, int]]]]]:
        """``[(token, datagrams)]`` for the members with datagrams waiting now."""

    def close(self) -> None:
        """Forget every member and close the epoll descriptor (not the sockets)."""
