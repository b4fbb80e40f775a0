"""STUN credentials: string preparation, HMAC keys, USERHASH, TURN REST credentials.

What the RFCs say (and what this module does):

* RFC 8489 section 9.1.1, short-term key: ``key = OpaqueString(password)``,
  UTF-8 encoded.
* RFC 8489 section 9.2.2, long-term key:
  ``key = MD5(username ":" OpaqueString(realm) ":" OpaqueString(password))``,
  where the username is the value of the USERNAME attribute, "in which case
  OpaqueString has already been applied" (section 14.3 requires a USERNAME
  to have been processed with OpaqueString), and where quotes and trailing
  NULs are removed from username and realm and trailing NULs from the
  password.  Section 18.5.1.2 gives the same formula with SHA-256 for
  PASSWORD-ALGORITHM SHA-256.
* RFC 8489 section 14.4: ``userhash = SHA-256(OpaqueString(username) ":"
  OpaqueString(realm))``.
* RFC 5389 (which RFC 8489 obsoletes) used SASLprep (RFC 4013) instead of
  OpaqueString (RFC 8265).  The two agree on printable ASCII, which is what
  nearly every deployed credential is, but not beyond it: SASLprep maps the
  soft hyphen to nothing and applies NFKC, while OpaqueString *rejects* the
  soft hyphen (a Default_Ignorable code point) and applies only NFC.

  The RFC 5769 long-term test vector (and RFC 8489 Appendix B.1, which
  wrongly attributes the mapping to OpaqueString) use the password
  "The<U+00AD>M<U+00AA>tr<U+2168>" and expect "TheMatrIX", which is the
  SASLprep result; OpaqueString refuses that password.

Because of that, every key function takes a keyword-only ``prep``:

``"compat"`` (default)
    OpaqueString (RFC 8489); a string that OpaqueString refuses cannot be an
    RFC 8489 credential, so it is prepared with SASLprep (RFC 5389) instead,
    and refused only if SASLprep refuses it too.  Identical to
    ``"opaquestring"`` on every string OpaqueString accepts, and reproduces
    the RFC 5769 and RFC 8489 Appendix B.1 vectors.
``"opaquestring"``
    OpaqueString only (RFC 8489 to the letter).
``"saslprep"``
    SASLprep only (RFC 5389 to the letter).
``"none"``
    No preparation: the UTF-8 bytes as given (what pion and coturn do).

Nothing here reads the clock: `turn_rest_credentials` takes ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import stringprep
import unicodedata
from collections.abc import Callable
from typing import Final, Literal

from ice._errors import Error
from ice.constants import PasswordAlgorithmId

__all__ = [
    "NONCE_COOKIE",
    "BidiRuleError",
    "EmptyStringError",
    "Prep",
    "PreparationError",
    "ProhibitedCharacterError",
    "SecurityFeatures",
    "UnassignedCodePointError",
    "long_term_key",
    "nonce_cookie",
    "nonce_features",
    "opaque_string",
    "saslprep",
    "short_term_key",
    "turn_rest_credentials",
    "userhash",
]

#: How a key function prepares its strings; see the module docstring.
Prep = Literal["compat", "opaquestring", "saslprep", "none"]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class PreparationError(Error, ValueError):
    """A string that the preparation profile (OpaqueString or SASLprep) refuses."""


class ProhibitedCharacterError(PreparationError):
    """The string contains a code point the profile disallows."""


class UnassignedCodePointError(PreparationError):
    """The string contains a code point unassigned in the profile's Unicode version."""


class BidiRuleError(PreparationError):
    """The string violates the bidirectional rules of RFC 3454 section 6."""


class EmptyStringError(PreparationError):
    """OpaqueString refuses a string that is empty after preparation (RFC 8265)."""


def _describe(c: str) -> str:
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X} ({name})" if name else f"U+{ord(c):04X}"


# --------------------------------------------------------------------------
# SASLprep (RFC 4013), on the stringprep tables of RFC 3454 (Unicode 3.2)
# --------------------------------------------------------------------------

