"""Outputs Postgres cannot store: the attempt fails once, as `output`, and the job settles.

Each test is the attack of issue 12 item 4: a task (``max_attempts: 1``) writes JSON that
parses but that jsonb refuses. Before the fix the refusal was swallowed, the lease ran out
and the task ran again as "lost its lease", up to ten times. The tests wait only until the
first attempt is no longer running, so the old behaviour fails them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core import transitions as tr
from plugins.hookspecs import hookimpl
from plugins.tasktypes import FinishedRun, PayloadError
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration


async def first_attempt_over(jobs: Jobs, task_id: str) -> list[dict[str, Any]]:
    """Every attempt, once the first one has ended (lost, failed or succeeded)."""

    async def ended() -> list[dict[str, Any]] | None:
        attempts = await jobs.attempts(task_id)
        return attempts if attempts and attempts[0]["status"] != "running" else None

    # 90 s: in the full suite on 2 cores a runner, its guard and the task's container once
    # took longer than 30 s to get there (alone: about a second).
    found: list[dict[str, Any]] = await eventually(ended, 90, "the first attempt to end")
    return found


@pytest.mark.parametrize(
    ("written", "says"),
    [
        (r'{"a": "\u0000"}', r"the string at $.a holds the NUL character (\u0000)"),
        (r'{"a": ["ok", "\ud800"]}', r"the string at $.a[1] holds a lone surrogate (\ud800)"),
        (r'{"a": 1e400}', "the number at $.a is too large for a double (it reads as infinity)"),
        (r'{"ok": {"\u0000": 1}}', r"a key at $.ok holds the NUL character (\u0000)"),
    ],
    ids=["nul", "lone-surrogate", "1e400", "nul-key"],
)
async def test_unstorable_output_fails_once_as_output(
    written: str, says: str, jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        shell("hostile", f"printf '%s' '{written}' > /homerun/output.json", max_attempts=1)
    )
    task_id = created.ready[0].task_id
    start_runner()

    attempts = await first_attempt_over(jobs, task_id)
    assert [(a["status"], a["failure_kind"]) for a in attempts] == [("failed", "output")]
    assert attempts[0]["error"] == f"bad output: {says}, which Postgres cannot store"
    await eventually(lambda: jobs.finished(created.job_id), 15, "the job to settle")
    assert await jobs.job_status(created.job_id) == "failed"
    task = (await jobs.tasks(created.job_id))["hostile"]
    assert task["status"] == "failed" and task["output"] is None
    [result] = await jobs.results(task_id)
    assert result["exit_code"] == 0 and result["output"] is None
    assert len(await jobs.attempts(task_id)) == 1  # still one: nothing retried it later


async def test_unstorable_output_is_not_retried_whatever_max_attempts(
    jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    # The same command writes the same bytes again: retrying cannot help.
    created = await jobs.submit(
        shell("hostile", r"""printf '%s' '"\u0000"' > /homerun/output.json""", max_attempts=3)
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to settle")
    attempts = await jobs.attempts(created.ready[0].task_id)
    assert [(a["status"], a["failure_kind"]) for a in attempts] == [("failed", "output")]


class HostileHooks:
    """A plugin whose ``task_output`` returns what no JSON parser would, or whose refusal
    message itself holds a NUL (so the attempt's error is what Postgres refuses)."""

    @hookimpl(tryfirst=True)
    def task_output(self, run: FinishedRun) -> Any:
        if "nan-output" in run.stdout:
            return {"x": float("nan")}
        if "cyclic-output" in run.stdout:
            cyclic: list[Any] = []
            cyclic.append(cyclic)
            return cyclic
        if "nul-in-error" in run.stdout:
            raise PayloadError("refused \x00 with a NUL in the message")
        return None


@pytest.fixture
def hostile_pm(pm: Any) -> Any:
    plugin = HostileHooks()
    pm.register(plugin)
    yield pm
    pm.unregister(plugin)


@pytest.mark.parametrize(
    ("printed", "says"),
    [
        ("nan-output", "the number at $.x is not a number (NaN)"),
        ("cyclic-output", "the array at $[0] contains itself"),
    ],
)
async def test_a_plugins_unstorable_output_fails_once_as_output(
    printed: str, says: str, jobs: Jobs, hostile_pm: Any, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(shell("hostile", f"echo {printed}", max_attempts=1))
    start_runner()
    attempts = await first_attempt_over(jobs, created.ready[0].task_id)
    assert [(a["status"], a["failure_kind"]) for a in attempts] == [("failed", "output")]
    assert attempts[0]["error"] == f"bad output: {says}, which Postgres cannot store"


async def test_a_result_postgres_refuses_fails_the_attempt_rather_than_its_lease(
    jobs: Jobs, hostile_pm: Any, start_runner: Callable[..., Runner]
) -> None:
    # Past every check the runner makes: the error text itself holds a NUL, and Postgres
    # refuses it when the result is recorded. That refusal must end the attempt, not be
    # logged and left for the lease to expire.
    created = await jobs.submit(shell("hostile", "echo nul-in-error", max_attempts=1))
    task_id = created.ready[0].task_id
    start_runner()
    attempts = await first_attempt_over(jobs, task_id)
    assert [(a["status"], a["failure_kind"]) for a in attempts] == [("failed", "output")]
    assert attempts[0]["error"] == (
        "the attempt's result cannot be stored (CharacterNotInRepertoireError:"
        ' invalid byte sequence for encoding "UTF8": 0x00)'
    )
    await eventually(lambda: jobs.finished(created.job_id), 15, "the job to settle")
    assert await jobs.job_status(created.job_id) == "failed"
    [result] = await jobs.results(task_id)
    assert result["exit_code"] == 0 and result["stdout"] == "nul-in-error\n"


async def test_a_refused_result_is_recorded_once_even_when_finished_directly(
    jobs: Jobs,
) -> None:
    # finish_attempt itself holds the guarantee, whoever calls it.
    from core.models import AttemptStatus

    created = await jobs.submit(shell("t", "true", max_attempts=2))
    task_id = created.ready[0].task_id
    claim = await tr.claim_attempt(jobs.db, task_id, runner_id="direct", lease_seconds=60)
    assert claim is not None
    refused = tr.Outcome(AttemptStatus.SUCCEEDED, exit_code=0, output={"a": "\x00"})
    after = await tr.finish_attempt(jobs.db, task_id, claim.attempt, refused)
    assert after.applied and after.ready == []
    [attempt] = await jobs.attempts(task_id)
    assert (attempt["status"], attempt["failure_kind"]) == ("failed", "output")
    assert await jobs.job_status(created.job_id) == "failed"
