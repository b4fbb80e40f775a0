"""coturn's turnutils_stunclient against ``python -m ice server`` (UDP).

turnutils_stunclient (coturn 4.6) sends a Binding request and prints the
XOR-MAPPED-ADDRESS as "UDP reflexive addr: IP:PORT". When the answer carries
OTHER-ADDRESS (or with -f) it goes on with RFC 5780: a second request with
CHANGE-REQUEST (change IP and port) and RESPONSE-PORT = its port + 1, read on
a new socket bound to that port, and a third with CHANGE-REQUEST and 1,500
bytes of PADDING from that new socket; for each it prints RESPONSE-ORIGIN and
OTHER-ADDRESS. It waits forever for an answer, hence the timeouts here.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess

import pytest

from tests.cli.test_server import ServerExited, ice_server, stop_with
from tests.support.coturn import free_port, requires_coturn
from tests.support.loop import LOOPBACKS

STUNCLIENT = shutil.which("turnutils_stunclient")

pytestmark = [
    pytest.mark.interop,
    requires_coturn,
    pytest.mark.skipif(STUNCLIENT is None, reason="turnutils_stunclient is not installed"),
]

_REFLEXIVE = re.compile(r"UDP reflexive addr: (\S+):(\d+)")
_ORIGIN = re.compile(r"Response origin: : (\S+):(\d+)")
_OTHER = re.compile(r"Other addr: : (\S+):(\d+)")


def stunclient(*args: str) -> str:
    assert STUNCLIENT is not None
    done = subprocess.run(
        [STUNCLIENT, *args], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("host", LOOPBACKS)
def test_stunclient_gets_its_reflexive_address(host: str) -> None:
    listen = f"udp://[{host}]:0" if ":" in host else f"udp://{host}:0"
    with ice_server("--listen", listen, listeners=1) as server:
        _, port = server.address("udp")
        out = stunclient("-L", host, "-p", str(port), host)
        found = _REFLEXIVE.findall(out)
        assert found, out
        ip, client_port = found[0]
        assert ip == host and int(client_port) not in (0, port)
        assert "RFC 5780" not in out  # no OTHER-ADDRESS without --alternate
        assert "error" not in out.lower()
        assert stop_with(server, signal.SIGINT)[0] == 0


@pytest.mark.parametrize("force", [False, True])
def test_stunclient_rfc5780_change_request_and_response_port(force: bool) -> None:
    for attempt in range(5):  # free ports can be taken before the server binds them
        p1 = free_port("udp", "127.0.0.1")
        p2 = free_port("udp", "127.0.0.2")
        if p1 == p2:
            continue
        args = ["--listen", f"udp://127.0.0.1:{p1}", "--alternate", f"127.0.0.2:{p2}"]
        try:
            with ice_server(*args, listeners=4) as server:
                assert [addr for _, addr in server.addresses] == [
                    ("127.0.0.1", p1),  # the primary, then the three others of RFC 5780
                    ("127.0.0.1", p2),
                    ("127.0.0.2", p1),
                    ("127.0.0.2", p2),
                ]
                flags = ["-f"] if force else []
                out = stunclient(*flags, "-L", "127.0.0.1", "-p", str(p1), "127.0.0.1")
                assert stop_with(server, signal.SIGINT)[0] == 0
        except ServerExited as exc:
            if "cannot bind" in exc.stderr and attempt < 4:
                continue
            raise
        break

    blocks = out.split("RFC 5780 response")[1:]
    assert len(blocks) == 3, out
    first, changed, padded = blocks
    # The plain request: answered from where it went, pointing at the other pair.
    assert ("127.0.0.1", str(p1)) in _ORIGIN.findall(first)
    assert _OTHER.findall(first) == [("127.0.0.2", str(p2))]
    (reflexive,) = _REFLEXIVE.findall(first)
    assert reflexive[0] == "127.0.0.1"
    # CHANGE-REQUEST (IP and port) + RESPONSE-PORT: from the other pair, and it
    # arrived at all, on the client's port + 1.
    assert _ORIGIN.findall(changed) == [("127.0.0.2", str(p2))]
    assert _REFLEXIVE.findall(changed) == [reflexive]
    # CHANGE-REQUEST with PADDING, sent from the port + 1 socket.
    assert _ORIGIN.findall(padded) == [("127.0.0.2", str(p2))]
    assert _REFLEXIVE.findall(padded) == [("127.0.0.1", str(int(reflexive[1]) + 1))]