# RFC 4013 section 2.3 prohibited output tables, with a description for errors.
_SASLPREP_PROHIBITED: Final[tuple[tuple[Callable[[str], bool], str], ...]] = (
    (stringprep.in_table_c12, "non-ASCII space (RFC 3454 C.1.2)"),
    (stringprep.in_table_c21, "ASCII control character (RFC 3454 C.2.1)"),
    (stringprep.in_table_c22, "non-ASCII control character (RFC 3454 C.2.2)"),
    (stringprep.in_table_c3, "private use code point (RFC 3454 C.3)"),
    (stringprep.in_table_c4, "non-character code point (RFC 3454 C.4)"),
    (stringprep.in_table_c5, "surrogate code point (RFC 3454 C.5)"),
    (stringprep.in_table_c6, "code point inappropriate for plain text (RFC 3454 C.6)"),
    (
        stringprep.in_table_c7,
        "code point inappropriate for canonical representation (RFC 3454 C.7)",
    ),
    (
        stringprep.in_table_c8,
        "display-changing or deprecated code point (RFC 3454 C.8)",
    ),
    (stringprep.in_table_c9, "tagging character (RFC 3454 C.9)"),
)


def saslprep(s: str, allow_unassigned: bool = False) -> str:
    """Prepare ``s`` with SASLprep, the stringprep profile of RFC 4013.

    The steps, in RFC 3454 order: map non-ASCII spaces (table C.1.2) to
    U+0020 and the "commonly mapped to nothing" code points (table B.1, e.g.
    the soft hyphen) to nothing; normalise with NFKC as of Unicode 3.2;
    refuse the prohibited output of RFC 4013 section 2.3 (tables C.1.2,
    C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9); apply the
    bidirectional checks of RFC 3454 section 6; and, unless
    ``allow_unassigned`` (the "query" rule of RFC 3454 section 7), refuse
    code points unassigned in Unicode 3.2 (table A.1), as stored strings
    such as passwords must.

    ``saslprep("I\\u00adX") == "IX"``, ``saslprep("\\u00aa") == "a"``,
    ``saslprep("\\u2168") == "IX"``.  Raises a `PreparationError` subclass.
    """
    if s.isascii() and s.isprintable():
        return s  # printable ASCII is left alone by every step
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in s if not stringprep.in_table_b1(c)
    )
    out = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in out:
        for in_table, what in _SASLPREP_PROHIBITED:
            if in_table(c):
                raise ProhibitedCharacterError(f"SASLprep prohibits {_describe(c)}: {what}")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise UnassignedCodePointError(
                f"SASLprep refuses U+{ord(c):04X}: unassigned in Unicode 3.2 (RFC 3454 A.1)"
            )
    # RFC 3454 section 6: a string with any RandALCat character must not
    # contain an LCat character and must start and end with RandALCat.
    if any(stringprep.in_table_d1(c) for c in out):
        lcat = next((c for c in out if stringprep.in_table_d2(c)), None)
        if lcat is not None:
            raise BidiRuleError(
                f"SASLprep refuses a string mixing right-to-left and left-to-right "
                f"characters ({_describe(lcat)} is left-to-right; RFC 3454 section 6)"
            )
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise BidiRuleError(
                "SASLprep refuses a right-to-left string that does not start and end "
                "with a right-to-left character (RFC 3454 section 6)"
            )
    return out


# --------------------------------------------------------------------------
# OpaqueString (RFC 8265 section 4.2), FreeformClass (RFC 8264)
# --------------------------------------------------------------------------

# RFC 5892 section 2.6 Exceptions (F), which PRECIS applies first.
_EXC_PVALID: Final = frozenset({0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007})
_EXC_DISALLOWED: Final = frozenset(
    {0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B}
)
_ARABIC_INDIC: Final = range(0x0660, 0x066A)
_EXT_ARABIC_INDIC: Final = range(0x06F0, 0x06FA)
_EXC_CONTEXTO: Final = frozenset(
    {0x00B7, 0x0375, 0x05F3, 0x05F4, 0x30FB, *_ARABIC_INDIC, *_EXT_ARABIC_INDIC}
)

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt).  Only the
# entries that are not general category Cf or Cn matter (every Cf or Cn code
# point is refused anyway), but the whole list is kept for clarity.
_DEFAULT_IGNORABLE: Final[tuple[tuple[int, int], ...]] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# Hangul_Syllable_Type L, V and T: the OldHangulJamo category of RFC 8264.
_OLD_HANGUL_JAMO: Final[tuple[tuple[int, int], ...]] = (
    (0x1100, 0x11FF),
    (0xA960, 0xA97C),
    (0xD7B0, 0xD7C6),
    (0xD7CB, 0xD7FB),
)

