"""What every fuzz target here shares: the entry point, the input format, the contract.

A target defines ``test_one_input(data: bytes)`` and ``seeds() -> list[bytes]``
(valid inputs the package builds) and calls ``main(test_one_input, seeds)``.

With atheris installed the target runs under libFuzzer (``-atheris_runs=N``,
corpus directories, ``-max_total_time=S``: the libFuzzer flags); without it,
or with ``--random`` (or ``ICE_FUZZ_RANDOM=1``), a deterministic mutation
runner feeds ``-runs=N`` inputs mutated from the seeds with ``-seed=S``: the
same seed gives the same inputs, so a CI failure replays locally. Either way
a path to a file runs that one input (a finding to reproduce), and a path
to a directory adds its files to the corpus.

A finding is any exception out of ``test_one_input``; the random runner
writes the input to ``crash-<sha1>`` in the current directory, prints the
traceback and exits 1 (libFuzzer does the same under atheris).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# The checkout's ice, not an installed one (sys.path[0] is fuzz/ for a script).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)

RANDOM = "--random" in sys.argv or os.environ.get("ICE_FUZZ_RANDOM") == "1"
if RANDOM:
    atheris: Any = None
else:
    try:
        import atheris
    except ImportError:
        atheris = None
        RANDOM = True
if "--random" in sys.argv:
    sys.argv.remove("--random")


class Finding(AssertionError):
    """A broken contract (an unexpected exception is a finding too)."""


def instrument_func(func: Callable[..., Any]) -> Callable[..., Any]:
    return func if atheris is None else atheris.instrument_func(func)


@contextmanager
def instrument_imports() -> Iterator[None]:
    if atheris is None:
        yield
    else:
        with atheris.instrument_imports():
            yield


# -- the contract


class LogWatch(logging.Handler):
    """Collects what ice logs at ERROR or with a traceback: a machine's catch-all
    swallowing an exception is a finding even though nothing escapes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        root = logging.getLogger("ice")
        root.addHandler(self)
        root.setLevel(logging.WARNING)  # debug lines are not formatted at all
        root.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def check(self) -> None:
        if self.records:
            record = self.records[0]
            self.records.clear()
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            raise Finding(f"{record.name} logged {record.levelname}: {text}")


# -- the input format: records of (control byte, payload)

_RECORD = struct.Struct(">BH")


def records(data: bytes, limit: int = 16) -> list[tuple[int, bytes]]:
    """Split an input into at most ``limit`` (control, payload) records: a control
    byte, a 16-bit length, that many bytes (fewer at the end of the input)."""
    out = []
    offset = 0
    while offset + 3 <= len(data) and len(out) < limit:
        control, length = _RECORD.unpack_from(data, offset)
        offset += 3
        out.append((control, data[offset : offset + length]))
        offset += length
    return out


