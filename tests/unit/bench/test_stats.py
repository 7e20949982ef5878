"""The bench's arithmetic: percentiles, pairing floor and homerun runs, the report table."""

from __future__ import annotations

import pytest

from bench.stats import Figures, Target, percentile, report, rows


def figures(concurrency: int, latencies: list[float], wall: float) -> Figures:
    return Figures(concurrency, tuple(latencies), wall)


def test_percentile_is_an_observed_value() -> None:
    samples = [0.4, 0.1, 0.3, 0.2]
    assert percentile(samples, 0.50) == 0.2
    assert percentile(samples, 0.95) == 0.4
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_each_homerun_run_is_compared_with_the_floor_run_next_to_it() -> None:
    # Two pairs at c=1 on a machine whose load changed between them: each ratio is
    # taken within its pair, so the floor's drift does not show up as homerun overhead.
    floor = [figures(1, [0.2, 0.2], 1.0), figures(1, [0.4, 0.4], 2.0)]
    measured = [figures(1, [0.22, 0.22], 1.1), figures(1, [0.48, 0.48], 2.5)]
    p50, p95, throughput = rows(floor, measured)
    assert (p50.metric, p95.metric, throughput.metric) == (
        "latency p50",
        "latency p95",
        "throughput",
    )
    assert p50.ratios == pytest.approx((1.1, 1.2))
    assert p50.ratio == pytest.approx(1.15)
    assert p50.floor == pytest.approx(0.3) and p50.homerun == pytest.approx(0.35)
    assert throughput.ratios == pytest.approx((2 / 1.1 / 2, 2 / 2.5 / 1))
    assert throughput.ratio == pytest.approx((1 / 1.1 + 0.8) / 2)


def test_pairs_must_line_up() -> None:
    with pytest.raises(ValueError):
        rows([figures(1, [0.2], 1.0)], [])
    with pytest.raises(ValueError):
        rows([figures(1, [0.2], 1.0)], [figures(2, [0.2], 1.0)])


def test_report_gives_verdicts_and_shows_the_spread_only_for_repeats() -> None:
    once = report([figures(1, [0.2], 1.0)], [figures(1, [0.21], 1.2)], Target())
    assert "(min-max)" not in once
    lines = once.splitlines()[1:]
    assert "1.05x" in lines[0] and lines[0].endswith("ok")  # p50 within 1.15x
    assert "0.83x" in lines[2] and lines[2].endswith("MISSED")  # throughput below 0.9x

    twice = report(
        [figures(4, [0.5], 1.0), figures(4, [0.5], 1.0)],
        [figures(4, [0.55], 1.0), figures(4, [0.65], 1.0)],
        Target(),
    )
    p50 = twice.splitlines()[1]
    assert "(min-max)" in twice.splitlines()[0]
    assert "1.20x" in p50 and "(1.10-1.30)" in p50 and p50.endswith("MISSED")
