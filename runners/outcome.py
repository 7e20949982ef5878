"""What an attempt's run means for the task: a pure function from ``RunResult`` to ``Outcome``.

The engine says how the container ended (``runners.results``); this module decides what
that is in the state machine's terms, which ``finish_attempt`` then persists:

- cancelled by the job: the attempt is cancelled;
- the runner shut down, or the engine failed: an infrastructure failure (retried elsewhere
  without using up the task's attempts);
- the command could not start, a non-zero exit, an output file over its limit, an output
  the ``task_output`` hook refuses (or a hook that crashes): the task's failure;
- an output Postgres cannot store (``core.storable``: a NUL, a lone surrogate, ``1e400``)
  or that nests past ``core.jsondepth.MAX_JSON_DEPTH``: an ``output`` failure, never
  retried, since the same command writes the same bytes;
- files under /homerun/artifacts over the deployment's bounds (``runners.artifacts``): an
  ``artifacts`` failure, never retried;
- the time limit: a time-out;
- a zero exit: success, with the output the ``task_output`` hook makes of the run.

No I/O: the hook is passed in, so the mapping is tested on its own
(``tests/unit/runners/test_outcome.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core import storable
from core import transitions as tr
from core.jsondepth import TOO_DEEP, exceeds_depth
from core.models import JSON, AttemptStatus, FailureKind
from plugins.tasktypes import OUTPUT_FILE, FinishedRun, PayloadError
from runners.results import (
    EngineFailed,
    Exited,
    RunResult,
    StartFailed,
    Stopped,
    StopReason,
    TimedOut,
    exit_code,
)

__all__ = ["failed", "outcome"]


def failed(kind: FailureKind, error: str, **captured: Any) -> tr.Outcome:
    """A failed attempt: ``kind`` says whose fault it was."""
    return tr.Outcome(AttemptStatus.FAILED, error=error, failure_kind=kind, **captured)


def outcome(
    result: RunResult,
    *,
    task_type: str,
    timeout: float,
    memory_bytes: int,
    output_file_limit: int,
    task_output: Callable[[FinishedRun], JSON],
) -> tr.Outcome:
    """The outcome of an attempt of a ``task_type`` task that ran as ``result`` says.

    ``timeout`` and ``memory_bytes`` are the limits it ran under (for the messages);
    ``task_output`` is the plugins' ``task_output`` hook.
    """
    captured: dict[str, Any] = {
        "exit_code": exit_code(result),
        "stdout": result.stdout,
        "stdout_truncated": result.stdout_truncated,
        "stderr": result.stderr,
        "stderr_truncated": result.stderr_truncated,
    }  # kept with every outcome: a failed task's output is what explains the failure
    match result:
        case Stopped(reason=StopReason.CANCELLED):
            return tr.Outcome(AttemptStatus.CANCELLED, error="cancelled while running", **captured)
        case Stopped(reason=StopReason.SHUTDOWN):
            return failed(
                FailureKind.INFRASTRUCTURE,
                "the runner shut down before the task finished; it runs again elsewhere",
                **captured,
            )
        case Stopped(reason=StopReason.LOST):
            # The runner writes nothing for a lost attempt and so never asks; were it to,
            # losing the lease is the platform's failure, never the task's.
            return failed(FailureKind.INFRASTRUCTURE, "the attempt's lease was lost", **captured)
        case EngineFailed(error=error):
            return failed(FailureKind.INFRASTRUCTURE, error, **captured)
        case StartFailed(error=error):
            return failed(FailureKind.TASK, error, **captured)
        case TimedOut():
            return failed(
                FailureKind.TIMEOUT, f"timed out after {timeout:g} s and was killed", **captured
            )
        case Exited(artifacts_error=str(error)):
            return failed(FailureKind.ARTIFACTS, error, **captured)
        case Exited():
            return _exited(
                result, captured, task_type, memory_bytes, output_file_limit, task_output
            )
    raise AssertionError(f"unknown run result {result!r}")  # pragma: no cover


def _exited(
    result: Exited,
    captured: dict[str, Any],
    task_type: str,
    memory_bytes: int,
    output_file_limit: int,
    task_output: Callable[[FinishedRun], JSON],
) -> tr.Outcome:
    if result.exit_code != 0:
        reason = f"exited with code {result.exit_code}"
        if result.oom_killed:
            mib = memory_bytes // (1024 * 1024)
            reason += f": killed for using more than its memory limit ({mib} MiB)"
        return failed(FailureKind.TASK, reason, **captured)
    if result.output_file_size > output_file_limit:
        return failed(
            FailureKind.TASK,
            f"{OUTPUT_FILE} is {result.output_file_size} bytes; the limit is {output_file_limit}",
            **captured,
        )
    run = FinishedRun(
        task_type=task_type,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        output_file=result.output_file,
    )
    try:
        output = task_output(run)
    except PayloadError as exc:
        return failed(FailureKind.TASK, f"bad output: {exc.message}", **captured)
    except Exception as exc:  # a plugin bug fails its task; left to rise, it cost a lease
        return failed(
            FailureKind.TASK,
            f"the task_output hook failed: {type(exc).__name__}: {exc}",
            **captured,
        )
    try:
        storable.check_json(output)
    except storable.NotStorable as exc:
        return failed(
            FailureKind.OUTPUT, f"bad output: {exc}, which Postgres cannot store", **captured
        )
    if exceeds_depth(output):
        # Never stored: deeper JSON could not be read back at the API's stack depth.
        return failed(FailureKind.OUTPUT, f"bad output: it {TOO_DEEP}", **captured)
    return tr.Outcome(AttemptStatus.SUCCEEDED, output=output, **captured)
