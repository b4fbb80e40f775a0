"""`ServerConfig` read from TOML and flags: the limits of issue 15 reach the core and runner."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ice._cli.server import add_arguments, config_from_args
from ice._cli.server_config import ConfigError, ServerConfig
from ice.turn.server import TurnServer


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quotas_default_to_100_per_user_and_per_address() -> None:
    config, _ = config_from_args(_args())
    server = config.build()
    assert isinstance(server, TurnServer)
    assert (server.limits.user_quota, server.limits.source_quota) == (100, 100)


def test_quotas_from_toml_and_flags_the_flags_winning(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("user-quota = 7\nsource-quota = 9\n")
    config, _ = config_from_args(_args("--config", str(path)))
    server = config.build()
    assert isinstance(server, TurnServer)
    assert (server.limits.user_quota, server.limits.source_quota) == (7, 9)
    config, _ = config_from_args(_args("--config", str(path), "--source-quota", "0"))
    server = config.build()
    assert isinstance(server, TurnServer)
    assert (server.limits.user_quota, server.limits.source_quota) == (7, 0)


def test_a_negative_quota_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("source-quota = -1\n")
    with pytest.raises(ConfigError, match="source-quota"):
        ServerConfig.from_toml(path)
