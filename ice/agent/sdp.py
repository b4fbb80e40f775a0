"""The ICE attributes of SDP (RFC 8839, RFC 8840): parse and format.

Pure: no I/O, and randomness comes in as an argument. The attributes::

    a=ice-ufrag:<4..256 ice-char>      session or media level, media wins
    a=ice-pwd:<22..256 ice-char>       session or media level, media wins
    a=ice-options:<tag> *(SP <tag>)    session or media level (e.g. trickle ice2)
    a=ice-lite                         session level
    a=candidate:...                    media level (see ice.agent.candidate)
    a=end-of-candidates                session or media level (RFC 8840)

    ice-char = ALPHA / DIGIT / "+" / "/"

:func:`parse_ice_attributes` reads them from a whole session description,
one media section, or any list of lines (a trickle fragment, or lines
without the ``a=`` prefix), ignoring every other line.
:func:`format_ice_attributes` writes them back. :func:`generate_ufrag` and
:func:`generate_pwd` draw credentials from an injected source of randomness.
"""

from __future__ import annotations

import contextlib
import random
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from ice.agent.candidate import Candidate, SdpError, UnsupportedCandidateError

__all__ = [
    "ICE_CHARS",
    "IceAttributes",
    "IceParameters",
    "RandomSource",
    "SdpError",
    "format_ice_attributes",
    "generate_pwd",
    "generate_ufrag",
    "parse_ice_attributes",
]

#: The 64 characters of RFC 8839's ice-char: 6 bits of randomness each.
ICE_CHARS: Final = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"

#: A source of randomness: a ``random.Random`` (``random.SystemRandom()`` for
#: real credentials; a seeded ``Random`` in tests) or a ``token_bytes``-like
#: callable returning that many random bytes (``secrets.token_bytes``).
RandomSource = random.Random | Callable[[int], bytes]

_ICE_STRING: Final = re.compile(r"[A-Za-z0-9+/]+")
_OPTION: Final = re.compile(r"[\x21-\x7e]+")

_UFRAG_MIN, _UFRAG_MAX, _UFRAG_SEND_MAX = 4, 256, 32  # RFC 8839 section 5.4
_PWD_MIN, _PWD_MAX = 22, 256


def _ice_string_problem(what: str, value: object, low: int, high: int) -> str | None:
    if not isinstance(value, str):
        return f"{what} must be text, not {type(value).__name__}"
    if not _ICE_STRING.fullmatch(value):
        return f"{what} {value!r} has characters outside [A-Za-z0-9+/]"
    if not low <= len(value) <= high:
        return f"{what} {value!r} is {len(value)} characters long, not {low} to {high}"
    return None


def _option_problem(option: object) -> str | None:
    # RFC 8839's ice-option-tag is 1*ice-char, but unknown options are to be
    # ignored and real peers sent others (Chrome's old "google-ice"), so any
    # visible-ASCII token is taken.
    if not isinstance(option, str) or not _OPTION.fullmatch(option):
        return f"ice-option {option!r} is not a token of visible ASCII characters"
    return None


@dataclass(frozen=True, slots=True)
class IceParameters:
    """An agent's ICE credentials and options for one data stream.

    ``ufrag`` is 4 to 256 ice-chars and ``pwd`` 22 to 256 (RFC 8839 section
    5.4; 256 is what a receiver must accept, a sender keeps the ufrag to 32),
    ``options`` the option tags (``"trickle"``, ``"ice2"``; duplicates are
    dropped; any visible-ASCII token, since RFC 8839's ice-char-only grammar
    is broader in practice: old Chrome sent ``google-ice``), and
    ``lite`` says the agent is an ICE-lite implementation. Construction checks
    all that and raises :class:`SdpError` otherwise.
    """

    ufrag: str
    pwd: str
    options: tuple[str, ...] = ()
    lite: bool = False

    def __post_init__(self) -> None:
        problem = _ice_string_problem("ice-ufrag", self.ufrag, _UFRAG_MIN, _UFRAG_MAX)
        problem = problem or _ice_string_problem("ice-pwd", self.pwd, _PWD_MIN, _PWD_MAX)
        if problem:
            raise SdpError(problem)
        if isinstance(self.options, str):
            raise SdpError("options must be a sequence of option tags, not one string")
        options = tuple(dict.fromkeys(self.options))  # in order, each once
        for option in options:
            problem = _option_problem(option)
            if problem:
                raise SdpError(problem)
        object.__setattr__(self, "options", options)
        if not isinstance(self.lite, bool):
            raise SdpError(f"lite must be a bool, not {type(self.lite).__name__}")

    @classmethod
    def generate(
        cls,
        rng: RandomSource,
        *,
        options: Iterable[str] = (),
        lite: bool = False,
        ufrag_length: int = 8,
        pwd_length: int = 24,
    ) -> IceParameters:
        """Fresh random credentials (:func:`generate_ufrag`, :func:`generate_pwd`)."""
        return cls(
            generate_ufrag(rng, ufrag_length),
            generate_pwd(rng, pwd_length),
            tuple(options),
            lite,
        )


