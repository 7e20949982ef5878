"""The one backoff formula, as each of its three users sets it."""

from __future__ import annotations

import pytest

from core.backoff import Backoff, delay


def test_without_jitter_the_pause_doubles_from_base_to_the_cap() -> None:
    assert [delay(n, 0.1, 2.0, jitter=0) for n in range(1, 8)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    )


def test_attempt_zero_or_less_waits_the_base() -> None:
    assert delay(0, 1.5, 60.0, jitter=0) == delay(-3, 1.5, 60.0, jitter=0) == 1.5


def test_full_jitter_spreads_the_pause_over_all_of_it() -> None:
    pauses = [delay(3, 1.0, 60.0, jitter=1.0) for _ in range(2000)]
    assert all(0.0 <= p <= 4.0 for p in pauses)
    # The whole range is used: missing either end by chance is about e**-50 likely.
    assert min(pauses) < 0.1 and max(pauses) > 3.9


def test_partial_jitter_takes_at_most_its_share_off() -> None:
    pauses = [delay(2, 1.0, 60.0, jitter=0.2) for _ in range(2000)]
    assert all(1.6 <= p <= 2.0 for p in pauses)
    assert min(pauses) < 1.62 and max(pauses) > 1.98


def test_a_long_outage_never_overflows() -> None:
    # A notifier that counts the failures of a week-long outage asks for this.
    assert delay(10**6, 0.1, 2.0, jitter=0) == 2.0


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        delay(1, 1.0, 2.0, jitter=1.5)


def test_a_loop_backs_off_per_failure_and_starts_over_after_a_success() -> None:
    pauses = Backoff(0.1, 2.0)
    assert [pauses.failed() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.4])
    pauses.reset()
    assert pauses.failed() == pytest.approx(0.1)
