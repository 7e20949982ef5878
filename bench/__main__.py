"""``python -m bench`` (``make bench``): homerun against the raw Docker SDK floor, same run.

For each concurrency the floor (one hardened container through the Docker SDK: create,
start, wait, logs, remove, on the shell task's image) is measured right before homerun
(a trivial ``shell`` job through the real API, queue, runner and notifier), so both see the
same machine load. Figures are printed, never asserted: timing on a shared machine is noisy;
``--repeat`` measures each pair again and prints the median ratio with its range.

Then the API's p99 during a retention purge beside its p99 without one (``bench.retention``),
and the dashboard's jobs page p95 beside GET /v1/jobs over 10,000 jobs (``bench.dashboard``).
"""

from __future__ import annotations

import argparse
import sys

from bench.floor import measure_floor
from bench.stats import Figures, Target, describe, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=40, help="items per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--repeat", type=int, default=1, help="floor/homerun pairs per concurrency level"
    )
    parser.add_argument(
        "--wait",
        choices=["sse", "poll"],
        default="sse",
        help="how the client learns the job finished (default: its SSE event stream)",
    )
    parser.add_argument(
        "--floor-only", action="store_true", help="measure the Docker SDK floor alone"
    )
    parser.add_argument(
        "--retention-jobs",
        type=int,
        default=10_000,
        help="expired jobs the retention figure purges (0: leave that figure out)",
    )
    parser.add_argument(
        "--dashboard-jobs",
        type=int,
        default=10_000,
        help="jobs the dashboard's jobs page lists (0: leave that figure out)",
    )
    args = parser.parse_args(argv)

    floor: list[Figures] = []
    measured: list[Figures] = []
    if args.floor_only:
        for c in args.concurrency:
            floor += measure_floor([c], args.samples)
            print(f"floor   {describe(floor[-1])}", flush=True)
        return 0

    from bench.pipeline import measure_pipeline, phases
    from tests.harness.stack import private_stack

    with private_stack("bench", runner_concurrency=max(args.concurrency)) as stack:
        for c in [c for c in args.concurrency for _ in range(args.repeat)]:
            floor += measure_floor([c], args.samples)
            print(f"floor   {describe(floor[-1])}", flush=True)
            figures, samples = measure_pipeline(stack, c, args.samples, args.wait)
            measured.append(figures)
            print(f"homerun {describe(figures)}", flush=True)
            legs = "  ".join(f"{k}={v * 1000:.0f}ms" for k, v in phases(stack, samples).items())
            print(f"        median legs: {legs}", flush=True)
    print()
    print(report(floor, measured, Target()))
    if args.retention_jobs:
        from bench.retention import measure_retention

        print(measure_retention(args.retention_jobs).line(), flush=True)
    if args.dashboard_jobs:
        from bench.dashboard import measure_dashboard

        print(measure_dashboard(args.dashboard_jobs).line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
