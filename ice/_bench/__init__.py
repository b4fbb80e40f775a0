"""Codec benchmarks mirroring pion's Go benchmarks (``python -m ice bench``)."""
