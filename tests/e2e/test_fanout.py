"""A map task on the deployed stack: an upstream list fanned out two at a time, the
aggregate in item order, the instances read a page at a time."""

from __future__ import annotations

from tests.e2e.conftest import Stack, submit, wait_job

LIST = "printf '%s' '[3, 1, 4, 1, 5, 9]' > /homerun/output.json"
SQUARE = """
import json
me = json.load(open('/homerun/inputs/_map.json'))
json.dump({'index': me['index'], 'sq': me['item'] ** 2}, open('/homerun/output.json', 'w'))
"""
TOTAL = """
import json
json.dump(sum(o['sq'] for o in json.load(open('/homerun/inputs/sq.json'))),
          open('/homerun/output.json', 'w'))
"""
JOB = {
    "name": "e2e-fanout",
    "tasks": [
        {"name": "list", "type": "shell", "payload": {"script": LIST}},
        {
            "name": "sq",
            "type": "python",
            "payload": {"code": SQUARE},
            "map": {"over": "list", "max_parallel": 2},
        },
        {"name": "total", "type": "python", "payload": {"code": TOTAL}, "depends_on": ["sq"]},
    ],
}


def test_a_map_over_an_upstream_list_on_the_swarm(stack: Stack) -> None:
    with stack.http() as http:
        job = submit(http, JOB)
        final = wait_job(http, job["id"])
        assert final["status"] == "succeeded", final
        tasks = {t["name"]: t for t in final["tasks"]}
        assert list(tasks) == ["list", "sq", "total"]  # instances are not in the job's view
        assert tasks["sq"]["map"]["counts"] == {"succeeded": 6}
        assert tasks["sq"]["output"] == [
            {"index": i, "sq": n * n} for i, n in enumerate([3, 1, 4, 1, 5, 9])
        ]
        assert tasks["total"]["output"] == 9 + 1 + 16 + 1 + 25 + 81
        first = (
            http.get(
                f"/v1/jobs/{job['id']}/tasks/{tasks['sq']['id']}/instances", params={"limit": 4}
            )
            .raise_for_status()
            .json()
        )
        assert [i["item"] for i in first["instances"]] == [3, 1, 4, 1]
        rest = (
            http.get(
                f"/v1/jobs/{job['id']}/tasks/{tasks['sq']['id']}/instances",
                params={"cursor": first["next_cursor"]},
            )
            .raise_for_status()
            .json()
        )
        assert [i["name"] for i in rest["instances"]] == ["sq[4]", "sq[5]"]
        assert rest["next_cursor"] is None
