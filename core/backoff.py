"""The one backoff formula: how long to wait before trying something again.

Three loops retry with it, each with its own numbers: a failed task attempt
(``retry_base_seconds`` … ``retry_max_seconds``, full jitter, so that the many tasks a
failing dependency broke at once do not all come back at once), a failed webhook delivery
(``webhook_retry_*``, a little jitter) and the notifier's reconnects (0.1 s … 2 s, none:
one process waits on one store, nobody to spread out).

The pause doubles per failure up to a cap; ``jitter`` then takes a random share of up to
that fraction off: 0 gives the pause exactly, 1 anything between none and all of it (the
"full jitter" of the AWS Architecture Blog's "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "delay"]

# Doubling past this changes nothing for any sane cap, and 2.0 ** 1100 would overflow: a
# loop that counts the failures of an outage lasting a week must not crash on them.
_MAX_DOUBLINGS = 64


def delay(attempt: int, base: float, cap: float, *, jitter: float) -> float:
    """Seconds to wait after failure number ``attempt`` (1-based).

    ``base * 2 ** (attempt - 1)``, at most ``cap``, times a random factor in
    ``[1 - jitter, 1]``.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    ceiling = min(cap, base * 2.0**doublings)
    return ceiling * (1.0 - jitter * random.random())


class Backoff:
    """The pauses of one retry loop: ``failed()`` after each failure, ``reset()`` on success."""

    def __init__(self, base: float, cap: float, *, jitter: float = 0.0) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next try."""
        self.failures += 1
        return delay(self.failures, self.base, self.cap, jitter=self.jitter)

    def reset(self) -> None:
        self.failures = 0
