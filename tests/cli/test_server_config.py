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


# -- stream connection limits (issue 15, defect 3)


def test_connection_limits_default_to_coturns_60_s_or_stricter() -> None:
    config, _ = config_from_args(_args())
    assert config.runner_options() == {
        "max_connections": 1000,
        "source_connections": 100,
        "message_timeout": 10.0,
        "idle_timeout": 60.0,
    }


def test_connection_limits_from_toml_and_flags_the_flags_winning(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        "tcp-max-connections = 50\ntcp-source-connections = 5\n"
        "tcp-message-timeout = 2\ntcp-idle-timeout = 30.5\n"
    )
    config, _ = config_from_args(_args("--config", str(path)))
    assert config.runner_options() == {
        "max_connections": 50,
        "source_connections": 5,
        "message_timeout": 2.0,
        "idle_timeout": 30.5,
    }
    flags = ("--tcp-source-connections", "0", "--tcp-idle-timeout", "20")
    config, _ = config_from_args(_args("--config", str(path), *flags))
    options = config.runner_options()
    assert (options["source_connections"], options["idle_timeout"]) == (0, 20.0)
    assert options["max_connections"] == 50


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (("--tcp-max-connections", "0"), "tcp-max-connections"),
        (("--tcp-message-timeout", "0"), "tcp-message-timeout"),
        (("--tcp-idle-timeout", "0"), "tcp-idle-timeout"),
        (("--tcp-source-connections", "-1"), "tcp-source-connections"),
    ],
)
def test_connection_limits_that_cannot_work_are_refused(flags: tuple[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config, _ = config_from_args(_args(*flags))
        config.runner_options()


def test_a_connection_limit_of_the_wrong_type_in_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('tcp-idle-timeout = "soon"\n')
    with pytest.raises(ConfigError, match="tcp-idle-timeout"):
        ServerConfig.from_toml(path)
