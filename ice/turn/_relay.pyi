"""Types of the compiled TURN relay data path (ice/turn/_relay.pyx); see its module doc."""

from typing import Any

from ice.turn._allocation import AllocationTable

Address = tuple[str, int]

class RelayPump:
    """Forwards ChannelData between clients and peers for one `AllocationTable`."""

    @property
    def to_peers(self) -> dict[Address, list[tuple[bytes, Address]]]: ...
    @property
    def to_clients(self) -> dict[Address, list[tuple[bytes, Address]]]: ...
    @property
    def forwarded(self) -> int:
        """Datagrams relayed by the pump (either way) since it was made."""

    def __init__(self, table: AllocationTable, *, rfc5766_channels: bool = True) -> None: ...
    def from_clients(
        self, datagrams: list[tuple[bytes, Address]], local: Address, now: float
    ) -> list[tuple[bytes, Address]]: ...
    def from_relays(
        self, ready: list[tuple[Any, list[tuple[bytes, Address]]]], start: int, now: float
    ) -> tuple[int, Any, list[tuple[bytes, Address]] | None]: ...
    def from_peers(
        self, datagrams: list[tuple[bytes, Address]], relay: Address, now: float
    ) -> list[tuple[bytes, Address]]: ...
