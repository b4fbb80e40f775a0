"""python -m ice: command-line entry point (one subcommand per module in ice._cli)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ice import __version__

#: (subcommand, module): each module has HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = (
    ("decode", "ice._cli.decode"),
    ("bench", "ice._bench.cli"),
    ("stun", "ice._cli.stun"),
    ("server", "ice._cli.server"),
    ("nat", "ice._cli.nat"),
    ("turn", "ice._cli.turn"),
    ("peer", "ice._cli.peer"),
    ("demo", "ice._cli.demo"),
    ("load", "ice._cli.load"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ice",
        description="STUN / TURN / ICE toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"ice-stun-turn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
