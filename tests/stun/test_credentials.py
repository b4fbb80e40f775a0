"""ice.stun.credentials: string preparation, keys, USERHASH and TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ice.constants import PasswordAlgorithmId
from ice.stun.credentials import (
    BidiRuleError,
    EmptyStringError,
    PreparationError,
    ProhibitedCharacterError,
    UnassignedCodePointError,
    long_term_key,
    opaque_string,
    saslprep,
    short_term_key,
    turn_rest_credentials,
    userhash,
)

# RFC 5769 section 2.4 and RFC 8489 appendix B.1 credentials.
USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"  # "マトリックス"
USERNAME_UTF8 = b"\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9"
REALM = "example.org"
PASSWORD = "The\u00adM\u00aatr\u2168"  # "The<U+00AD>M<U+00AA>tr<U+2168>"


# --- SASLprep (RFC 4013) ----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("I\u00adX", "IX"),  # 1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # 2: no transformation
        ("USER", "USER"),  # 3: case preserved
        ("\u00aa", "a"),  # 4: output is NFKC
        ("\u2168", "IX"),  # 5: output is NFKC, matches #1
    ],
)
def test_saslprep_rfc4013_examples(given: str, expected: str) -> None:
    assert saslprep(given) == expected


def test_saslprep_rfc4013_prohibited_example() -> None:
    # 6: <U+0007> "Error - prohibited character"
    with pytest.raises(ProhibitedCharacterError, match="U\\+0007"):
        saslprep("\u0007")


def test_saslprep_rfc4013_bidi_example() -> None:
    # 7: <U+0627><U+0031> "Error - bidirectional check"
    with pytest.raises(BidiRuleError):
        saslprep("\u0627\u0031")


def test_saslprep_the_matrix() -> None:
    # The RFC 5769 password; soft hyphen removed by B.1, NFKC maps U+00AA to
    # "a" and U+2168 to "IX".
    assert saslprep(PASSWORD) == "TheMatrIX"


def test_saslprep_mappings() -> None:
    assert saslprep("a\u00a0b\u3000c") == "a b c"  # C.1.2 spaces mapped to U+0020
    assert saslprep("a\u200bb\ufeffc") == "abc"  # B.1 mapped to nothing
    assert saslprep("") == ""
    assert saslprep("\u0627\u0628") == "\u0627\u0628"  # all right-to-left is fine


@pytest.mark.parametrize(
    "char",
    [
        "\u0080",  # C.2.2 non-ASCII control
        "\u007f",  # C.2.1 ASCII control
        "\ue000",  # C.3 private use
        "\ufdd0",  # C.4 non-character
        "\ud800",  # C.5 surrogate
        "\ufff9",  # C.6 inappropriate for plain text
        "\u2ff0",  # C.7 inappropriate for canonical representation
        "\u200e",  # C.8 change display properties
        "\U000e0001",  # C.9 tagging
    ],
)
def test_saslprep_prohibited_output(char: str) -> None:
    with pytest.raises(ProhibitedCharacterError):
        saslprep(f"a{char}b")


def test_saslprep_bidi_mixed() -> None:
    with pytest.raises(BidiRuleError):
        saslprep("\u0627a\u0628")


def test_saslprep_unassigned() -> None:
    # U+0221 was assigned in Unicode 4.0, after stringprep's Unicode 3.2.
    with pytest.raises(UnassignedCodePointError):
        saslprep("\u0221")
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"


# --- OpaqueString (RFC 8265) -------------------------------------------------


def test_opaque_string_ascii_and_unicode() -> None:
    assert opaque_string("VOkJxbRl1RmTxUk/WvJxBt") == "VOkJxbRl1RmTxUk/WvJxBt"
    assert opaque_string("correct horse") == "correct horse"  # U+0020 is valid
    assert opaque_string(USERNAME) == USERNAME  # RFC 8489 B.1: "unaffected"
    assert opaque_string(REALM) == REALM
    assert opaque_string("\u00df\U0001f600") == "\u00df\U0001f600"


def test_opaque_string_rules() -> None:
    assert opaque_string("a\u00a0b\u3000c") == "a b c"  # non-ASCII spaces -> U+0020
    assert opaque_string("e\u0301") == "\u00e9"  # NFC
    # No width mapping, no NFKC: compatibility characters are kept.
    assert opaque_string("\uff21\ufb01\u00aa\u2168") == "\uff21\ufb01\u00aa\u2168"
    assert opaque_string("PassWord") == "PassWord"  # no case mapping


def test_opaque_string_differs_from_saslprep() -> None:
    # The soft hyphen is a Default_Ignorable code point: disallowed, not removed.
    with pytest.raises(ProhibitedCharacterError, match="U\\+00AD"):
        opaque_string(PASSWORD)
    assert opaque_string("TheM\u00aatr\u2168") == "TheM\u00aatr\u2168"


@pytest.mark.parametrize(
    "bad",
    [
        "a\u0007b",  # control
        "a\x00",  # control
        "a\ue000",  # private use
        "a\u2028b",  # line separator (Zl)
        "a\ufdd0",  # noncharacter
        "a\ud800",  # surrogate
        "\u0600",  # Cf, not default-ignorable
        "a\u034fb",  # COMBINING GRAPHEME JOINER: default-ignorable, Mn
        "\u1100",  # old Hangul jamo
        "a\u0640",  # RFC 5892 exception: DISALLOWED
        "a\u00b7b",  # MIDDLE DOT outside "l·l"
        "a\u200db",  # ZWJ not after a virama
        "\u0661\u06f1",  # mixed Arabic-Indic digit sets
    ],
)
def test_opaque_string_prohibited(bad: str) -> None:
    with pytest.raises(ProhibitedCharacterError):
        opaque_string(bad)


def test_opaque_string_contextual_rules_allowed() -> None:
    assert opaque_string("l\u00b7l") == "l\u00b7l"  # Catalan middle dot
    assert opaque_string("\u0915\u094d\u200d") == "\u0915\u094d\u200d"  # ZWJ after virama
    assert opaque_string("\u0628\u200c\u0628") == "\u0628\u200c\u0628"  # Arabic ZWNJ
    assert opaque_string("\u30fb\u30a2") == "\u30fb\u30a2"  # katakana middle dot


def test_opaque_string_unassigned_and_empty() -> None:
    with pytest.raises(UnassignedCodePointError):
        opaque_string("\u0378")
    with pytest.raises(EmptyStringError):
        opaque_string("")


def test_errors_are_value_errors() -> None:
    for cls in (ProhibitedCharacterError, UnassignedCodePointError, BidiRuleError):
        assert issubclass(cls, PreparationError)
    assert issubclass(EmptyStringError, PreparationError)
    assert issubclass(PreparationError, ValueError)


# --- keys --------------------------------------------------------------------


def test_rfc5769_long_term_key() -> None:
    # RFC 5769 section 2.4: the password is SASLprep'd (RFC 5389) to "TheMatrIX".
    expected = hashlib.md5(USERNAME_UTF8 + b":example.org:TheMatrIX").digest()
    assert long_term_key(USERNAME, REALM, PASSWORD) == expected
    assert long_term_key(USERNAME, REALM, PASSWORD, PasswordAlgorithmId.MD5) == expected
    assert long_term_key(USERNAME, REALM, PASSWORD, prep="saslprep") == expected
    assert len(expected) == 16


def test_rfc8489_long_term_key_example() -> None:
    # RFC 8489 section 9.2.2: 'user', 'realm', 'pass' -> 0x8493fbc5...
    key = long_term_key("user", "realm", "pass")
    assert key.hex() == "8493fbc53ba582fb4c044c456bdc40eb"


def test_rfc8489_userhash() -> None:
    # RFC 8489 appendix B.1, the USERHASH attribute value (32 bytes).
    # Errata 6268 (verified) corrects this appendix: the header length (0x9c
    # counted the 20-byte header) and the missing PASSWORD-ALGORITHM
    # attribute, with a recomputed MESSAGE-INTEGRITY-SHA256.  The USERHASH
    # value is the same in the original and the corrected vector.
    expected = bytes.fromhex(
        "4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704"
    )
    assert userhash(USERNAME, REALM) == expected
    assert hashlib.sha256(USERNAME_UTF8 + b":example.org").digest() == expected


# RFC 8489 appendix B.1 as corrected by errata 6268, up to (not including)
# the MESSAGE-INTEGRITY-SHA256 attribute, and that attribute's value.
B1_ERRATA_6268 = bytes.fromhex(
    "00010090 2112a442 78ad3433 c6ad72c0 29da412e"  # header, length 0x90
    "001e0020 4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704"
    "00150029 6f624d61 744a6f73 32414141 43662f2f 3439396b 39353464 364f4c33"
    "346f4c39 46535476 79363473 41000000"  # NONCE "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
    "0014000b 6578616d 706c652e 6f726700"  # REALM "example.org"
    "001d0004 00020000"  # PASSWORD-ALGORITHM SHA-256, no parameters
)
B1_ERRATA_6268_HMAC = bytes.fromhex(
    "b5c7bf00 5b6c52a2 1c51c5e8 92f81924 136296cb 927c4314 9309278c c6518e65"
)


def test_sha256_long_term_key() -> None:
    key = long_term_key(USERNAME, REALM, PASSWORD, PasswordAlgorithmId.SHA256)
    assert key == hashlib.sha256(USERNAME_UTF8 + b":example.org:TheMatrIX").digest()
    assert len(key) == 32
    # The errata 6268 vector's MESSAGE-INTEGRITY-SHA256 verifies with this key.
    mac = hmac.new(key, B1_ERRATA_6268, hashlib.sha256).digest()
    assert mac == B1_ERRATA_6268_HMAC
    md5_key = long_term_key(USERNAME, REALM, PASSWORD, PasswordAlgorithmId.MD5)
    assert hmac.new(md5_key, B1_ERRATA_6268, hashlib.sha256).digest() != B1_ERRATA_6268_HMAC


def test_long_term_key_unknown_algorithm() -> None:
    for algorithm in (0, 3, 0x8000):
        with pytest.raises(ValueError, match="algorithm"):
            long_term_key("user", "realm", "pass", algorithm)


def test_long_term_key_strips_quotes_and_nuls() -> None:
    # RFC 8489 section 9.2.2: quotes and trailing nulls removed.
    plain = long_term_key("user", "realm", "pass")
    assert long_term_key('"user"', '"realm"\x00', "pass\x00\x00") == plain


def test_prep_modes() -> None:
    with pytest.raises(ProhibitedCharacterError):
        long_term_key(USERNAME, REALM, PASSWORD, prep="opaquestring")
    raw = hashlib.md5(USERNAME_UTF8 + b":example.org:" + PASSWORD.encode()).digest()
    assert long_term_key(USERNAME, REALM, PASSWORD, prep="none") == raw
    # Without the soft hyphen OpaqueString accepts the password and keeps it
    # as it is; SASLprep still maps it to "TheMatrIX".
    kept = "TheM\u00aatr\u2168"
    assert long_term_key(USERNAME, REALM, kept) == long_term_key(
        USERNAME, REALM, kept, prep="opaquestring"
    )
    assert long_term_key(USERNAME, REALM, kept) != long_term_key(
        USERNAME, REALM, kept, prep="saslprep"
    )
    with pytest.raises(ValueError, match="preparation"):
        long_term_key("u", "r", "p", prep="nfkc")  # type: ignore[arg-type]
    with pytest.raises(ProhibitedCharacterError, match="SASLprep refuses it too"):
        long_term_key("user", "realm", "pa\u0007ss")


def test_short_term_key() -> None:
    # RFC 5769 section 2.1-2.3 short-term password.
    assert short_term_key("VOkJxbRl1RmTxUk/WvJxBt") == b"VOkJxbRl1RmTxUk/WvJxBt"
    assert short_term_key("p\u00e4ss") == "p\u00e4ss".encode()
    assert short_term_key("pa\u0301ss") == "p\u00e1ss".encode()  # NFC
    assert short_term_key(PASSWORD) == b"TheMatrIX"  # SASLprep fallback
    assert short_term_key(PASSWORD, prep="none") == PASSWORD.encode()
    with pytest.raises(ProhibitedCharacterError):
        short_term_key(PASSWORD, prep="opaquestring")
    with pytest.raises(ProhibitedCharacterError):
        short_term_key("a\u0007b")


# --- TURN REST API ------------------------------------------------------------


def test_turn_rest_credentials() -> None:
    username, password = turn_rest_credentials("north", "mike", 86400, 1433895918.5)
    assert username == "1433982318:mike"  # int(now) + lifetime, then the user
    expected = base64.b64encode(
        hmac.new(b"north", b"1433982318:mike", hashlib.sha1).digest()
    ).decode()
    assert password == expected == "I01UzFaASbtwfmo+DPDi2XAZLrs="
    assert turn_rest_credentials(b"north", "mike", 86400, 1433895918.5) == (username, password)


def test_turn_rest_credentials_without_user() -> None:
    username, password = turn_rest_credentials("north", None, 600, 1433982317.999)
    assert username == "1433982917"
    mac = hmac.new(b"north", b"1433982917", hashlib.sha1).digest()
    assert password == base64.b64encode(mac).decode()


def test_turn_rest_credentials_lifetime() -> None:
    for lifetime in (0, -1):
        with pytest.raises(ValueError, match="lifetime"):
            turn_rest_credentials("s", "u", lifetime, 0.0)
