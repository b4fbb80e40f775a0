"""Reading the server's TOML config file: every bad file is a ConfigError (found by
fuzz/fuzz_config.py), which `ice server` reports in one line instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ice._cli.server_config import ConfigError, ServerConfig


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_bytes(b'r\xa3alm = "x"\n')
    with pytest.raises(ConfigError, match=r"server\.toml"):
        ServerConfig.from_toml(path)


@pytest.mark.parametrize("line", ['user = { a = "b" }', "user = [1]", 'users = [["a:b"]]'])
def test_a_user_that_is_not_text_is_a_config_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match="user"):
        ServerConfig.from_toml(path)


def test_a_good_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('realm = "example.org"\nusers = { alice = "secret" }\n')
    config = ServerConfig.from_toml(path)
    assert (config.realm, config.users) == ("example.org", {"alice": "secret"})
