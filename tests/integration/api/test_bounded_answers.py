"""No single answer grows with the outputs of many tasks or many attempts (#12 item 2).

The attack: a job of many tasks, each leaving a large output, read in parallel. Before,
``GET /v1/jobs/{id}`` carried every output (100 tasks of 1 MB: 100 MB of JSON per
request) and a dozen such reads killed both API replicas for memory.
"""

from __future__ import annotations

import asyncio

import pytest
from databases import Database

from core import transitions
from core.models import AttemptStatus, FailureKind
from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer
from wire import JOB_VIEW_OUTPUT_BYTES

pytestmark = pytest.mark.integration

TASKS = 40
OUTPUT_BYTES = 256 * 1024
ATTEMPTS = 4


def big_output(i: int) -> dict[str, str]:
    return {"blob": f"{i:04d}" + "x" * OUTPUT_BYTES}


async def run_to_success(db: Database, task_id: str, output: object, *, failures: int) -> None:
    for number in range(1, failures + 2):
        claim = await transitions.claim_attempt(db, task_id, runner_id="r", lease_seconds=30)
        assert claim is not None and claim.attempt == number
        last = number == failures + 1
        await transitions.finish_attempt(
            db,
            task_id,
            number,
            transitions.Outcome(
                AttemptStatus.SUCCEEDED if last else AttemptStatus.FAILED,
                exit_code=0 if last else 1,
                stdout="o" * 1000,
                output=output if last else {"partial": "y" * OUTPUT_BYTES},
                error=None if last else "exit 1",
                failure_kind=None if last else FailureKind.TASK,
            ),
            retry_base_seconds=0,
        )


async def test_a_job_of_many_large_outputs_answers_in_bounded_size(api: Api, token: str) -> None:
    h = bearer(token)
    small = {"name": "small", "type": "shell", "payload": {"script": "true"}}
    many = [
        {
            "name": f"big-{i:02d}",
            "type": "shell",
            "payload": {"script": "true"},
            "max_attempts": ATTEMPTS,
        }
        for i in range(TASKS)
    ]
    created = await api.client.post("/v1/jobs", json={"tasks": [small, *many]}, headers=h)
    assert created.status_code == 201, created.text
    job = created.json()
    ids = {t["name"]: t["id"] for t in job["tasks"]}

    db = Database(api.db.primary)
    await db.connect()
    try:
        await run_to_success(db, ids["small"], {"ok": True}, failures=0)
        for i in range(TASKS):
            await run_to_success(
                db, ids[f"big-{i:02d}"], big_output(i), failures=ATTEMPTS - 1 if i == 0 else 0
            )
    finally:
        await db.disconnect()

    # A dozen parallel reads of the job, as in the attack: each answer stays small.
    answers = await asyncio.gather(
        *(api.client.get(f"/v1/jobs/{job['id']}", headers=h) for _ in range(12))
    )
    stored = TASKS * OUTPUT_BYTES
    for answer in answers:
        assert answer.status_code == 200
        # Every task's fixed fields, plus at most the inline bound each: never the outputs.
        assert len(answer.content) < (TASKS + 1) * (1024 + JOB_VIEW_OUTPUT_BYTES) < stored
    view = {t["name"]: t for t in answers[0].json()["tasks"]}
    assert view["small"]["output"] == {"ok": True}  # small outputs stay inline
    assert view["small"]["output_bytes"] == len('{"ok": true}')
    big = view["big-07"]
    assert big["status"] == "succeeded" and big["output"] is None
    assert big["output_bytes"] > OUTPUT_BYTES  # says there is one, and how large

    # The whole output is one task's answer.
    detail = (await api.client.get(f"/v1/jobs/{job['id']}/tasks/{big['id']}", headers=h)).json()
    assert detail["output"] == big_output(7)

    # A task of many attempts answers with one result, not one per attempt ...
    path = f"/v1/jobs/{job['id']}/tasks/{ids['big-00']}"
    retried = await api.client.get(path, headers=h)
    assert [a["status"] for a in retried.json()["attempts"]] == ["failed"] * 3 + ["succeeded"]
    assert "result" not in retried.json()["attempts"][0]
    assert len(retried.content) < 3 * OUTPUT_BYTES
    # ... and each attempt's result is its own answer.
    for number in range(1, ATTEMPTS):
        attempt = (await api.client.get(f"{path}/attempts/{number}", headers=h)).json()
        assert attempt["number"] == number and attempt["status"] == "failed"
        assert attempt["result"]["output"] == {"partial": "y" * OUTPUT_BYTES}
    last = (await api.client.get(f"{path}/attempts/{ATTEMPTS}", headers=h)).json()
    assert last["result"]["output"] == big_output(0) == retried.json()["result"]["output"]


async def test_an_attempt_that_does_not_exist_is_a_404_that_says_which(
    api: Api, token: str, other_token: str
) -> None:
    h = bearer(token)
    job = (
        await api.client.post(
            "/v1/jobs",
            json={"tasks": [{"type": "shell", "payload": {"script": "true"}}]},
            headers=h,
        )
    ).json()
    task_id = job["tasks"][0]["id"]
    path = f"/v1/jobs/{job['id']}/tasks/{task_id}/attempts"
    missing = await api.client.get(f"{path}/1", headers=h)  # never claimed
    assert missing.status_code == 404
    assert missing.json()["error"]["details"] == [
        {"loc": ["path", "number"], "msg": "no such attempt"}
    ]
    db = Database(api.db.primary)
    await db.connect()
    try:
        await run_to_success(db, task_id, {"n": 1}, failures=0)
    finally:
        await db.disconnect()
    assert (await api.client.get(f"{path}/1", headers=h)).status_code == 200
    for number in ("0", "2", str(2**31), "99999999999999999999"):
        beyond = await api.client.get(f"{path}/{number}", headers=h)
        assert beyond.status_code == 404, (number, beyond.text)
        assert beyond.json()["error"]["details"][0]["loc"] == ["path", "number"]
    # Another token sees nothing of it.
    assert (await api.client.get(f"{path}/1", headers=bearer(other_token))).status_code == 404
