"""Types of the compiled Binding answer (ice/stun/_binding.pyx); see its module doc."""

class BindingResponder:
    """Builds Binding success responses for plain requests; None for the rest."""

    @property
    def answered(self) -> int:
        """Requests answered so far."""

    def __init__(self, software: str | None = None) -> None: ...
    def answer(self, data: bytes, addr: tuple[str, int]) -> bytes | None: ...
    def answer_batch(
        self, datagrams: list[tuple[bytes, tuple[str, int]]]
    ) -> tuple[list[tuple[bytes, tuple[str, int]]], list[tuple[bytes, tuple[str, int]]]]:
        """answer() over a batch: (the responses with their addresses, the rest in order)."""
