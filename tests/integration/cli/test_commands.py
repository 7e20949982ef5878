"""Every CLI command against the real API, with a real runner and notifier behind it.

submit (every way to give a job), get, list with each filter (status, label k=v, both,
limit/cursor paging), logs (stored and followed), cancel, task-types, and token
create/list/revoke, each as a process the way a user runs it (see ``support.py``).
``submit --watch`` has its own module, test_watch.py.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.conftest import wait_for
from tests.integration.cli.support import CliRun, System, run_cli

pytestmark = pytest.mark.integration


def ok(run: CliRun, system: System) -> list[str]:
    assert run.code == 0, f"exit {run.code}\n{run.stdout}\n{run.stderr}\n{system.logs()}"
    return run.text


def ids_of(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines]


def submit(system: System, *args: str) -> str:
    (job_id,) = ok(run_cli(system, "submit", *args), system)
    uuid.UUID(job_id)
    return job_id


def api_json(system: System, path: str, token: str | None = None) -> object:
    headers = {"Authorization": f"Bearer {token or system.token}"}
    response = httpx.get(system.api.url + path, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_submit_get_and_list_with_every_filter(system: System) -> None:
    first = submit(
        system,
        "--script",
        "echo one",
        "--name",
        "first",
        "--label",
        "team=x",
        "--label",
        "env=prod",
    )
    broken = submit(
        system, "--script", "exit 3", "--max-attempts", "1", "--label", "team=x", "--name", "second"
    )
    as_json = ok(
        run_cli(
            system,
            "submit",
            *("--type", "python", "--payload", '{"code": "print(6 * 7)"}'),
            *("--task-name", "calc", "--label", "team=y", "--timeout", "60", "--json"),
        ),
        system,
    )
    created = json.loads("\n".join(as_json))
    third = created["id"]
    assert created["labels"] == {"team": "y"} and created["status"] == "queued"
    assert [(t["name"], t["type"], t["timeout_s"]) for t in created["tasks"]] == [
        ("calc", "python", 60)
    ]
    job_file = system.tmp / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "name": "from-file",
                "tasks": [
                    {"name": "a", "type": "shell", "payload": {"script": "echo a"}},
                    {
                        "name": "b",
                        "type": "shell",
                        "payload": {"script": "echo b"},
                        "depends_on": ["a"],
                    },
                ],
            }
        )
    )
    fourth = submit(system, "-f", str(job_file), "--idempotency-key", "nightly-1")
    # The same key and body is the same job again, not a second one.
    assert submit(system, "-f", str(job_file), "--idempotency-key", "nightly-1") == fourth

    ended = {job: system.wait_job(job) for job in (first, broken, third, fourth)}
    assert ended == {first: "succeeded", broken: "failed", third: "succeeded", fourth: "succeeded"}

    # get: a line for the job, one per task; --json is the API's own answer.
    got = ok(run_cli(system, "get", fourth), system)
    assert got[0] == f"{fourth}  succeeded  from-file"
    assert [line.split()[:2] for line in got[1:]] == [["a", "succeeded"], ["b", "succeeded"]]
    raw = ok(run_cli(system, "get", third, "--json"), system)
    assert json.loads("\n".join(raw)) == api_json(system, f"/v1/jobs/{third}")

    newest_first = [fourth, third, broken, first]
    listed = ok(run_cli(system, "list"), system)
    assert ids_of(listed) == newest_first
    assert listed[2].split()[1] == "failed" and listed[2].endswith("  second")

    def listing(*args: str) -> list[str]:
        return ids_of(ok(run_cli(system, "list", *args), system))

    assert listing("--status", "failed") == [broken]
    assert listing("--status", "succeeded") == [fourth, third, first]
    assert listing("--status", "failed", "--status", "succeeded") == newest_first
    assert listing("--status", "queued") == []
    # The bug this module was written for: every labelled list used to be a 400.
    assert listing("--label", "team=x") == [broken, first]
    assert listing("--label", "team=y") == [third]
    assert listing("--label", "team=x", "--label", "env=prod") == [first]
    assert listing("--label", "team=x", "--status", "failed") == [broken]
    assert listing("--label", "team=nobody") == []

    # Paging: --limit, then --cursor from the hint on stderr, to the end.
    pages: list[list[str]] = []
    cursor: list[str] = []
    while True:
        run = run_cli(system, "list", "--limit", "3", *cursor)
        pages.append(ids_of(ok(run, system)))
        if "(more: --cursor " not in run.stderr:
            break
        cursor = ["--cursor", run.stderr.split("--cursor ", 1)[1].split(")", 1)[0]]
        assert len(pages) < 5, pages
    assert pages == [newest_first[:3], newest_first[3:]]
    page = json.loads("\n".join(ok(run_cli(system, "list", "--limit", "2", "--json"), system)))
    assert [j["id"] for j in page["jobs"]] == newest_first[:2] and page["next_cursor"]
    assert page == api_json(system, "/v1/jobs?limit=2")

    # A label value may hold '=' and ':'; the key ends at the first '='.
    odd = submit(system, "--script", "true", "--label", "url=a:b=c")
    assert listing("--label", "url=a:b=c") == [odd]
    assert listing("--label", "url=a:b") == []

    refused = run_cli(system, "list", "--status", "exploded")
    assert refused.code == 1 and "400 invalid_query" in refused.stderr, refused.stderr
    usage = run_cli(system, "list", "--label", "team")
    assert usage.code == 2 and "key=value" in usage.stderr, usage.stderr


def test_logs_stored_and_followed(system: System) -> None:
    job = submit(system, "--script", "echo out; echo err >&2", "--task-name", "noisy")
    assert system.wait_job(job) == "succeeded"
    assert ok(run_cli(system, "logs", job), system) == ["== noisy (succeeded)", "out", "err"]
    assert ok(run_cli(system, "logs", job, "noisy"), system) == [
        "== noisy (succeeded)",
        "out",
        "err",
    ]
    missing = run_cli(system, "logs", job, "quiet")
    assert missing.code == 2 and "has no task 'quiet'" in missing.stderr

    # An earlier attempt's output is its own answer: --attempt N asks for it.
    retried = submit(
        system, "--script", 'echo "try $HOMERUN_ATTEMPT"; exit 1', "--max-attempts", "2"
    )
    assert system.wait_job(retried) == "failed"
    assert ok(run_cli(system, "logs", retried), system) == ["== main (failed)", "try 2"]
    assert ok(run_cli(system, "logs", retried, "--attempt", "1"), system) == [
        "== main attempt 1 (failed)",
        "try 1",
    ]
    gone = run_cli(system, "logs", retried, "--attempt", "3")
    assert gone.code == 1 and "404 not_found" in gone.stderr, gone.stderr

    job_file = system.tmp / "two.json"
    job_file.write_text(
        json.dumps(
            {
                "tasks": [
                    {
                        "name": "ticker",
                        "type": "shell",
                        "payload": {"script": "for i in 1 2 3; do echo tick $i; sleep 0.3; done"},
                    },
                    {
                        "name": "after",
                        "type": "shell",
                        "payload": {"script": "echo done"},
                        "depends_on": ["ticker"],
                    },
                ]
            }
        )
    )
    live = submit(system, "-f", str(job_file))
    # -f follows to the job's end, then exits; a task argument narrows it to that task.
    assert ok(run_cli(system, "logs", "-f", live), system) == [
        "ticker | tick 1",
        "ticker | tick 2",
        "ticker | tick 3",
        "after | done",
    ]
    assert ok(run_cli(system, "logs", "--follow", live, "after"), system) == ["after | done"]


def test_cancel_stops_a_running_job(system: System) -> None:
    job = submit(system, "--script", "echo started; sleep 120", "--name", "long")

    with system.client() as client:

        def running() -> bool:
            return client.get_job(job).tasks[0].status == "running"

        wait_for(running, 60, 0.1, f"the task to run\n{system.logs()}")
    (line,) = ok(run_cli(system, "cancel", job), system)
    assert line.startswith(f"cancel requested for {job} (")
    assert system.wait_job(job, timeout=30) == "cancelled"
    assert ok(run_cli(system, "get", job), system)[0] == f"{job}  cancelled  long"
    # Cancelling again changes nothing and still answers.
    assert ok(run_cli(system, "cancel", job), system) == [f"cancel requested for {job} (cancelled)"]
    unknown = run_cli(system, "cancel", str(uuid.uuid4()))
    assert unknown.code == 1 and "404 not_found" in unknown.stderr, unknown.stderr


def test_task_types_and_clean_errors(system: System) -> None:
    listed = ok(run_cli(system, "task-types"), system)
    names = [line.split()[0] for line in listed]
    # The built-ins, and any installed plugin's (the example plugin, in this checkout).
    assert names == sorted(names) and {"container", "python", "shell"} <= set(names), names
    assert all(len(line.split()) > 1 for line in listed), listed  # each with its description
    raw = json.loads("\n".join(ok(run_cli(system, "task-types", "--json"), system)))
    assert raw == api_json(system, "/v1/task-types")

    missing = run_cli(system, "get", str(uuid.uuid4()))
    assert missing.code == 1 and "404 not_found: no job" in missing.stderr, missing.stderr
    invalid = run_cli(system, "submit", "--type", "nope", "--payload", "{}")
    assert invalid.code == 1 and "422 validation_error" in invalid.stderr, invalid.stderr
    # The details follow as JSON, each naming where the problem is.
    details = json.loads(invalid.stderr.split("\n", 1)[1])
    assert details[0]["loc"] == ["body", "tasks", 0, "type"], details
    assert "unknown task type 'nope'" in details[0]["msg"]


def test_token_create_list_revoke(system: System) -> None:
    created = run_cli(system, "token", "create", "ci-bot", database=True)
    id_line, token_line = ok(created, system)
    token_id = id_line.removeprefix("id:").strip()
    token = token_line.removeprefix("token:").strip()
    assert token.startswith("hr_") and "shown once" in created.stderr
    admin_id = ok(run_cli(system, "token", "create", "ops", "--admin", database=True), system)[0]
    admin_id = admin_id.removeprefix("id:").strip()

    tokens = {
        line.split()[0]: line
        for line in ok(run_cli(system, "token", "list", database=True), system)
    }
    assert tokens[token_id].split()[1] == "ci-bot" and tokens[token_id].endswith("active")
    assert tokens[admin_id].endswith("active admin")

    # The new token works, and sees only its own jobs.
    mine = submit(system, "--script", "true")
    theirs = run_cli(system, "submit", "--script", "true", token=token)
    assert ids_of(ok(run_cli(system, "list", token=token), system)) == ids_of(ok(theirs, system))
    assert mine not in ids_of(ok(run_cli(system, "list", token=token), system))

    assert ok(run_cli(system, "token", "revoke", token_id, database=True), system) == [
        f"revoked {token_id}"
    ]
    tokens = {
        line.split()[0]: line
        for line in ok(run_cli(system, "token", "list", database=True), system)
    }
    assert " revoked " in tokens[token_id] and tokens[admin_id].endswith("active admin")
    refused = run_cli(system, "list", token=token)
    assert refused.code == 1 and "401 unauthorized" in refused.stderr, refused.stderr
    again = run_cli(system, "token", "revoke", token_id, database=True)
    assert again.code == 1 and f"no active token {token_id}" in again.stderr
