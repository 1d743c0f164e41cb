"""When a sink's message is tried again (pure: the time and the randomness are arguments)."""

from __future__ import annotations

import datetime
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker._notify_retry import (
    MIN_PAUSE_S,
    Delivered,
    Rejected,
    Retry,
    backoff_s,
    outcome_of_answer,
    outcome_of_failure,
    retry_after_s,
)

NOW = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


def answer(
    status: int,
    *,
    retry_after: str | None = None,
    body: bytes = b"",
    attempt: int = 1,
    retry_max_s: float = 300.0,
    random: float = 0.5,
) -> Delivered | Retry | Rejected:
    return outcome_of_answer(
        status,
        retry_after=retry_after,
        body=body,
        attempt=attempt,
        retry_max_s=retry_max_s,
        random=random,
        now=NOW,
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert answer(status) == Delivered(status)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_timeouts_too_many_and_server_errors_are_retried(status: int) -> None:
    outcome = answer(status, random=0.0)
    assert outcome == Retry(1.0, f"HTTP {status}")


@pytest.mark.parametrize("status", [100, 301, 302, 304, 400, 401, 403, 404, 410, 413, 422])
def test_other_statuses_are_rejected_with_the_start_of_the_body(status: int) -> None:
    outcome = answer(status, body=("é" * 150 + "x" * 300).encode())
    assert outcome == Rejected(status, "é" * 150 + "x" * 50)


def test_the_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    # random=0 gives the top of the jitter range: the cap itself.
    assert [backoff_s(attempt, 20.0, 0.0) for attempt in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]
    assert backoff_s(10_000, 300.0, 0.0) == 300.0


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    retry_max_s=st.floats(min_value=0.0, max_value=86_400.0),
    random=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_the_jittered_backoff_is_between_half_and_all_of_the_cap_and_never_zero(
    attempt: int, retry_max_s: float, random: float
) -> None:
    cap = max(min(2.0 ** min(attempt - 1, 62), retry_max_s), MIN_PAUSE_S)
    delay = backoff_s(attempt, retry_max_s, random)
    assert cap / 2 < delay <= cap
    assert delay > 0


def test_jitter_spreads_a_fleet() -> None:
    delays = {backoff_s(5, 300.0, random) for random in (0.0, 0.25, 0.5, 0.75, 0.999)}
    assert len(delays) == 5


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_on_429_and_503_is_the_pause(status: int) -> None:
    assert answer(status, retry_after="7") == Retry(7.0, f"HTTP {status}")
    assert answer(status, retry_after=" 120 ", attempt=9) == Retry(120.0, f"HTTP {status}")


def test_retry_after_as_an_http_date_is_the_pause_until_then() -> None:
    when = email.utils.format_datetime(NOW + datetime.timedelta(seconds=30), usegmt=True)
    assert answer(429, retry_after=when) == Retry(30.0, "HTTP 429")


def test_retry_after_is_capped_at_retry_max_s() -> None:
    assert answer(429, retry_after="3600", retry_max_s=60.0) == Retry(60.0, "HTTP 429")


def test_retry_after_on_other_statuses_is_ignored() -> None:
    assert answer(500, retry_after="60", random=0.0) == Retry(1.0, "HTTP 500")


@pytest.mark.parametrize("value", ["soon", "", "-5", "1.5e3", "0", "Tue, 04 Mar 2025 05:06:00 GMT"])
def test_an_unreadable_zero_or_past_retry_after_falls_back_to_the_backoff(value: str) -> None:
    assert answer(429, retry_after=value, attempt=3, random=0.0) == Retry(4.0, "HTTP 429")


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("15", NOW) == 15.0
    assert retry_after_s("Tue, 04 Mar 2025 05:07:07 GMT", NOW) == 60.0
    assert retry_after_s("Tue, 04 Mar 2025 05:07:07", NOW) == 60.0
    assert retry_after_s("nonsense", NOW) is None


def test_no_answer_is_retried_with_the_backoff() -> None:
    outcome = outcome_of_failure("no answer within 10 s", attempt=2, retry_max_s=300.0, random=0.0)
    assert outcome == Retry(2.0, "no answer within 10 s")


def test_a_tiny_cap_still_pauses() -> None:
    assert answer(429, retry_after="5", retry_max_s=0.0) == Retry(MIN_PAUSE_S, "HTTP 429")
    assert backoff_s(1, 0.0, 0.0) == MIN_PAUSE_S