_LETTER_DIGITS: Final = frozenset({"Ll", "Lu", "Lo", "Nd", "Lm", "Mn", "Mc"})
# FreeformClass-valid categories besides LetterDigits: OtherLetterDigits
# (Lt Nl No Me), Spaces (Zs), Symbols (Sm Sc Sk So), Punctuation (P*).
_FREEFORM_OTHER: Final = frozenset(
    {"Lt", "Nl", "No", "Me", "Zs", "Sm", "Sc", "Sk", "So", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}
)

# Scripts whose letters take part in cursive joining (for the ZWNJ rule),
# and the scripts of RFC 5892 A.7, both matched on character names.
_JOINING_SCRIPTS: Final = (
    "ARABIC",
    "SYRIAC",
    "NKO",
    "MONGOLIAN",
    "MANDAIC",
    "MANICHAEAN",
    "PSALTER PAHLAVI",
    "ADLAM",
    "HANIFI ROHINGYA",
    "SOGDIAN",
    "CHORASMIAN",
    "OLD UYGHUR",
    "PHAGS-PA",
)
_HAN_KANA: Final = (
    "HIRAGANA",
    "KATAKANA",
    "HALFWIDTH KATAKANA",
    "CJK UNIFIED IDEOGRAPH",
    "CJK COMPATIBILITY IDEOGRAPH",
    "IDEOGRAPHIC ITERATION MARK",
    "IDEOGRAPHIC NUMBER ZERO",
    "HANGZHOU NUMERAL",
)

_VIRAMA: Final = 9  # canonical combining class


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def _named(c: str, prefixes: tuple[str, ...]) -> bool:
    return unicodedata.name(c, "").startswith(prefixes)


def _neighbour(s: str, i: int, step: int) -> str:
    """The nearest code point before (step -1) or after (step 1) ``s[i]`` that is
    not a transparent mark (Mn, Me, Cf), or "" if there is none."""
    i += step
    while 0 <= i < len(s):
        if unicodedata.category(s[i]) not in ("Mn", "Me", "Cf"):
            return s[i]
        i += step
    return ""


def _contextj_ok(s: str, i: int) -> bool:
    """RFC 5892 A.1 (ZWNJ) and A.2 (ZWJ), approximately."""
    if i > 0 and unicodedata.combining(s[i - 1]) == _VIRAMA:
        return True
    if s[i] != "\u200c":
        return False
    # Joining_Type is not in unicodedata: accept a ZWNJ between two letters of
    # a cursive-joining script (more permissive than the exact L/D...R/D rule).
    before, after = _neighbour(s, i, -1), _neighbour(s, i, 1)
    return all(
        c and unicodedata.category(c).startswith("L") and _named(c, _JOINING_SCRIPTS)
        for c in (before, after)
    )


def _contexto_ok(s: str, i: int) -> bool:
    """RFC 5892 A.3-A.9, with scripts approximated by character names."""
    cp = ord(s[i])
    before = s[i - 1] if i > 0 else ""
    after = s[i + 1] if i + 1 < len(s) else ""
    if cp == 0x00B7:  # MIDDLE DOT: only between two "l" (Catalan)
        return before == "l" and after == "l"
    if cp == 0x0375:  # GREEK LOWER NUMERAL SIGN: followed by Greek
        return bool(after) and _named(after, ("GREEK",))
    if cp in (0x05F3, 0x05F4):  # HEBREW GERESH, GERSHAYIM: preceded by Hebrew
        return bool(before) and _named(before, ("HEBREW",))
    if cp == 0x30FB:  # KATAKANA MIDDLE DOT: with some Hiragana, Katakana or Han
        return any(c != "\u30fb" and _named(c, _HAN_KANA) for c in s)
    if cp in _ARABIC_INDIC:  # not mixed with extended Arabic-Indic digits
        return not any(ord(c) in _EXT_ARABIC_INDIC for c in s)
    return not any(ord(c) in _ARABIC_INDIC for c in s)  # extended Arabic-Indic


