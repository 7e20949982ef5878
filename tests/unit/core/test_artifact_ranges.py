"""The one Range header an artifact download answers, and the ones it ignores or refuses."""

from __future__ import annotations

import pytest

from core.endpoints.artifacts import Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=50-1000", (50, 99)),
        ("bytes=99-99", (99, 99)),
        # ignored: the whole file (RFC 9110 lets a server ignore what it does not serve)
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=9-2", None),
        ("bytes=-", None),
        ("bytes=x-1", None),
    ],
)
def test_a_single_range_is_parsed_and_the_rest_ignored(
    header: str | None, want: tuple[int, int] | None
) -> None:
    assert parse_range(header, 100) == want


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_a_range_past_the_end_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)
