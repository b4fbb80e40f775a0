"""The TURN server's allocations: one table, its records, their relay rules.

`AllocationTable` is the one owner of a server's allocations (pion/turn's
``allocation.Manager``): by 5-tuple, by relayed address, and how many each
user holds; `TurnServer` files and deletes allocations through it and the
relay pump reads it. An `Allocation` keeps its relays, permissions,
channels (`Channel`), bandwidth budget (`TokenBucket`) and counters, and
the rules of the data path:

- `Allocation.permitted(ip, now)`: a live permission covers the peer's IP;
- `Allocation.live_channel(number, now)` / `live_channel_to(peer, now)`:
  a channel bound and not expired;
- `Allocation.relay_to(ip)`: the relayed address of the peer's family;
- `TokenBucket.take(size, now)`: room in the budget.

These are compiled (`ice.turn._allocation`, declared in its ``.pxd``) so
that the compiled relay pump (`ice.turn._relay.RelayPump`) calls the same
rules on the same fields as the server core, with no attribute looked up
by name; tests/turn/test_relay.py runs the data path's cases through both.
The bookkeeping around them (binding, conflicts, purging, deadlines) sits
with them, apart from the server core, so it can be read and tested on its
own. Times are the caller's monotonic clock; nothing here reads one.
"""

from __future__ import annotations

from ice.machine import Address
from ice.turn._allocation import (
    CHANNEL_COOLDOWN,
    CHANNEL_LIFETIME,
    PERMISSION_LIFETIME,
    Allocation,
    AllocationTable,
    Channel,
    TokenBucket,
)

__all__ = [
    "CHANNEL_COOLDOWN",
    "CHANNEL_LIFETIME",
    "PERMISSION_LIFETIME",
    "Allocation",
    "AllocationTable",
    "Channel",
    "FiveTuple",
    "TokenBucket",
]

#: (client address, server address it reached, over a stream?): the allocation's key.
FiveTuple = tuple[Address, Address, bool]
