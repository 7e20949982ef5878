"""Pulumi.yaml documents every config key the program reads, with the program's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pulumi
import yaml

from stack.config import read

ROOT = Path(__file__).resolve().parents[3]
SECRETS = {
    "dbPassword": "a",
    "replicationPassword": "b",
    "adminToken": "c",
    "redisPassword": "d",
    "secretsKeyring": "e",
    "secretNamingKey": "k",
    "uiSessionKey": "u",
    "egressProxyKey": "x",
}


class RecordingConfig:
    """Stands in for pulumi.Config: answers from a dict and remembers every key asked for."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def _get(self, key: str) -> Any:
        self.asked.add(key)
        return self.values.get(key)

    def get(self, key: str) -> str | None:
        value = self._get(key)
        return None if value is None else str(value)

    def get_int(self, key: str) -> int | None:
        value = self._get(key)
        return None if value is None else int(value)

    def get_bool(self, key: str) -> bool | None:
        value = self._get(key)
        return None if value is None else bool(value)

    def get_object(self, key: str) -> Any:
        return self._get(key)


def _project() -> dict[str, Any]:
    project: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return project


def test_the_project_runs_the_stack_package():
    project = _project()
    assert project["name"] == "homerun"
    assert project["main"].rstrip("/") == "stack"
    assert project["runtime"]["name"] == "python"
    assert (ROOT / project["main"] / "__main__.py").exists()


def test_every_key_read_is_documented_with_a_default():
    documented = _project()["config"]
    recorder = RecordingConfig(dict(SECRETS))
    read(cast(pulumi.Config, recorder))
    # A secret only some deployments have is asked for only by them (egressProxyKey).
    with_egress = RecordingConfig({**SECRETS, "egress": True, "egressAllow": ["a.example"]})
    read(cast(pulumi.Config, with_egress))
    assert recorder.asked | with_egress.asked == set(documented)
    for key, spec in documented.items():
        assert spec.get("description"), key
        assert "default" in spec, key
        assert spec.get("type") in ("string", "integer", "boolean", "array"), key


def test_documented_defaults_are_the_programs_defaults():
    defaults = {key: spec["default"] for key, spec in _project()["config"].items()}
    from_yaml = read(cast(pulumi.Config, RecordingConfig({**defaults, **SECRETS})))
    from_nothing = read(cast(pulumi.Config, RecordingConfig(dict(SECRETS))))
    assert from_yaml.stack == from_nothing.stack
