"""python -m ice: command-line entry point (one subcommand per module in ice._cli)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ice import __version__


def build_parser() -> argparse.ArgumentParser:
    from ice._bench import cli as bench_cli
    from ice._cli import decode

    parser = argparse.ArgumentParser(
        prog="python -m ice",
        description="STUN / TURN / ICE toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"ice-stun-turn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    decode_parser = commands.add_parser(
        "decode",
        help="pretty-print a STUN or ChannelData message given as hex",
        description=decode.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    decode.add_arguments(decode_parser)
    decode_parser.set_defaults(run=decode.run)

    bench_parser = commands.add_parser(
        "bench",
        help="run the codec benchmarks and compare them with pion (Go) and aioice",
        description="Time every codec operation and print it beside pion's Go figure.",
    )
    bench_cli.add_arguments(bench_parser)
    bench_parser.set_defaults(run=bench_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
