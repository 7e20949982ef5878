"""How a plugin author tests a plugin: the hooks are pure, so no container is needed."""

from __future__ import annotations

from pathlib import Path

import homerun_wordcount as wordcount
import jsonschema
import pytest

import homerun

CTX = homerun.TaskContext(job_id="j", task_id="t", task_name="count", attempt=1)


def finished(stdout: str, exit_code: int = 0, task_type: str = "wordcount") -> homerun.FinishedRun:
    return homerun.FinishedRun(
        task_type=task_type,
        exit_code=exit_code,
        stdout=stdout,
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        output_file=None,
    )


def test_schema_is_valid_and_closed() -> None:
    jsonschema.Draft202012Validator.check_schema(wordcount.PAYLOAD_SCHEMA)
    validator = jsonschema.Draft202012Validator(wordcount.PAYLOAD_SCHEMA)
    assert validator.is_valid({"text": "a b"})
    assert not validator.is_valid({})
    assert not validator.is_valid({"text": "a", "extra": 1})
    assert not validator.is_valid({"text": "x" * (wordcount.MAX_TEXT_CHARS + 1)})


def test_spec_places_the_program_and_the_text() -> None:
    spec = wordcount.build_spec({"text": "héllo world"}, CTX)
    assert spec.image == "homerun/task-python:0.1.0"
    assert spec.files[wordcount.TEXT_FILE] == "héllo world".encode()
    assert spec.argv[-1] == wordcount.PROGRAM_FILE
    assert spec.network is homerun.NetworkPolicy.NONE


def test_the_program_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Run the very program the container runs, against a local copy of the text file.
    text = "one two\nthree  four five\n"
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    program = wordcount.PROGRAM.replace(wordcount.TEXT_FILE, str(tmp_path / "text.txt"))
    exec(compile(program, "wordcount.py", "exec"), {})
    printed = capsys.readouterr().out
    assert wordcount.parse_counts(printed) == {"words": 5, "lines": 2, "characters": len(text)}


def test_output_hook_answers_for_its_own_type_only() -> None:
    line = "words=3 lines=1 characters=13\n"
    assert wordcount.task_output(finished(line)) == {"words": 3, "lines": 1, "characters": 13}
    assert wordcount.task_output(finished(line, task_type="shell")) is None
    assert wordcount.task_output(finished("", exit_code=1)) is None


def test_garbled_output_is_a_payload_error() -> None:
    with pytest.raises(homerun.PayloadError, match="printed no counts"):
        wordcount.task_output(finished("Traceback ..."))


def test_lone_surrogate_is_refused_at_text() -> None:
    with pytest.raises(homerun.PayloadError) as exc:
        wordcount.build_spec({"text": "\ud800"}, CTX)
    assert exc.value.loc == ("text",)
