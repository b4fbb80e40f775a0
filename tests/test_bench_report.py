"""ice bench's explanation of a missed row: how much of it is calling (no timing here)."""

from __future__ import annotations

from functools import partial

from ice._bench import report, runner


def test_python_calls_counts_the_loop_call_and_each_call_in_the_body() -> None:
    msg: list[int] = []

    def two_calls() -> None:
        msg.append(1)
        msg.clear()

    def none() -> None:
        return None

    assert runner.python_calls(two_calls) == 3
    assert runner.python_calls(none) == 1
    assert runner.python_calls(msg.clear) == 1
    assert runner.python_calls(partial(msg.append, 1)) == 1


def _table(name: str, median: float, calls: int) -> str:
    result = report.Result(name, median, median, calls=calls)
    return report.build_table([result], call_floor_ns=30.0, c_call_floor_ns=20.0)


def test_a_missed_row_says_how_much_is_calling() -> None:
    # Username_AddTo: Go 9.58 ns, target Go + 60 = 69.6 ns; 3 calls: 30 + 2 x 20 = 70 ns.
    table = _table("Username_AddTo", 90.0, calls=3)
    line = next(line for line in table.splitlines() if line.startswith("- Username_AddTo"))
    assert "3 Python-level calls per iteration" in line
    assert "= 70.0 ns of calling" in line
    assert "the rest, 20.0 ns, is the work; the rest is within the target" in line


def test_a_row_whose_work_alone_misses_does_not_claim_otherwise() -> None:
    table = _table("Username_AddTo", 400.0, calls=3)
    line = next(line for line in table.splitlines() if line.startswith("- Username_AddTo"))
    assert "the rest, 330 ns, is the work" in line
    assert "within the target" not in line


def test_a_row_met_or_uncounted_gets_no_explanation() -> None:
    assert "Why" not in _table("Username_AddTo", 50.0, calls=3)
    assert "Why" not in _table("Username_AddTo", 90.0, calls=0)


def test_a_missed_row_that_raises_is_set_beside_the_cheapest_raise() -> None:
    # Nonce_AddTo_BadLength refuses a value on every iteration: calling alone
    # does not explain it, CPython's cheapest raise in the same loop does.
    result = report.Result("Nonce_AddTo_BadLength", min_ns=380.0, median_ns=390.0, calls=5)
    table = report.build_table(
        [result], call_floor_ns=30.0, c_call_floor_ns=20.0, raise_floor_ns=300.0
    )
    line = next(l for l in table.splitlines() if l.startswith("- Nonce_AddTo_BadLength"))
    assert "CPython's cheapest raise" in line
    assert "costs 300 ns in this loop" in line
    assert "cost 90.0 ns beyond it" in line
    assert "Python-level calls" not in line
    # Without the raise floor (an older JSON), it is explained by its calls as before.
    old = report.build_table([result], call_floor_ns=30.0, c_call_floor_ns=20.0)
    assert "5 Python-level calls per iteration" in next(
        l for l in old.splitlines() if l.startswith("- Nonce_AddTo_BadLength")
    )


def test_the_cheapest_raise_floor_raises_and_catches() -> None:
    runner._cheapest_raise()  # an IndexError escaping would fail here
    assert runner.RAISE_FLOOR_NAME == "(cheapest raise)"
