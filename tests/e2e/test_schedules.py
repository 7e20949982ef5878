"""A schedule on the deployed stack: created through the API, fired by the notifier's
scheduler, its jobs run by the runners; one job per tick; pausing stops the jobs.

Its job asks for what only the API's settings used to allow (a runner group's label and
egress, both on in the session stack): the notifier validates each tick's job again, and
before it had the API's validator settings it skipped every tick of such a schedule."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx

from tests.conftest import wait_for
from tests.e2e.conftest import Stack

EVERY_2S = "*/2 * * * * *"  # cronsim's 6 fields, seconds first
TICK = timedelta(seconds=2)
JOB = {
    "name": "e2e-tick",
    "tasks": [
        {
            "name": "t",
            "type": "shell",
            "payload": {"script": "true"},
            "runs_on": ["bigdisk"],  # runner-big's label (tests/e2e/conftest.py)
            "network": "egress",
        }
    ],
}


def _jobs(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    page = http.get("/v1/jobs", params={"schedule": schedule_id, "limit": 200})
    return list(page.raise_for_status().json()["jobs"])


def _schedule(http: httpx.Client, schedule_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/schedules/{schedule_id}").raise_for_status().json())


def test_a_schedule_fires_one_job_per_tick_until_paused(stack: Stack) -> None:
    with stack.http() as http:
        created = http.post(
            "/v1/schedules",
            json={"name": f"e2e-{uuid.uuid4().hex[:6]}", "cron": EVERY_2S, "job": JOB},
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        try:

            def three_succeeded() -> list[dict[str, Any]] | None:
                # A tick the notifier refused names why (the cause of a time-out).
                ticks = _schedule(http, sid)["recent_ticks"]
                assert all(t["outcome"] == "created" for t in ticks), ticks
                jobs = _jobs(http, sid)
                done = [j for j in jobs if j["status"] == "succeeded"]
                failed = [j for j in jobs if j["status"] in ("failed", "cancelled")]
                assert not failed, failed
                return jobs if len(done) >= 3 else None

            wait_for(three_succeeded, 90, 0.5, f"three succeeded jobs of schedule {sid}")
            before = _schedule(http, sid)
            skipped = [t for t in before["recent_ticks"] if t["outcome"] != "created"]
            assert not skipped, skipped  # no tick was refused by the notifier's validator

            paused = http.post(f"/v1/schedules/{sid}/pause").raise_for_status().json()
            assert paused["paused"] is True

            def two_paused_ticks() -> list[datetime] | None:
                ticks = _schedule(http, sid)["recent_ticks"]
                at = sorted(
                    datetime.fromisoformat(t["tick"]) for t in ticks if t["reason"] == "paused"
                )
                return at if len(at) >= 2 else None

            paused_at = wait_for(two_paused_ticks, 30, 0.5, f"paused ticks of {sid}")

            def all_succeeded() -> list[dict[str, Any]] | None:
                jobs = _jobs(http, sid)
                failed = [j for j in jobs if j["status"] in ("failed", "cancelled")]
                assert not failed, failed
                return jobs if all(j["status"] == "succeeded" for j in jobs) else None

            # Whatever was fired before the pause ends as the others did.
            jobs = wait_for(all_succeeded, 60, 0.5, f"the jobs of {sid} to succeed")
            assert all(j["schedule_id"] == sid for j in jobs)
            ticks = sorted(datetime.fromisoformat(j["scheduled_for"]) for j in jobs)
            # Exactly one job per tick: no tick twice, none left out between the first
            # and the last, and none from the moment the schedule was paused.
            assert len(set(ticks)) == len(ticks), ticks
            assert all(b - a == TICK for a, b in pairwise(ticks)), ticks
            assert ticks[-1] < paused_at[0]
        finally:
            http.delete(f"/v1/schedules/{sid}")
