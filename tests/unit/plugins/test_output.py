from __future__ import annotations

import pytest

from plugins.builtin import output
from plugins.hookspecs import hookimpl
from plugins.manager import make_plugin_manager
from plugins.tasktypes import FinishedRun, PayloadError


def run(output_file: bytes | None, task_type: str = "shell") -> FinishedRun:
    return FinishedRun(
        task_type=task_type,
        exit_code=0,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        output_file=output_file,
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": [1, 2.5, null, true]}', {"a": [1, 2.5, None, True]}),
        (b"42\n", 42),
        (b'"text"', "text"),
        ('{"s": "héllo"}'.encode(), {"s": "héllo"}),
        (b"[]", []),
    ],
)
def test_parses_the_output_file(raw: bytes, value: object) -> None:
    assert output.task_output(run(raw)) == value


def test_no_output_file_is_no_output() -> None:
    assert output.task_output(run(None)) is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "is not valid JSON"),
        (b'{"a": 1} trailing', "is not valid JSON"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"NaN", "NaN is not a JSON value"),
        (b'{"x": Infinity}', "Infinity is not a JSON value"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
def test_malformed_output_is_a_payload_error_with_a_clear_message(raw: bytes, says: str) -> None:
    with pytest.raises(PayloadError) as exc:
        output.task_output(run(raw))
    assert "/homerun/output.json" in exc.value.message
    assert says in exc.value.message


class OwnOutput:
    """A throwaway plugin that answers for its own task type only."""

    @hookimpl
    def task_output(self, run: FinishedRun) -> object:
        return {"mine": run.stdout} if run.task_type == "mine" else None


def test_fallback_runs_last_through_the_plugin_manager() -> None:
    # Registered after the built-ins, yet it answers first for its own type.
    plugin = OwnOutput()
    pm = make_plugin_manager([plugin], load_entry_points=False)
    try:
        assert pm.hook.task_output(run=run(b'{"file": 1}', task_type="mine")) == {"mine": ""}
        assert pm.hook.task_output(run=run(b'{"file": 1}', task_type="shell")) == {"file": 1}
        assert pm.hook.task_output(run=run(None, task_type="shell")) is None
        with pytest.raises(PayloadError):
            pm.hook.task_output(run=run(b"nope", task_type="shell"))
    finally:
        pm.unregister(plugin)
