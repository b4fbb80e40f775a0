"""The server's TOML config loader (``python -m ice server --config FILE``).

    python fuzz/fuzz_config.py -atheris_runs=1000000

Contract: `ServerConfig.from_toml` on any file raises only `ConfigError`,
and a config it accepts builds its listeners and server core (`build`)
without anything but `ConfigError`. Nothing is bound: no sockets are made.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import _runner
from _runner import instrument_func, main

with _runner.instrument_imports():
    from ice._cli.server_config import ConfigError, ServerConfig

# /dev/shm: opening a file on an overlay /tmp costs ~1 ms, 20x the parse
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
DIRECTORY = tempfile.mkdtemp(prefix="fuzz-config-", dir=SCRATCH)
atexit.register(shutil.rmtree, DIRECTORY, True)
PATH = os.path.join(DIRECTORY, "server.toml")


@instrument_func
def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        config = ServerConfig.from_toml(PATH)
        config.listeners()
        config.effective_relay_ips()
    except ConfigError:
        return


def seeds() -> list[bytes]:
    from ice._cli import server_config

    example = server_config.__doc__.split("::", 1)[1].split("`ServerConfig.build`", 1)[0]
    lines = [line[4:] for line in example.splitlines() if line.startswith("    ")]
    return [
        "\n".join(lines).encode(),
        b'realm = "x"\nusers = { a = "b" }\nrelay-ports = [50000, 50010]\n',
        b'listen = ["udp://[::1]:3478"]\nexternal-ip = { "::1" = "2001:db8::1" }\n',
        b'stun-only = true\nrfc5780-alternate = "127.0.0.2:3479"\nworkers = 0\n',
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
