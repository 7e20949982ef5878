"""A map task on real runners and real containers (#14 "Fan-out"): items with max_parallel
4 across two runners of four slots each never run more than four at once, the aggregator
gets every output in item order, and the one item that fails its first attempt is retried
alone.

24 items, not 200: a container costs ~1.5 s on a loaded 2-core machine, so 200 at four
wide would add minutes to the suite. The 200-item case, with several claimers racing on
the same Postgres, is tests/integration/core/test_fanout.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from databases import Database

from core import transitions as tr
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration

ITEMS = 24
MAX_PARALLEL = 4
FLAKY = 17

# Each instance reads its index from /homerun/inputs/_map.json; item 17 fails attempt 1.
SQUARE = f"""
i=$(sed -n 's/.*"index": *\\([0-9]*\\).*/\\1/p' /homerun/inputs/_map.json)
if [ "$i" = {FLAKY} ] && [ "$HOMERUN_ATTEMPT" = 1 ]; then echo "item $i fails once" >&2; exit 3; fi
printf '{{"i": %s, "sq": %s}}' "$i" "$((i * i))" > /homerun/output.json
"""


async def most_at_once(db: Database, job_id: str) -> int:
    """The most instance attempts running at one moment, from Postgres' start and finish
    timestamps (a finish and a start at the same instant count as one after the other)."""
    return int(
        await db.fetch_val(
            "SELECT max(n) FROM (SELECT sum(step) OVER (ORDER BY at, step) AS n FROM ("
            "  SELECT a.started_at AS at, 1 AS step FROM attempts a"
            "   JOIN tasks t ON t.id = a.task_id WHERE t.job_id = :j AND t.map_parent IS NOT NULL"
            "  UNION ALL SELECT a.finished_at, -1 FROM attempts a"
            "   JOIN tasks t ON t.id = a.task_id WHERE t.job_id = :j AND t.map_parent IS NOT NULL"
            " ) edges) running",
            {"j": job_id},
        )
    )


async def test_a_map_with_max_parallel_4_on_two_runners(
    db: Database, jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        tr.NewTask(
            "sq",
            "shell",
            {"script": SQUARE},
            map=tr.MapSpec(items=list(range(ITEMS)), max_parallel=MAX_PARALLEL, max_items=ITEMS),
        ),
        shell("sum", "cat /homerun/inputs/sq.json > /homerun/output.json", depends_on=["sq"]),
    )
    start_runner(runner_id="fanout-a", runner_concurrency=4)
    start_runner(runner_id="fanout-b", runner_concurrency=4)
    await eventually(lambda: jobs.finished(created.job_id), 180, "the map job to finish")

    assert await jobs.job_status(created.job_id) == "succeeded"
    assert 1 < await most_at_once(db, created.job_id) <= MAX_PARALLEL
    tasks = await jobs.tasks(created.job_id)
    total = json.loads(tasks["sum"]["output"])
    assert total == [{"i": i, "sq": i * i} for i in range(ITEMS)]
    retried = {name: t["attempts"] for name, t in tasks.items() if t["attempts"] > 1}
    assert retried == {f"sq[{FLAKY}]": 2}
    both = await db.fetch_val(
        "SELECT count(DISTINCT a.runner_id) FROM attempts a JOIN tasks t ON t.id = a.task_id"
        " WHERE t.job_id = :j",
        {"j": created.job_id},
    )
    assert both == 2  # the cap held across two runners, not inside one


# Item 0 fails for good after a while; the others would run for five minutes.
FAIL_OR_HANG = """
i=$(sed -n 's/.*"index": *\\([0-9]*\\).*/\\1/p' /homerun/inputs/_map.json)
if [ "$i" = 0 ]; then sleep 6; echo "item 0 fails" >&2; exit 3; fi
sleep 300
"""


async def test_an_instance_failing_for_good_stops_its_running_siblings(
    db: Database, jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        tr.NewTask(
            "sq",
            "shell",
            {"script": FAIL_OR_HANG},
            max_attempts=1,
            map=tr.MapSpec(items=[0, 1, 2], max_items=3),
        ),
    )
    start_runner(runner_id="fanout-stop", runner_concurrency=3)

    async def siblings_running() -> bool:
        tasks = await jobs.tasks(created.job_id)
        return all(tasks.get(f"sq[{i}]", {}).get("status") == "running" for i in (1, 2))

    await eventually(siblings_running, 60, "sq[1] and sq[2] to run beside sq[0]")
    # Well before the siblings' 300 s: they were stopped, not waited for.
    await eventually(lambda: jobs.finished(created.job_id), 60, "the failed map's job to end")
    assert await jobs.job_status(created.job_id) == "failed"
    tasks = await jobs.tasks(created.job_id)
    assert tasks["sq"]["status"] == "failed"
    assert tasks["sq"]["error"].startswith("instance sq[0] failed")
    for name in ("sq[1]", "sq[2]"):
        assert tasks[name]["status"] == "cancelled", name
        (attempt,) = await jobs.attempts(str(tasks[name]["id"]))
        assert attempt["status"] == "cancelled", name
