"""Helpers more than one command uses: failure explanations, percentiles, and the
server discovery options (--dns, --verbose)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import ssl
import sys
from collections.abc import Iterator

from ice._errors import StunError, StunTimeoutError, TurnError


def describe(exc: BaseException, timeout: float) -> str:
    """A one-line explanation of why the query failed."""
    if isinstance(exc, StunTimeoutError | TimeoutError):
        return f"no response within {timeout:g} s"
    if isinstance(exc, StunError):
        return f"the server answered with error {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if not exc.filename else f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def turn_failure(exc: TurnError) -> str:
    """A one-line explanation of a TurnError, with a hint for the common ones."""
    if exc.code == 0:
        return exc.reason or "no answer"
    text = f"the server answered with error {exc}"
    if exc.code == 403:
        text += ": the server does not relay to that peer (coturn: --allow-loopback-peers)"
    elif exc.code == 440:
        text += " (the server has no relay address of that family)"
    return text


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


#: The loggers that say which server was picked and why (`ice.aio.resolve`), and
#: why one was left for the next.
DISCOVERY_LOGGERS = ("ice.aio.resolve", "ice.aio.stun_client", "ice.aio.turn_client")


def add_dns_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dns",
        metavar="HOST:PORT",
        help="the DNS server for SRV and A/AAAA lookups (port 53 if left out; "
        "default: the system's). SRV is looked up for a host name without a port",
    )


@contextlib.contextmanager
def show_discovery(command: str, verbose: bool) -> Iterator[None]:
    """With ``verbose``, print the discovery loggers' lines (which target and why,
    failures) on stderr while in the block; the loggers are restored after it."""
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"python -m ice {command}: %(message)s"))
    loggers = [logging.getLogger(name) for name in DISCOVERY_LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not twice when the root logger prints too
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
