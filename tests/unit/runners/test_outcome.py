"""What each way a run can end means for the task (``runners.outcome``), with no engine."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from core.jsondepth import MAX_JSON_DEPTH
from core.models import JSON, AttemptStatus, FailureKind
from plugins.manager import make_plugin_manager
from plugins.tasktypes import FinishedRun, PayloadError
from runners.outcome import outcome
from runners.results import (
    EngineFailed,
    Exited,
    RunResult,
    StartFailed,
    Stopped,
    StopReason,
    TimedOut,
)

MIB = 1024 * 1024
OUT: dict[str, Any] = {
    "stdout": "out\n",
    "stdout_truncated": True,
    "stderr": "err\n",
    "stderr_truncated": False,
}


class Hook:
    """A ``task_output`` hook that records what it was asked."""

    def __init__(self, answer: JSON = None, refuse: str | None = None) -> None:
        self.answer = answer
        self.refuse = refuse
        self.runs: list[FinishedRun] = []

    def __call__(self, run: FinishedRun) -> JSON:
        self.runs.append(run)
        if self.refuse is not None:
            raise PayloadError(self.refuse)
        return self.answer


def judge(result: RunResult, hook: Hook | None = None, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "task_type": "shell",
        "timeout": 2.5,
        "memory_bytes": 64 * MIB,
        "output_file_limit": 100,
        "task_output": hook or Hook(),
    }
    return outcome(result, **(args | overrides))


def test_a_cancelled_run_is_a_cancelled_attempt_that_keeps_its_output() -> None:
    got = judge(Stopped(reason=StopReason.CANCELLED, exit_code=137, **OUT))
    assert got.status == AttemptStatus.CANCELLED
    assert got.error == "cancelled while running" and got.failure_kind is None
    assert (got.exit_code, got.stdout, got.stdout_truncated) == (137, "out\n", True)
    assert (got.stderr, got.stderr_truncated) == ("err\n", False)


@pytest.mark.parametrize("reason", [StopReason.SHUTDOWN, StopReason.LOST])
def test_a_run_the_runner_gave_up_is_the_platforms_failure(reason: StopReason) -> None:
    got = judge(Stopped(reason=reason))
    assert got.status == AttemptStatus.FAILED
    assert got.failure_kind == FailureKind.INFRASTRUCTURE
    assert got.exit_code is None


def test_shutdown_says_the_task_runs_again() -> None:
    got = judge(Stopped(reason=StopReason.SHUTDOWN, exit_code=137))
    assert got.error == "the runner shut down before the task finished; it runs again elsewhere"
    assert got.exit_code == 137


def test_an_engine_failure_is_the_platforms_and_says_what_failed() -> None:
    got = judge(EngineFailed(error="pulling image x took longer than 1 s", **OUT))
    assert got.status == AttemptStatus.FAILED
    assert got.failure_kind == FailureKind.INFRASTRUCTURE
    assert got.error == "pulling image x took longer than 1 s"
    assert got.exit_code is None and got.stdout == "out\n"


def test_a_command_that_cannot_start_is_the_tasks_failure_with_127() -> None:
    got = judge(StartFailed(error="the command could not be started: no /x"))
    assert (got.failure_kind, got.error, got.exit_code) == (
        FailureKind.TASK,
        "the command could not be started: no /x",
        127,
    )


def test_a_time_out_names_the_limit() -> None:
    got = judge(TimedOut(exit_code=137, **OUT))
    assert got.failure_kind == FailureKind.TIMEOUT
    assert got.error == "timed out after 2.5 s and was killed"
    assert got.exit_code == 137 and got.stderr == "err\n"


def test_a_non_zero_exit_fails_the_task_without_asking_for_output() -> None:
    hook = Hook(answer={"never": "used"})
    got = judge(Exited(exit_code=3, output_file=b"{}", output_file_size=2), hook)
    assert (got.status, got.failure_kind) == (AttemptStatus.FAILED, FailureKind.TASK)
    assert got.error == "exited with code 3" and got.exit_code == 3
    assert got.output is None and hook.runs == []


def test_an_oom_kill_names_the_memory_limit() -> None:
    got = judge(Exited(exit_code=137, oom_killed=True), memory_bytes=48 * MIB)
    assert got.error == "exited with code 137: killed for using more than its memory limit (48 MiB)"


def test_artifacts_over_their_bounds_fail_as_artifacts_whatever_the_exit() -> None:
    hook = Hook()
    for code in (0, 137):
        got = judge(Exited(exit_code=code, artifacts_error="more than 10 entries"), hook)
        assert (got.status, got.failure_kind) == (AttemptStatus.FAILED, FailureKind.ARTIFACTS)
        assert got.error == "more than 10 entries"
    assert hook.runs == []


def test_an_output_file_over_its_limit_fails_the_task() -> None:
    hook = Hook()
    got = judge(Exited(exit_code=0, output_file=None, output_file_size=101), hook)
    assert got.failure_kind == FailureKind.TASK
    assert got.error == "/homerun/output.json is 101 bytes; the limit is 100"
    assert hook.runs == []


def test_a_zero_exit_succeeds_with_what_the_hook_makes_of_the_run() -> None:
    hook = Hook(answer={"words": 3})
    got = judge(Exited(exit_code=0, output_file=b"raw", output_file_size=3, **OUT), hook)
    assert got.status == AttemptStatus.SUCCEEDED
    assert got.output == {"words": 3} and got.error is None and got.failure_kind is None
    assert hook.runs == [
        FinishedRun(
            task_type="shell",
            exit_code=0,
            stdout="out\n",
            stderr="err\n",
            stdout_truncated=True,
            stderr_truncated=False,
            output_file=b"raw",
        )
    ]


def test_an_output_the_hook_refuses_fails_the_task() -> None:
    got = judge(Exited(exit_code=0), Hook(refuse="not a word count"))
    assert (got.status, got.failure_kind) == (AttemptStatus.FAILED, FailureKind.TASK)
    assert got.error == "bad output: not a word count"


def test_a_hook_that_crashes_fails_the_task_rather_than_the_runner() -> None:
    def crash(run: FinishedRun) -> JSON:
        raise KeyError("words")

    got = judge(Exited(exit_code=0), task_output=crash)
    assert (got.status, got.failure_kind) == (AttemptStatus.FAILED, FailureKind.TASK)
    assert got.error == "the task_output hook failed: KeyError: 'words'"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"a": "\x00"}, r"the string at $.a holds the NUL character (\u0000)"),
        ([float("inf")], "the number at $[0] is too large for a double (it reads as infinity)"),
        ({"s": {1, 2}}, "the value at $.s is a set, not JSON"),
    ],
)
def test_an_output_postgres_cannot_store_is_an_output_failure(answer: JSON, says: str) -> None:
    got = judge(Exited(exit_code=0, **OUT), Hook(answer=answer))
    assert (got.status, got.failure_kind) == (AttemptStatus.FAILED, FailureKind.OUTPUT)
    assert got.error == f"bad output: {says}, which Postgres cannot store"
    assert got.output is None and got.stdout == "out\n"


def test_the_built_in_output_hook_parses_the_output_file() -> None:
    pm = make_plugin_manager(load_entry_points=False)
    got = outcome(
        Exited(exit_code=0, output_file=b'{"v": [1, 2]}', output_file_size=13),
        task_type="shell",
        timeout=10,
        memory_bytes=64 * MIB,
        output_file_limit=100,
        task_output=lambda run: pm.hook.task_output(run=run),
    )
    assert got.status == AttemptStatus.SUCCEEDED and got.output == {"v": [1, 2]}


EXAMPLES: list[RunResult] = [
    Exited(exit_code=0),
    TimedOut(exit_code=137),
    *(Stopped(reason=reason) for reason in StopReason),
    StartFailed(error="x"),
    EngineFailed(error="x"),
]


def test_every_variant_has_an_example_here() -> None:
    # Guards the test below: a new variant must get a case, and so a mapping.
    assert {type(r) for r in EXAMPLES} == set(get_args(RunResult))


@pytest.mark.parametrize("result", EXAMPLES, ids=lambda r: type(r).__name__)
def test_every_way_a_run_ends_has_an_outcome(result: RunResult) -> None:
    got = judge(result)
    assert got.status in {AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.CANCELLED}
    assert (got.failure_kind is None) == (got.status != AttemptStatus.FAILED)


def nested(depth: int) -> JSON:
    value: JSON = []
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def test_an_output_nesting_past_the_bound_fails_the_attempt_and_is_not_kept() -> None:
    # Deeper JSON would be stored, then could not be read back at the API's stack depth.
    got = judge(Exited(exit_code=0), Hook(answer=nested(MAX_JSON_DEPTH + 1)))
    assert got.status == AttemptStatus.FAILED and got.failure_kind == FailureKind.OUTPUT
    assert got.output is None
    assert got.error == f"bad output: it nests more than {MAX_JSON_DEPTH} arrays or objects deep"
    within = judge(Exited(exit_code=0), Hook(answer=nested(MAX_JSON_DEPTH)))
    assert within.status == AttemptStatus.SUCCEEDED and within.output == nested(MAX_JSON_DEPTH)