def _check_freeform(s: str, i: int) -> None:
    """Raise unless ``s[i]`` is valid in the PRECIS FreeformClass (RFC 8264 section 8)."""
    c = s[i]
    cp = ord(c)
    if cp in _EXC_PVALID:
        return
    if cp in _EXC_DISALLOWED:
        raise ProhibitedCharacterError(
            f"OpaqueString prohibits {_describe(c)}: disallowed by RFC 5892 exceptions"
        )
    if cp in _EXC_CONTEXTO:
        if _contexto_ok(s, i):
            return
        raise ProhibitedCharacterError(
            f"OpaqueString prohibits {_describe(c)} in this context (RFC 5892 appendix A)"
        )
    if _is_noncharacter(cp):
        raise ProhibitedCharacterError(f"OpaqueString prohibits {_describe(c)}: a noncharacter")
    category = unicodedata.category(c)
    if category == "Cn":
        raise UnassignedCodePointError(
            f"OpaqueString refuses U+{cp:04X}: unassigned in Unicode {unicodedata.unidata_version}"
        )
    if 0x21 <= cp <= 0x7E:
        return
    if cp in (0x200C, 0x200D):
        if _contextj_ok(s, i):
            return
        raise ProhibitedCharacterError(
            f"OpaqueString prohibits {_describe(c)} in this context (RFC 5892 appendix A)"
        )
    if _in_ranges(cp, _OLD_HANGUL_JAMO):
        raise ProhibitedCharacterError(f"OpaqueString prohibits {_describe(c)}: old Hangul jamo")
    if _in_ranges(cp, _DEFAULT_IGNORABLE):
        raise ProhibitedCharacterError(
            f"OpaqueString prohibits {_describe(c)}: a default-ignorable code point"
        )
    if category == "Cc":
        raise ProhibitedCharacterError(
            f"OpaqueString prohibits {_describe(c)}: a control character"
        )
    if unicodedata.normalize("NFKC", c) != c:  # HasCompat
        return
    if category in _LETTER_DIGITS or category in _FREEFORM_OTHER:
        return
    raise ProhibitedCharacterError(
        f"OpaqueString prohibits {_describe(c)}: general category {category} "
        f"is not in the FreeformClass"
    )


def opaque_string(s: str) -> str:
    """Enforce the OpaqueString profile (RFC 8265 section 4.2) on ``s``.

    The rules, in the order of RFC 8265 section 4.2.2: no width mapping; map
    non-ASCII spaces (general category Zs other than U+0020) to U+0020; no
    case mapping; NFC; no directionality rule.  The result must be non-empty
    and every code point must be valid in the PRECIS FreeformClass
    (RFC 8264 sections 4.3 and 8, using the RFC 5892 exceptions and
    contextual rules), judged against the Unicode version of the running
    Python's `unicodedata` (PRECIS is version-agile).

    Where this is an approximation, because `unicodedata` lacks a property:

    * Default_Ignorable_Code_Point (category PrecisIgnorableProperties) comes
      from a copy of the Unicode 15 list kept here; only its non-Cf members
      matter, since every Cf code point is refused anyway.
    * Scripts (for the CONTEXTO rules of GREEK LOWER NUMERAL SIGN, HEBREW
      GERESH/GERSHAYIM and KATAKANA MIDDLE DOT) are judged by character names
      ("GREEK ...", "HEBREW ...", "HIRAGANA ...", "CJK UNIFIED IDEOGRAPH ...").
    * Joining_Type (for ZERO WIDTH NON-JOINER) is not available: a ZWNJ is
      accepted after a virama or between two letters of a cursive-joining
      script (Arabic, Syriac, N'Ko, Mongolian, ...), which accepts a few
      strings the exact rule refuses.  ZERO WIDTH JOINER follows the exact
      rule (only after a virama).

    Everything else (exceptions, unassigned, ASCII7, old Hangul jamo,
    controls, HasCompat, the general-category classes) is exact.
    Raises a `PreparationError` subclass.
    """
    if s.isascii() and s.isprintable() and s:
        return s  # printable ASCII: all rules are the identity, all code points valid
    mapped = "".join(" " if c != " " and unicodedata.category(c) == "Zs" else c for c in s)
    out = unicodedata.normalize("NFC", mapped)
    if not out:
        raise EmptyStringError("OpaqueString refuses an empty string (RFC 8265 section 4.2)")
    for i in range(len(out)):
        _check_freeform(out, i)
    return out


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def _prepare(s: str, prep: Prep) -> str:
    if prep == "compat":
        try:
            return opaque_string(s)
        except PreparationError as exc:
            try:
                return saslprep(s)
            except PreparationError as exc2:
                raise type(exc)(f"{exc}; and SASLprep refuses it too: {exc2}") from None
    if prep == "opaquestring":
        return opaque_string(s)
    if prep == "saslprep":
        return saslprep(s)
    if prep == "none":
        return s
    raise ValueError(f"unknown string preparation {prep!r}")


def _strip_quotes_and_nuls(s: str) -> str:
    s = s.rstrip("\x00")
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
    return s