class IceAttributes(NamedTuple):
    """What :func:`parse_ice_attributes` found; unpacks as a 3-tuple."""

    parameters: IceParameters | None
    candidates: list[Candidate]
    end_of_candidates: bool


# ------------------------------------------------------------------ randomness


def _random_bytes(rng: RandomSource, count: int) -> bytes:
    if isinstance(rng, random.Random):
        return rng.randbytes(count)
    if callable(rng):
        data = rng(count)
        if not isinstance(data, bytes | bytearray) or len(data) != count:
            raise ValueError(f"the random source returned {data!r}, not {count} bytes")
        return bytes(data)
    raise TypeError(f"need a random.Random or a token_bytes-like callable, not {rng!r}")


def _random_ice_string(rng: RandomSource, length: int) -> str:
    # 256 is a multiple of 64, so the low six bits of a uniform byte are uniform.
    return "".join(ICE_CHARS[byte & 63] for byte in _random_bytes(rng, length))


def generate_ufrag(rng: RandomSource, length: int = 8) -> str:
    """A random ice-ufrag of ``length`` (4..32) ice-chars, 6 bits each:
    RFC 8445 asks for at least 24 bits of randomness, the default gives 48."""
    if not _UFRAG_MIN <= length <= _UFRAG_SEND_MAX:
        raise ValueError(f"ufrag length {length} is not in {_UFRAG_MIN}..{_UFRAG_SEND_MAX}")
    return _random_ice_string(rng, length)


def generate_pwd(rng: RandomSource, length: int = 24) -> str:
    """A random ice-pwd of ``length`` (22..256) ice-chars, 6 bits each:
    RFC 8445 asks for at least 128 bits of randomness, the default gives 144."""
    if not _PWD_MIN <= length <= _PWD_MAX:
        raise ValueError(f"pwd length {length} is not in {_PWD_MIN}..{_PWD_MAX}")
    return _random_ice_string(rng, length)


# ------------------------------------------------------------------ parsing


class _Level:
    """The ICE attributes seen at one level (session, or the chosen media section)."""

    __slots__ = ("candidates", "end_of_candidates", "lite", "options", "pwd", "ufrag")

    def __init__(self) -> None:
        self.ufrag: str | None = None
        self.pwd: str | None = None
        self.options: list[str] = []
        self.lite = False
        self.end_of_candidates = False
        self.candidates: list[Candidate] = []


def _split_lines(sdp: str | Iterable[str]) -> list[str]:
    if isinstance(sdp, str):
        return sdp.splitlines()
    lines: list[str] = []
    for item in sdp:
        if not isinstance(item, str):
            raise TypeError(f"SDP lines must be text, not {type(item).__name__}")
        lines.extend(item.splitlines() or [""])
    return lines


def _set_once(level: _Level, name: str, value: str) -> None:
    if not value:
        raise SdpError(f"empty a={name}")
    field = "ufrag" if name == "ice-ufrag" else "pwd"
    old = getattr(level, field)
    if old is not None and old != value:
        raise SdpError(f"conflicting a={name} values {old!r} and {value!r}")
    setattr(level, field, value)


