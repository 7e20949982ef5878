"""The built-in task types run for real: API -> queue -> runner -> container -> result."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import run_task, submit, task_detail, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runner_survives")]


def test_shell_script_env_stdout_and_output_file(api: httpx.Client) -> None:
    script = 'echo "hello $WHO"\nprintf \'{"sum": %d}\' $((1 + 2)) > /homerun/output.json\n'
    task, _ = run_task(
        api, {"type": "shell", "payload": {"script": script, "env": {"WHO": "world"}}}
    )
    assert task["status"] == "succeeded", task
    assert task["output"] == {"sum": 3}
    assert task["result"]["exit_code"] == 0
    assert task["result"]["stdout"] == "hello world\n"
    assert task["result"]["stdout_truncated"] is False


def test_shell_exit_status_fails_the_task(api: httpx.Client) -> None:
    task, _ = run_task(api, {"type": "shell", "payload": {"script": "echo oops >&2; exit 3"}})
    assert task["status"] == "failed"
    last = task["attempts"][-1]
    assert last["exit_code"] == 3
    assert last["failure_kind"] == "task"
    assert "oops" in task["result"]["stderr"]  # the latest attempt's result


def test_python_reads_its_input_and_upstream_output(api: httpx.Client) -> None:
    # input.json holds payload.input (the python type places it over the runner's default),
    # inputs/<task>.json each upstream task's output.
    code = (
        "import json\n"
        "factor = json.load(open('/homerun/input.json'))['factor']\n"
        "n = json.load(open('/homerun/inputs/produce.json'))['n']\n"
        "json.dump({'product': factor * n}, open('/homerun/output.json', 'w'))\n"
    )
    job_id = submit(
        api,
        {
            "name": "produce",
            "type": "shell",
            "payload": {"script": "echo '{\"n\": 2}' > /homerun/output.json"},
        },
        {
            "name": "consume",
            "type": "python",
            "depends_on": ["produce"],
            "payload": {"code": code, "input": {"factor": 21}},
        },
    )
    job = wait_job(api, job_id)
    assert job["status"] == "succeeded", job
    assert task_detail(api, job_id, "consume")["output"] == {"product": 42}


def test_python_exception_is_a_task_failure_with_the_traceback(api: httpx.Client) -> None:
    task, _ = run_task(api, {"type": "python", "payload": {"code": "raise SystemExit('boom')"}})
    assert task["status"] == "failed"
    assert "boom" in task["result"]["stderr"]


def test_container_runs_an_allowed_image(api: httpx.Client) -> None:
    payload = {"image": "homerun/task-shell:0.1.0", "argv": ["sh", "-c", "echo from argv"]}
    task, _ = run_task(api, {"type": "container", "payload": payload})
    assert task["status"] == "succeeded", task
    assert task["result"]["stdout"] == "from argv\n"


def test_container_refuses_an_image_the_operator_did_not_allow(api: httpx.Client) -> None:
    payload = {"image": "homerun/task-python:0.1.0", "argv": ["python3", "-V"]}
    response = api.post("/v1/jobs", json={"tasks": [{"type": "container", "payload": payload}]})
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert any(d["loc"][-1] == "image" and "not allowed" in d["msg"] for d in details), details


def test_malformed_output_file_fails_the_task_with_a_clear_reason(api: httpx.Client) -> None:
    task, _ = run_task(
        api, {"type": "shell", "payload": {"script": "echo '{oops' > /homerun/output.json"}}
    )
    assert task["status"] == "failed"
    assert "/homerun/output.json is not valid JSON" in (task["error"] or ""), task


def test_schema_violations_are_refused_at_submission(api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        json={"tasks": [{"type": "shell", "payload": {"script": "true", "timeout": 3}}]},
    )
    assert response.status_code == 422
    assert "timeout" in json.dumps(response.json())
