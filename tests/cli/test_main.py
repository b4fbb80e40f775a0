"""python -m ice decode / bench, run through main() as a user would."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import ice
from ice.__main__ import main
from tests.support.cli import ICE

KEY = ice.short_term_key("swordfish")
SIGNED = ice.Message.build(
    ice.BINDING_REQUEST,
    ice.Username("remote:local"),
    ice.XorMappedAddress("2001:db8::9", 4000),
    ice.MessageIntegrity(KEY),
    ice.Fingerprint(),
    transaction_id=bytes(range(12)),
).raw


def test_decode_prints_every_attribute_and_verifies_with_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["decode", SIGNED.hex(), "--password", "swordfish"]) == 0
    out = capsys.readouterr().out
    assert "STUN BINDING REQUEST" in out
    assert "000102030405060708090a0b" in out
    assert "Username('remote:local')" in out
    assert "XorMappedAddress(host='2001:db8::9', port=4000)" in out
    assert "integrity       ok" in out
    assert "fingerprint     ok" in out


def test_decode_reports_a_wrong_password_and_a_bad_fingerprint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["decode", SIGNED.hex(), "--password", "wrong"]) == 0
    assert "integrity       BAD" in capsys.readouterr().out

    tampered = bytearray(SIGNED)
    tampered[-1] ^= 1
    assert main(["decode", tampered.hex()]) == 0
    out = capsys.readouterr().out
    assert "fingerprint     BAD" in out
    assert "present (not verified" in out


def test_decode_reads_channel_data_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = ice.encode_channel_data(0x4ABC, b"hello")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(frame)))
    assert main(["decode", "-"]) == 0
    assert "ChannelData channel 0x4abc, 5 bytes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("zz", "not hexadecimal"),
        (SIGNED[:-1].hex(), "header announces"),
        ("ff" * 24, "neither STUN"),
    ],
)
def test_decode_fails_cleanly_on_malformed_input(
    argument: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", argument]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err


def test_bench_runs_a_selected_case_and_prints_the_comparison() -> None:
    done = subprocess.run(
        [*ICE, "bench", "--quick", "-k", "IsChannelData"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| IsChannelData"))
    assert "0.55" in row  # pion's figure beside ours