def parse_ice_attributes(sdp: str | Iterable[str], *, media: int = 0) -> IceAttributes:
    """Read the ICE attributes of a session description or some of its lines.

    ``sdp`` is the text (any line ending) or an iterable of lines; the ``a=``
    prefix is optional on each line and lines that are not ICE attributes are
    ignored. Lines before the first ``m=`` line are session level, and of the
    media sections only number ``media`` (from 0) is read; media-level
    ice-ufrag/ice-pwd override session-level ones, ice-options from both levels
    are combined. Text without ``m=`` lines is read whole.

    Returns ``(parameters, candidates, end_of_candidates)`` as an
    :class:`IceAttributes`. ``parameters`` is None when there is neither an
    ice-ufrag nor an ice-pwd (a trickle fragment carrying only candidates).
    Candidates with a transport or type this package does not support are
    skipped, as RFC 8839 says. Raises :class:`SdpError` for a malformed
    attribute or candidate (the message gives the line number), an ice-ufrag
    without an ice-pwd or the reverse, or two different values at one level.
    """
    if media < 0:
        raise ValueError(f"media section index {media} is negative")
    session, chosen = _Level(), _Level()
    section = -1  # -1: the session level; n: the n-th media section
    for number, raw in enumerate(_split_lines(sdp), start=1):
        line = raw.strip()
        if line[:2] == "m=":
            section += 1
            continue
        if section not in (-1, media):
            continue
        level = session if section == -1 else chosen
        body = line[2:] if line[:2].lower() == "a=" else line
        name, _, value = body.partition(":")
        name = name.strip().lower()
        value = value.strip()
        try:
            if name in ("ice-ufrag", "ice-pwd"):
                _set_once(level, name, value)
            elif name == "ice-options":
                tags = value.split()
                if not tags:
                    raise SdpError("empty a=ice-options")
                for tag in tags:
                    problem = _option_problem(tag)
                    if problem:
                        raise SdpError(problem)
                level.options.extend(tags)
            elif name == "ice-lite":
                level.lite = True
            elif name == "end-of-candidates":
                level.end_of_candidates = True
            elif name == "candidate":
                # RFC 8839: a candidate of an unknown transport or type is ignored.
                with contextlib.suppress(UnsupportedCandidateError):
                    level.candidates.append(Candidate.from_sdp(body))
        except SdpError as exc:
            raise SdpError(f"line {number}: {exc}") from None
    if section >= 0 and media > section:
        raise SdpError(f"no media section {media}: the description has {section + 1}")

    ufrag = chosen.ufrag if chosen.ufrag is not None else session.ufrag
    pwd = chosen.pwd if chosen.pwd is not None else session.pwd
    parameters: IceParameters | None = None
    if ufrag is not None and pwd is not None:
        options = tuple(dict.fromkeys(session.options + chosen.options))
        parameters = IceParameters(ufrag, pwd, options, session.lite or chosen.lite)
    elif ufrag is not None:
        raise SdpError("a=ice-ufrag without a=ice-pwd")
    elif pwd is not None:
        raise SdpError("a=ice-pwd without a=ice-ufrag")
    return IceAttributes(
        parameters,
        session.candidates + chosen.candidates,
        session.end_of_candidates or chosen.end_of_candidates,
    )


def format_ice_attributes(
    params: IceParameters | None,
    candidates: Iterable[Candidate] = (),
    end_of_candidates: bool = False,
) -> list[str]:
    """The ``a=`` lines (without line endings) for ``params`` and
    ``candidates``: ``a=ice-lite`` when lite, ``a=ice-ufrag``, ``a=ice-pwd``,
    ``a=ice-options`` when there are options, one ``a=candidate`` each, and
    ``a=end-of-candidates`` when asked. ``params`` may be None for a trickle
    fragment of candidates only. :func:`parse_ice_attributes` reads the lines
    back to equal values. (``a=ice-lite`` belongs at session level: a caller
    writing a whole description moves it there.)"""
    lines: list[str] = []
    if params is not None:
        if params.lite:
            lines.append("a=ice-lite")
        lines.append(f"a=ice-ufrag:{params.ufrag}")
        lines.append(f"a=ice-pwd:{params.pwd}")
        if params.options:
            lines.append(f"a=ice-options:{' '.join(params.options)}")
    lines.extend(f"a={candidate.to_sdp(prefix=True)}" for candidate in candidates)
    if end_of_candidates:
        lines.append("a=end-of-candidates")
    return lines
