"""A three-task pipeline through the deployed stack, followed live over Server-Sent Events."""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack, follow_sse, submit

EXTRACT = "printf '%s' '{\"numbers\": [1, 2, 3]}' > /homerun/output.json\necho extracted"
SQUARE = """
import json
data = json.load(open('/homerun/inputs/extract.json'))
json.dump({'squares': [n * n for n in data['numbers']]}, open('/homerun/output.json', 'w'))
print('squared')
"""
TOTAL = """
import json
data = json.load(open('/homerun/inputs/square.json'))
json.dump({'total': sum(data['squares'])}, open('/homerun/output.json', 'w'))
"""
PIPELINE = {
    "name": "e2e-pipeline",
    "labels": {"suite": "e2e"},
    "tasks": [
        {"name": "extract", "type": "shell", "payload": {"script": EXTRACT}},
        {
            "name": "square",
            "type": "python",
            "payload": {"code": SQUARE},
            "depends_on": ["extract"],
        },
        {"name": "total", "type": "python", "payload": {"code": TOTAL}, "depends_on": ["square"]},
    ],
}


def test_three_task_pipeline_followed_over_sse_to_success(stack: Stack) -> None:
    with stack.http() as http:
        job = submit(http, PIPELINE)
        ids = {t["name"]: t["id"] for t in job["tasks"]}
        assert set(ids) == {"extract", "square", "total"}

        events = follow_sse(http, f"/v1/jobs/{job['id']}/events")

        status = [e.json() for e in events if e.event != "task.log"]
        assert [e["type"] for e in status] == [e.event for e in events if e.event != "task.log"]
        # Every status event once, numbered 1..n in order, and the stream ends on the job's end.
        assert [e["seq"] for e in status] == list(range(1, len(status) + 1)), status
        assert status[-1]["type"] == "job.succeeded", status[-1]
        assert all(e["job_id"] == job["id"] for e in status)
        succeeded = [e["task_id"] for e in status if e["type"] == "task.succeeded"]
        # Dependencies hold: each task finished after the one it reads from.
        assert succeeded == [ids["extract"], ids["square"], ids["total"]], status
        for name in ("square", "total"):
            started = [
                e["seq"]
                for e in status
                if e["task_id"] == ids[name] and e["type"] == "task.running"
            ]
            upstream = "extract" if name == "square" else "square"
            upstream_done = next(
                e["seq"]
                for e in status
                if e["task_id"] == ids[upstream] and e["type"] == "task.succeeded"
            )
            assert started and min(started) > upstream_done, (name, status)

        final = http.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
        assert final["status"] == "succeeded"
        outputs = {t["name"]: t["output"] for t in final["tasks"]}
        # The data really flowed through three containers: 1 + 4 + 9.
        assert outputs == {
            "extract": {"numbers": [1, 2, 3]},
            "square": {"squares": [1, 4, 9]},
            "total": {"total": 14},
        }, json.dumps(outputs)