def encode_records(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(_RECORD.pack(control, len(payload)) + payload for control, payload in items)


class Recipe:
    """Reads choices off an input (the subset of atheris.FuzzedDataProvider the
    targets use, the same under both runners, so corpora move between them)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def remaining_bytes(self) -> int:
        return len(self.data) - self.offset

    def ConsumeBytes(self, count: int) -> bytes:
        out = self.data[self.offset : self.offset + max(count, 0)]
        self.offset += len(out)
        return out

    def ConsumeIntInRange(self, low: int, high: int) -> int:
        span = high - low
        if span <= 0:
            return low
        size = (span.bit_length() + 7) // 8
        raw = self.ConsumeBytes(size)
        return low + int.from_bytes(raw, "big") % (span + 1) if raw else low

    def ConsumeBool(self) -> bool:
        return bool(self.ConsumeIntInRange(0, 1))

    def ConsumeProbability(self) -> float:
        return self.ConsumeIntInRange(0, 0xFFFF) / 0xFFFF


# -- the random runner

_INTERESTING16 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000,
                  0xFFFE, 0xFFFF)  # fmt: skip


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One to four byte-level mutations of ``data`` (libFuzzer's usual ones)."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        kind = rng.randrange(11)
        n = len(out)
        if kind == 0 and n:  # flip a bit
            i = rng.randrange(n)
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and n:  # a random byte
            out[rng.randrange(n)] = rng.randrange(256)
        elif kind == 2:  # insert random bytes
            i = rng.randrange(n + 1)
            out[i:i] = rng.randbytes(rng.choice((1, 1, 2, 4, 8, 16, 64)))
        elif kind == 3 and n:  # delete a range
            i = rng.randrange(n)
            del out[i : i + rng.choice((1, 2, 4, 8, 32))]
        elif kind == 4 and n:  # duplicate a range
            i = rng.randrange(n)
            out[i:i] = out[i : i + rng.choice((1, 4, 8, 20, 64))]
        elif kind == 5 and n >= 2:  # an interesting 16-bit value, aligned as STUN is
            i = rng.randrange(0, n - 1) & ~1
            out[i : i + 2] = rng.choice(_INTERESTING16).to_bytes(2, "big")
        elif kind == 6 and n:  # truncate
            del out[rng.randrange(n) :]
        elif kind == 7 and corpus:  # splice with another input
            other = rng.choice(corpus)
            i, j = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            out = out[:i] + other[j:]
        elif kind == 8 and n:  # an arithmetic change of a byte
            i = rng.randrange(n)
            out[i] = (out[i] + rng.choice((-2, -1, 1, 2, 4, 16))) % 256
        elif kind == 9 and n:  # a printable or control character (text formats)
            out[rng.randrange(n)] = rng.choice(b" \t\r\n\x00\x7f\"'=[]{},.:/-#\\\xc3\xff0aZ")
        elif kind == 10 and n >= 4:  # copy a chunk from elsewhere in the input
            i, j = rng.randrange(n), rng.randrange(n)
            size = rng.choice((2, 4, 8))
            out[j : j + size] = out[i : i + size]
    return bytes(out[:65536])


def _run_random(
    test_one_input: Callable[[bytes], None],
    corpus: list[bytes],
    runs: int,
    seed: int,
    max_time: float,
    name: str,
) -> int:
    rng = random.Random(seed)
    pool = list(corpus)  # seeds, then a bounded set of recent mutants to mutate further
    start = time.perf_counter()
    done = 0
    data = b""
    try:
        for data in corpus:  # every seed as it is first
            test_one_input(data)
            done += 1
        while done < runs:
            if max_time and done % 256 == 0 and time.perf_counter() - start > max_time:
                break
            roll = rng.random()
            if roll < 0.02:
                data = rng.randbytes(rng.randrange(0, 200))
            else:
                data = mutate(rng, rng.choice(pool), pool)
            test_one_input(data)
            done += 1
            if roll > 0.9:
                if len(pool) < len(corpus) + 256:
                    pool.append(data)
                else:
                    pool[len(corpus) + rng.randrange(256)] = data
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        path = f"crash-{hashlib.sha1(data).hexdigest()}"
        with open(path, "wb") as f:
            f.write(data)
        traceback.print_exc()
        print(f"== {name}: FINDING after {done} inputs (seed {seed}); input written to {path}")
        print(f"   replay: python fuzz/{name}.py --random {path}")
        print(f"   input ({len(data)} bytes): {data[:256].hex()}{'...' if len(data) > 256 else ''}")
        return 1
    took = time.perf_counter() - start
    print(
        f"== {name}: {done} inputs in {took:.1f} s ({done / max(took, 1e-9):,.0f}/s), "
        f"seed {seed}, no finding"
    )
    return 0


def _flag(args: list[str], name: str, default: float) -> float:
    for arg in reversed(args):
        if arg.startswith(f"-{name}="):
            return float(arg.split("=", 1)[1])
    return default


def main(test_one_input: Callable[[bytes], None], seeds: Callable[[], list[bytes]]) -> None:
    """Run a target: atheris when there is one, the random runner otherwise."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    args = sys.argv[1:]
    paths = [a for a in args if not a.startswith("-")]
    if atheris is not None:
        argv = list(sys.argv)
        if not any(os.path.isdir(p) for p in paths) and not any(os.path.isfile(p) for p in paths):
            scratch = tempfile.mkdtemp(prefix=f"{name}-corpus-")
            argv.append(scratch)
            paths = [scratch]
        for path in paths:  # an empty corpus directory starts from the seeds
            if os.path.isdir(path) and not os.listdir(path):
                for data in seeds():
                    with open(os.path.join(path, hashlib.sha1(data).hexdigest()), "wb") as f:
                        f.write(data)
        atheris.Setup(argv, test_one_input)
        atheris.Fuzz()
        return
    files = [p for p in paths if os.path.isfile(p)]
    if files:  # replay
        for path in files:
            with open(path, "rb") as f:
                test_one_input(f.read())
            print(f"{path}: no finding")
        return
    corpus = seeds()
    for path in paths:
        for entry in sorted(os.listdir(path)):
            with open(os.path.join(path, entry), "rb") as f:
                corpus.append(f.read())
    runs = int(_flag(args, "runs", _flag(args, "atheris_runs", 100_000)))
    seed = int(_flag(args, "seed", 1))
    max_time = _flag(args, "max_total_time", 0)
    sys.exit(_run_random(test_one_input, corpus, runs, seed, max_time, name))
