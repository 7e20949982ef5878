"""The CLI's argument handling: job bodies from flags or files, lazy server imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from homerun import cli, client, sse, watch
from homerun.client import ConfigError


def body(*argv: str) -> dict[str, object]:
    return cli._job_body(cli.build_parser().parse_args(["submit", *argv]))


def test_script_shorthand_and_job_options() -> None:
    assert body(
        "--script",
        "echo hi",
        "--name",
        "n",
        "--label",
        "a=1",
        "--label",
        "b=x=y",
        "--callback-url",
        "https://example.com/h",
        "--timeout",
        "30",
    ) == {
        "name": "n",
        "labels": {"a": "1", "b": "x=y"},
        "callback_url": "https://example.com/h",
        "tasks": [
            {"name": "main", "type": "shell", "payload": {"script": "echo hi"}, "timeout_s": 30}
        ],
    }


def test_type_and_payload() -> None:
    assert body("--type", "python", "--payload", '{"code": "print(1)"}', "--task-name", "p") == {
        "tasks": [{"name": "p", "type": "python", "payload": {"code": "print(1)"}}]
    }


def test_job_file(tmp_path: Path) -> None:
    job = {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert body("-f", str(tmp_path / "job.json"), "--label", "k=v") == {**job, "labels": {"k": "v"}}


def test_nothing_to_submit_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="--script"):
        body()
    with pytest.raises(ConfigError, match="key=value"):
        body("--script", "x", "--label", "nokey")


def test_client_commands_work_without_the_server_modules(tmp_path: Path) -> None:
    # Importing the CLI must not import the services: they load lazily, per subcommand, so
    # the client works where they are missing or broken (and starts fast).
    code = (
        "import sys, homerun.cli\n"
        "heavy = ('runners', 'core.app', 'core.server', 'core.db', 'databases', 'starlette',"
        " 'docker', 'asyncpg')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_unreachable_api_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import free_port

    code = cli.main(
        [
            "get",
            "00000000-0000-0000-0000-000000000000",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--token",
            "t",
        ]
    )
    assert code == cli.EXIT_FAILED
    assert "cannot reach the API" in capsys.readouterr().err


@pytest.mark.parametrize("module", [cli, client, sse, watch])
def test_public_surface_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names and all(hasattr(module, name) for name in names)
