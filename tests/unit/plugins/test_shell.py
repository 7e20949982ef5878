from __future__ import annotations

import pytest

from plugins.builtin import shell
from plugins.builtin.schemas import MAX_ENV_VARS, MAX_SOURCE_CHARS
from plugins.tasktypes import HOMERUN_DIR, Limits, NetworkPolicy, PayloadError

from .helpers import build, errors


def test_spec_runs_the_script_from_a_file_in_the_shell_image() -> None:
    spec = build(shell.TASK_TYPE, {"script": "echo hi\n", "env": {"GREETING": "hello"}})
    assert spec.image == "homerun/task-shell:0.1.0"
    assert list(spec.argv) == ["/bin/sh", shell.SCRIPT_FILE]
    assert spec.files == {shell.SCRIPT_FILE: b"echo hi\n"}
    assert spec.env == {"GREETING": "hello"}
    assert spec.workdir == HOMERUN_DIR
    assert spec.network is NetworkPolicy.NONE
    assert spec.limits == Limits()


def test_script_is_not_in_argv() -> None:
    # argv shows up in `docker inspect` and `ps`; the script travels as a file only.
    spec = build(shell.TASK_TYPE, {"script": "echo secret-token"})
    assert not any("secret-token" in arg for arg in spec.argv)


def test_script_bytes_are_utf8() -> None:
    spec = build(shell.TASK_TYPE, {"script": "echo héllo ✓"})
    assert spec.files[shell.SCRIPT_FILE] == "echo héllo ✓".encode()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"script": ""},
        {"script": 42},
        {"script": "x" * (MAX_SOURCE_CHARS + 1)},
        {"script": "true", "timeout": 5},  # unknown key: a typo must not pass silently
        {"script": "true", "env": {"1BAD": "x"}},
        {"script": "true", "env": {"HOMERUN_TASK_ID": "spoofed"}},
        {"script": "true", "env": {"A": 1}},
        {"script": "true", "env": {"A": "nul\u0000byte"}},
        {"script": "true", "env": {f"V{i}": "x" for i in range(MAX_ENV_VARS + 1)}},
        {"script": "true", "env": ["A=1"]},
        ["echo hi"],
    ],
)
def test_schema_refuses(payload: object) -> None:
    assert errors(shell.TASK_TYPE, payload)


def test_schema_accepts_the_limits() -> None:
    payload = {
        "script": "x" * MAX_SOURCE_CHARS,
        "env": {f"V{i}": "y" for i in range(MAX_ENV_VARS)},
    }
    assert errors(shell.TASK_TYPE, payload) == []


def test_lone_surrogate_is_a_payload_error_not_a_crash() -> None:
    with pytest.raises(PayloadError) as exc:
        build(shell.TASK_TYPE, {"script": "echo \ud800"})
    assert exc.value.loc == ("script",)
    with pytest.raises(PayloadError) as exc:
        build(shell.TASK_TYPE, {"script": "true", "env": {"A": "\udfff"}})
    assert exc.value.loc == ("env", "A")


def test_spec_does_not_alias_the_payload() -> None:
    env = {"A": "1"}
    spec = build(shell.TASK_TYPE, {"script": "true", "env": env})
    env["A"] = "changed"
    assert spec.env == {"A": "1"}
