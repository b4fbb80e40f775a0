"""Subcommands of ``python -m ice``; each module has add_arguments(parser) and run(args)."""
