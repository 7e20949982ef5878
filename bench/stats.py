"""Latency and throughput figures, and how they compare with a floor."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Row:
    """One metric at one concurrency: medians, and the ratio of each floor/homerun pair."""

    concurrency: int
    metric: str
    floor: float
    homerun: float
    ratios: tuple[float, ...]  # homerun / floor, one per pair measured back to back

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def rows(floor: Sequence[Figures], measured: Sequence[Figures]) -> list[Row]:
    """Pair ``floor[i]`` with ``measured[i]`` (measured back to back), by concurrency.

    A pair's ratio compares two runs that saw the same machine load; with several pairs
    per concurrency the median ratio is the figure and their range is the noise.
    """
    if len(floor) != len(measured):
        raise ValueError("every homerun run needs the floor run measured next to it")
    pairs: dict[int, list[tuple[Figures, Figures]]] = {}
    for f, m in zip(floor, measured, strict=True):
        if f.concurrency != m.concurrency:
            raise ValueError(f"pair of concurrency {f.concurrency} and {m.concurrency}")
        pairs.setdefault(m.concurrency, []).append((f, m))
    metrics: tuple[tuple[str, Callable[[Figures], float]], ...] = (
        ("latency p50", lambda x: x.p50),
        ("latency p95", lambda x: x.p95),
        ("throughput", lambda x: x.throughput),
    )
    return [
        Row(
            concurrency,
            name,
            statistics.median(value(f) for f, _ in runs),
            statistics.median(value(m) for _, m in runs),
            tuple(value(m) / value(f) for f, m in runs),
        )
        for concurrency, runs in pairs.items()
        for name, value in metrics
    ]


def report(floor: Sequence[Figures], measured: Sequence[Figures], target: Target) -> str:
    """A table of homerun against the floor at each concurrency, ratios and verdicts."""
    table = rows(floor, measured)
    spread = any(len(r.ratios) > 1 for r in table)
    lines = [
        f"{'c':>2}  {'metric':<14}{'floor':>10}{'homerun':>10}{'ratio':>8}"
        + (f"  {'(min-max)':<13}" if spread else "")
        + "  target",
    ]
    for r in table:
        if r.metric == "throughput":
            values = f"{r.floor:>7.2f}/s {r.homerun:>7.2f}/s"
            ok = r.ratio >= target.throughput_min_ratio
            goal = f">= {target.throughput_min_ratio:.2f}x"
        else:
            values = f"{r.floor * 1000:>8.0f}ms{r.homerun * 1000:>8.0f}ms"
            ok = r.ratio <= target.latency_max_ratio
            goal = f"<= {target.latency_max_ratio:.2f}x"
        noise = f"  ({min(r.ratios):.2f}-{max(r.ratios):.2f}) " if spread else ""
        head = f"{r.concurrency:>2}  {r.metric:<14}{values}"
        lines.append(f"{head}{r.ratio:>7.2f}x{noise}  {goal} {verdict(ok)}")
    return "\n".join(lines)


def describe(figures: Figures) -> str:
    return (
        f"c={figures.concurrency}: n={len(figures.latencies)} p50={figures.p50 * 1000:.0f}ms"
        f" p95={figures.p95 * 1000:.0f}ms throughput={figures.throughput:.2f}/s"
    )
