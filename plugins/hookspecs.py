"""The plugin-author reference: every hook homerun calls, with its contract.

Hook calls are synchronous and must not block on I/O: a hook builds values from its
arguments and returns them. The runner owns Docker, time-outs and cleanup.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from plugins.tasktypes import JSON, FinishedRun, TaskType

PROJECT_NAME = "homerun"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_task_types(register: Callable[[TaskType], None]) -> None:
    """Contribute zero or more task types by calling ``register(TaskType(...))``.

    :param register: validates each task type and adds it to the registry. It raises
        ``ValueError`` for a name that is not ``[a-z][a-z0-9_.-]*``, a name another plugin
        already registered, or a ``payload_schema`` that is not a valid JSON Schema.
    :returns: nothing; the return value is ignored.

    Called once, when the plugin manager is built (API, runner and notifier start-up).
    ``TaskType.build_spec`` is called at submission with a throw-away context, to refuse
    payloads a schema cannot judge (raise ``PayloadError``), and again by the runner for
    each attempt. It must be pure and fast: no I/O, no Docker, no clock.
    """


@hookspec(firstresult=True)
def task_output(run: FinishedRun) -> JSON | None:
    """Turn a finished run into the task's output JSON.

    :param run: the exit code, bounded stdout/stderr with truncated flags, and the raw
        bytes of ``/homerun/output.json`` if the task wrote one (``run.task_type`` says
        which task type ran).
    :returns: the output (any JSON value) for task types this plugin owns, or ``None``
        to let the next plugin answer. ``firstresult``: the first non-``None`` answer wins;
        the built-in fallback parses ``/homerun/output.json``.
    :raises PayloadError: when the run's output is malformed; the attempt then fails as a
        task failure with that message. Any other exception fails it as a plugin bug.

    What the hook returns must be JSON that Postgres's ``jsonb`` can hold: a NUL or a lone
    surrogate in a string or key, NaN or infinity, a non-JSON type or a cycle fails the
    attempt with failure kind ``output`` (never retried), naming the place; so does nesting
    more than 64 arrays or objects deep (``core.jsondepth.MAX_JSON_DEPTH``).

    Called by the runner after the container exited and before it is removed from the
    result; the hook sees only the values above, never the container.
    """
