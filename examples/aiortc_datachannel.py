"""Two aiortc peers on ice exchanging data-channel messages, like aiortc's datachannel-cli.

Run from the root of a clone after ``pip install '.[aiortc]'``. In one process,
both peers on 127.0.0.1 (what CI runs)::

    python examples/aiortc_datachannel.py --loopback

On two terminals (or two machines), with copy-and-paste signalling: start the
offerer, paste the JSON line it prints into the answerer, then paste the
answerer's JSON line back into the offerer::

    python examples/aiortc_datachannel.py offer
    python examples/aiortc_datachannel.py answer

The offerer opens a data channel "chat" and sends ``ping N`` messages
(``--count``, one a ``--interval``); the answerer answers each with ``pong N``;
the offerer prints each round-trip time, then the ICE candidate pair in use,
and hangs up. ``--no-stun`` leaves out aiortc's default STUN server (Google's;
without internet access, gathering would wait for it), ``--ip`` keeps host
candidates to the given local addresses (``--ip 127.0.0.1`` for two terminals
on one machine).

The only ice-specific line is ``ice.aiortc.install(...)`` before any
negotiation: from then on every ICE transport aiortc makes runs on
``ice.Connection`` instead of aioice's, and everything else is plain aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.signaling import CopyAndPasteSignaling

import ice.aiortc


def say(text: str) -> None:
    # stderr: stdout carries the signalling messages in copy-and-paste mode
    print(text, file=sys.stderr, flush=True)


def configuration(args: argparse.Namespace) -> RTCConfiguration:
    if args.loopback or args.no_stun:
        return RTCConfiguration(iceServers=[])
    return RTCConfiguration(iceServers=[RTCIceServer(urls=args.stun)])


def describe_pair(pc: RTCPeerConnection) -> str:
    # aiortc's ICE transport keeps its connection in _connection: with the
    # switch on it is an ice.Connection, with its selected pair and stats.
    connection = pc.sctp.transport.transport._connection
    pair = connection.selected_pair()
    if pair is None:
        return f"{type(connection).__module__}.{type(connection).__qualname__}: no pair selected"
    local, remote = pair.local, pair.remote
    return (
        f"ICE: {type(connection).__module__}.{type(connection).__name__},"
        f" selected pair {local.type} {local.host}:{local.port}"
        f" -> {remote.type} {remote.host}:{remote.port} ({local.transport})"
    )


async def ping(channel: RTCDataChannel, count: int, interval: float) -> list[float]:
    """Send ``ping N`` ``count`` times; return each round-trip time in ms."""
    pongs: asyncio.Queue[str] = asyncio.Queue()
    channel.on("message", pongs.put_nowait)
    rtts = []
    for n in range(1, count + 1):
        sent = time.perf_counter()
        channel.send(f"ping {n}")
        reply = await asyncio.wait_for(pongs.get(), 10)
        rtt = (time.perf_counter() - sent) * 1000
        if reply != f"pong {n}":
            raise RuntimeError(f"expected pong {n}, got {reply!r}")
        say(f"< {reply} ({rtt:.2f} ms)")
        rtts.append(rtt)
        await asyncio.sleep(interval)
    return rtts


def answer_pings(pc: RTCPeerConnection) -> asyncio.Future[None]:
    """Answer every ``ping N`` with ``pong N``; done when the channel closes."""
    closed = asyncio.get_running_loop().create_future()

    @pc.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        say(f"channel {channel.label!r} opened by the remote peer")

        @channel.on("message")
        def on_message(message: Any) -> None:
            if isinstance(message, str) and message.startswith("ping "):
                say(f"> {message}")
                channel.send("pong " + message[5:])

        channel.on("close", lambda: closed.done() or closed.set_result(None))

    return closed


async def run_loopback(args: argparse.Namespace) -> None:
    offerer = RTCPeerConnection(configuration(args))
    answerer = RTCPeerConnection(configuration(args))
    try:
        answered = answer_pings(answerer)
        channel = offerer.createDataChannel("chat")
        opened = asyncio.get_running_loop().create_future()
        channel.on("open", lambda: opened.set_result(None))

        # The signalling a real application does over its own channel.
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        await asyncio.wait_for(opened, 20)
        say("channel 'chat' open")

        rtts = await ping(channel, args.count, args.interval)
        say(describe_pair(offerer))
        print(f"{len(rtts)} pings answered, median rtt {sorted(rtts)[len(rtts) // 2]:.2f} ms")
        channel.close()
        await asyncio.wait_for(answered, 10)
    finally:
        await offerer.close()
        await answerer.close()


async def run_offer(pc: RTCPeerConnection, signaling: CopyAndPasteSignaling, args: Any) -> None:
    channel = pc.createDataChannel("chat")
    opened = asyncio.get_running_loop().create_future()
    channel.on("open", lambda: opened.set_result(None))
    await pc.setLocalDescription(await pc.createOffer())
    await signaling.send(pc.localDescription)  # the offer, with every candidate in it
    answer = await signaling.receive()
    if not isinstance(answer, RTCSessionDescription) or answer.type != "answer":
        raise RuntimeError(f"expected an answer, got {answer!r}")
    await pc.setRemoteDescription(answer)
    await asyncio.wait_for(opened, 30)
    say("channel 'chat' open")
    rtts = await ping(channel, args.count, args.interval)
    say(describe_pair(pc))
    print(f"{len(rtts)} pings answered, median rtt {sorted(rtts)[len(rtts) // 2]:.2f} ms")
    channel.close()


async def run_answer(pc: RTCPeerConnection, signaling: CopyAndPasteSignaling, args: Any) -> None:
    closed = answer_pings(pc)
    offer = await signaling.receive()
    if not isinstance(offer, RTCSessionDescription) or offer.type != "offer":
        raise RuntimeError(f"expected an offer, got {offer!r}")
    await pc.setRemoteDescription(offer)
    await pc.setLocalDescription(await pc.createAnswer())
    await signaling.send(pc.localDescription)
    await closed
    say(describe_pair(pc))
    print("the remote peer closed the channel")


async def run_signalled(args: argparse.Namespace) -> None:
    signaling = CopyAndPasteSignaling()
    pc = RTCPeerConnection(configuration(args))
    await signaling.connect()
    try:
        await (run_offer if args.role == "offer" else run_answer)(pc, signaling, args)
    finally:
        await pc.close()
        await signaling.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=("offer", "answer"))
    parser.add_argument("--loopback", action="store_true", help="both peers in this process")
    parser.add_argument("--count", type=int, default=5, help="pings to send (offerer)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between pings")
    parser.add_argument("--stun", default="stun:stun.l.google.com:19302", help="STUN server")
    parser.add_argument("--no-stun", action="store_true", help="no STUN server")
    parser.add_argument("--ip", action="append", help="local IP for host candidates (repeat)")
    args = parser.parse_args(argv)
    if args.loopback == (args.role is not None):
        parser.error("give offer, answer or --loopback")

    options: dict[str, Any] = {}
    if args.loopback:
        options = {"include_loopback": True, "ip_filter": ["127.0.0.1"], "use_ipv6": False}
    elif args.ip:
        loopback = any(ip.startswith("127.") or ip == "::1" for ip in args.ip)
        options = {"ip_filter": args.ip, "include_loopback": loopback}
    # The one line: aiortc on ice from here on (with ice's options for host addresses).
    ice.aiortc.install(**options)

    try:
        asyncio.run(run_loopback(args) if args.loopback else run_signalled(args))
    except (RuntimeError, TimeoutError) as exc:
        say(f"error: {exc!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
