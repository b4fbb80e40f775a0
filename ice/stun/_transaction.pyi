"""Types of the compiled transaction table (ice/stun/_transaction.pyx); see ice.stun.transaction."""

from ice._codec import IntegrityKey, Message
from ice.machine import Address, Transmit
from ice.stun.transaction import TransactionEvent

class TransactionTable:
    """Outstanding client transactions, their retransmissions and their outcomes."""

    def __init__(
        self,
        *,
        rto: float = 0.5,
        min_rto: float = 0.5,
        max_rto: float = 60.0,
        rc: int = 7,
        rm: int = 16,
        max_in_flight: int = 10,
    ) -> None: ...
    def start(
        self,
        request: Message,
        addr: Address,
        now: float,
        *,
        key: bytes | IntegrityKey | None = None,
        reliable: bool = False,
        source: Address | None = None,
    ) -> bytes: ...
    def rto_for(self, addr: Address) -> float: ...
    def cancel(self, transaction_id: bytes) -> bool: ...
    def stop_retransmitting(self, transaction_id: bytes) -> bool: ...
    def __len__(self) -> int: ...
    @property
    def _deadlines(self) -> list[tuple[float, bytes]]: ...
    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> bool: ...
    def receive_message(
        self, response: Message, addr: Address, now: float, *, local: Address | None = None
    ) -> bool: ...
    def datagrams_to_send(self, now: float) -> list[Transmit]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_event(self) -> TransactionEvent | None: ...
