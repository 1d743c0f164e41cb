from __future__ import annotations

from broker._limits import CappedCounts, TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=100, burst=100, now=0.0)
    assert bucket.take(100, now=0.0)
    assert not bucket.take(1, now=0.0)
    assert bucket.take(50, now=0.5)
    assert not bucket.take(60, now=0.5)
    assert bucket.take(100, now=10.0)  # refills only up to the burst
    assert not bucket.take(1, now=10.0)


def test_capped_counts_cap_and_release() -> None:
    counts = CappedCounts[str](cap=2)
    assert counts.acquire("a")
    assert counts.acquire("a")
    assert not counts.acquire("a")
    assert counts.acquire("b")
    counts.release("a")
    assert counts["a"] == 1
    assert counts.acquire("a")
    counts.release("b")
    assert counts["b"] == 0
