"""A service process's environment is its Settings and nothing of the developer's."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from homerun.client import TOKEN_VAR
from tests.harness.services import ServiceProcess


def test_a_child_never_inherits_the_developers_homerun_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMERUN_LEASE_SECONDS", "999")  # a setting the child also gets
    monkeypatch.setenv("HOMERUN_ALLOW_TASK_NETWORK", "true")
    monkeypatch.setenv(TOKEN_VAR, "hr_the-developers-own-token")  # not a setting at all
    monkeypatch.setenv("HOMERUN_SOMETHING_NEW", "x")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "kept")
    settings = Settings(lease_seconds=2.0, admin_token="hr_admin", runner_id="r1")
    env = ServiceProcess("runner", settings, tmp_path, "runner").environment()
    assert TOKEN_VAR not in env and "HOMERUN_SOMETHING_NEW" not in env
    assert env["HOMERUN_LEASE_SECONDS"] == "2.0"
    assert env["HOMERUN_ALLOW_TASK_NETWORK"] == "false"
    assert env["SOME_OTHER_VARIABLE"] == "kept"
    assert Settings.from_env(env) == settings
    assert Path(env["HOMERUN_ADMIN_TOKEN_FILE"]).parent == tmp_path / "runner.secrets"
