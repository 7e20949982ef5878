"""Latency and throughput figures, and how they compare with a floor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation between two."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figures:
    """One measured configuration: per-item latencies and the wall time for all of them."""

    concurrency: int
    latencies: tuple[float, ...]  # seconds, one per item
    wall_seconds: float

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)

    @property
    def throughput(self) -> float:
        """Items finished per second while ``concurrency`` were in flight."""
        return len(self.latencies) / self.wall_seconds


@dataclass(frozen=True)
class Target:
    latency_max_ratio: float = 1.15  # homerun p50/p95 at most this times the floor's
    throughput_min_ratio: float = 0.90  # homerun throughput at least this times the floor's


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(floor: Sequence[Figures], measured: Sequence[Figures], target: Target) -> str:
    """A table of homerun against the floor at each concurrency, ratios and verdicts."""
    by_c = {f.concurrency: f for f in floor}
    lines = [
        f"{'c':>2}  {'metric':<14}{'floor':>10}{'homerun':>10}{'ratio':>8}  target",
    ]
    for m in measured:
        f = by_c[m.concurrency]
        for name, fv, mv in (("latency p50", f.p50, m.p50), ("latency p95", f.p95, m.p95)):
            ratio = mv / fv
            lines.append(
                f"{m.concurrency:>2}  {name:<14}{fv * 1000:>8.0f}ms{mv * 1000:>8.0f}ms"
                f"{ratio:>7.2f}x  <= {target.latency_max_ratio:.2f}x"
                f" {verdict(ratio <= target.latency_max_ratio)}"
            )
        ratio = m.throughput / f.throughput
        lines.append(
            f"{m.concurrency:>2}  {'throughput':<14}{f.throughput:>7.2f}/s {m.throughput:>7.2f}/s"
            f"{ratio:>7.2f}x  >= {target.throughput_min_ratio:.2f}x"
            f" {verdict(ratio >= target.throughput_min_ratio)}"
        )
    return "\n".join(lines)


def describe(figures: Figures) -> str:
    return (
        f"c={figures.concurrency}: n={len(figures.latencies)} p50={figures.p50 * 1000:.0f}ms"
        f" p95={figures.p95 * 1000:.0f}ms throughput={figures.throughput:.2f}/s"
    )