def short_term_key(password: str, *, prep: Prep = "compat") -> bytes:
    """The short-term credential HMAC key: ``OpaqueString(password)`` as UTF-8.

    RFC 8489 section 9.1.1.  ICE (RFC 8445) uses it with the remote
    ``ice-pwd``.  RFC 5389 used SASLprep here; both are the identity on the
    printable-ASCII passwords ICE generates.  ``prep`` as in the module
    docstring.
    """
    return _prepare(password, prep).encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: int = PasswordAlgorithmId.MD5,
    *,
    prep: Prep = "compat",
) -> bytes:
    """The long-term credential HMAC key (16 bytes for MD5, 32 for SHA-256).

    RFC 8489 section 9.2.2 (and 18.5.1 for SHA-256)::

        key = MD5(username ":" OpaqueString(realm) ":" OpaqueString(password))

    The username is what the USERNAME attribute carries, which section 14.3
    requires to have been processed with OpaqueString already; so the
    username is prepared here too (a no-op on a conforming USERNAME).  As
    section 9.2.2 says, trailing NULs are removed from all three and one pair
    of enclosing double quotes from username and realm before preparation.
    ``algorithm`` is a `PasswordAlgorithmId` (MD5 or SHA256); anything else
    raises ValueError.  ``prep`` as in the module docstring.
    """
    if algorithm == PasswordAlgorithmId.MD5:
        digest = hashlib.md5
    elif algorithm == PasswordAlgorithmId.SHA256:
        digest = hashlib.sha256
    else:
        raise ValueError(f"unknown STUN password algorithm {algorithm!r}")
    parts = (
        _prepare(_strip_quotes_and_nuls(username), prep),
        _prepare(_strip_quotes_and_nuls(realm), prep),
        _prepare(password.rstrip("\x00"), prep),
    )
    return digest(":".join(parts).encode("utf-8"), usedforsecurity=False).digest()


def userhash(username: str, realm: str, *, prep: Prep = "compat") -> bytes:
    """The 32-byte USERHASH value (RFC 8489 section 14.4)::

    userhash = SHA-256(OpaqueString(username) ":" OpaqueString(realm))

    ``prep`` as in the module docstring.
    """
    data = f"{_prepare(username, prep)}:{_prepare(realm, prep)}".encode()
    return hashlib.sha256(data).digest()


def turn_rest_credentials(
    secret: str | bytes, user: str | None, lifetime: int, now: float
) -> tuple[str, str]:
    """Ephemeral TURN credentials (draft-uberti-behave-turn-rest, coturn's
    ``--use-auth-secret``): returns ``(username, password)``.

    ``username`` is ``"<expiry>:<user>"``, or just ``"<expiry>"`` when ``user``
    is None, where ``<expiry>`` is the UNIX time ``int(now) + lifetime``;
    ``password`` is ``base64(HMAC-SHA1(secret, username))``.  ``now`` is UNIX
    time in seconds, supplied by the caller (this module reads no clock);
    ``lifetime`` is in seconds and must be positive.  A str ``secret`` is
    UTF-8 encoded.
    """
    if lifetime <= 0:
        raise ValueError(f"TURN REST credential lifetime must be positive, not {lifetime!r}")
    expiry = int(now) + lifetime
    username = str(expiry) if user is None else f"{expiry}:{user}"
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    mac = hmac.new(key, username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode("ascii")


# -- the nonce cookie (RFC 8489 section 9.2): shared by the client and the server

#: A NONCE starting with this carries security-feature bits.
NONCE_COOKIE = "obMatJos2"


class SecurityFeatures:
    """Bits of the nonce cookie's 24-bit "security features" field (RFC 8489 18.1)."""

    PASSWORD_ALGORITHMS = 1 << 23
    USERNAME_ANONYMITY = 1 << 22


def nonce_cookie(features: int) -> str:
    """The start of a NONCE that announces ``features`` (the cookie and 4 base64 characters)."""
    return NONCE_COOKIE + base64.b64encode(features.to_bytes(3, "big")).decode()


def nonce_features(nonce: str) -> int | None:
    """The security-feature bits of a nonce cookie, or None for a plain nonce."""
    if not nonce.startswith(NONCE_COOKIE) or len(nonce) < len(NONCE_COOKIE) + 4:
        return None
    encoded = nonce[len(NONCE_COOKIE) : len(NONCE_COOKIE) + 4]
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big")
