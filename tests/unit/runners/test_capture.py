"""Bounded capture and live-line splitting, without a container."""

from __future__ import annotations

from runners.capture import LINE_MAX_BYTES, Bounded, Lines, RateLimit


def test_bounded_keeps_the_head_and_flags_the_rest() -> None:
    kept = Bounded(5)
    kept.add(b"abc")
    assert not kept.truncated
    kept.add(b"defgh")
    kept.add(b"ijk")
    assert kept.text() == "abcde" and kept.truncated and kept.total == 11


def test_bounded_cut_inside_a_character_stays_readable() -> None:
    kept = Bounded(2)
    kept.add("é!".encode())  # é is two bytes; the cut falls after it
    kept.add("ü".encode())
    assert kept.text() == "é" and kept.truncated


def test_rate_limit_allows_a_burst_then_refills() -> None:
    now = [0.0]
    limit = RateLimit(2, clock=lambda: now[0])
    assert [limit.allow() for _ in range(3)] == [True, True, False]
    now[0] = 0.5  # one token back
    assert [limit.allow(), limit.allow()] == [True, False]
    assert limit.dropped == 2


def test_lines_split_across_chunks_and_cut_long_lines() -> None:
    got: list[tuple[str, str]] = []
    lines = Lines("stdout", lambda s, line: got.append((s, line)), RateLimit(1000))
    lines.add(b"one\ntw")
    lines.add(b"o\n" + b"x" * (LINE_MAX_BYTES + 10))
    lines.flush()
    assert got == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stdout", "x" * LINE_MAX_BYTES),
        ("stdout", "x" * 10),
    ]


def test_lines_over_the_rate_are_dropped() -> None:
    got: list[str] = []
    lines = Lines("stderr", lambda s, line: got.append(line), RateLimit(0, clock=lambda: 0.0))
    lines.add(b"a\nb\nc\n")
    assert got == ["a"]  # the bucket holds at least one line
