"""Types of the load generator's compiled data path (ice/_load/_pump.pyx); see its doc."""

from _typeshed import ReadableBuffer as Buffer

from ice._load.packets import LoadStats

#: True where `Pump` works (Linux with recvmmsg/sendmmsg and epoll).
HAVE_PUMP: bool

class Pump:
    """The flows of one run behind one epoll descriptor."""

    def __init__(
        self,
        stats: LoadStats,
        *,
        window: int,
        rate: float,
        batch: int,
        timeout: float,
        gro: bool = False,
        gso: bool = False,
    ) -> None:
        """``gro``: every member socket reads with UDP GRO where the kernel has it, and a
        coalesced run is taken apart (an echoing peer sends it back as one GSO send).
        ``gso``: what a flow's window lets go leaves as UDP GSO sends (one by one from
        the first the kernel refuses on)."""
    @property
    def fileno(self) -> int:
        """The epoll descriptor: readable while a member socket is (-1 once closed)."""

    @property
    def flows(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def stray(self) -> int: ...
    @property
    def relayed(self) -> int:
        """Datagrams read at the far ends of TURN flows (peers and echoed frames)."""

    @property
    def dropped(self) -> int:
        """Packets the kernel would not take from the flows' sockets."""

    @property
    def gso_sent(self) -> int:
        """Packets that went out inside UDP GSO sends."""

    @property
    def gro_sockets(self) -> int:
        """Member sockets reading with UDP GRO (0 without ``gro`` or before Linux 5.0)."""

    def outstanding(self, flow: int) -> int: ...
    def add_stun(self, fd: int, packet: Buffer) -> int: ...
    def add_client(self, fd: int, packet: Buffer, echo: bool) -> int: ...
    def add_peer(self, fd: int, flow: int) -> None: ...
    def add_echo(self, fd: int) -> None: ...
    def start(self, now: float) -> None: ...
    def stop(self) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...
    def tick(self) -> None: ...
    def poll(self) -> list[tuple[int, list[bytes]]]: ...
