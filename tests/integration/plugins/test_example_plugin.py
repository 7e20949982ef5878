"""The example plugin (examples/homerun-wordcount) as a client sees it: listed and runnable."""

from __future__ import annotations

import homerun_wordcount
import httpx
import pytest

from .conftest import run_task

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runner_survives")]


def test_it_is_listed_by_the_running_api(api: httpx.Client) -> None:
    listed = {t["name"]: t for t in api.get("/v1/task-types").json()["task_types"]}
    assert {"shell", "python", "container", "wordcount"} <= set(listed)
    assert listed["wordcount"]["payload_schema"] == homerun_wordcount.PAYLOAD_SCHEMA
    assert listed["wordcount"]["description"].startswith("Count the words")


def test_it_runs_end_to_end_and_its_output_hook_shapes_the_output(api: httpx.Client) -> None:
    text = "the quick brown fox\njumps over the lazy dog\n"
    task, _ = run_task(api, {"type": "wordcount", "payload": {"text": text}})
    assert task["status"] == "succeeded", task
    assert task["output"] == {"words": 9, "lines": 2, "characters": len(text)}


def test_its_schema_is_enforced_at_submission(api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs", json={"tasks": [{"type": "wordcount", "payload": {"words": "x"}}]}
    )
    assert response.status_code == 422, response.text
