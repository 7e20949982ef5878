"""``VALIDATOR_SETTINGS`` is exactly what validating a job body reads: the list the stack
gives alike to the API and to the notifier's scheduler (stack/topology.py)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from core.errors import ApiError
from core.scheduler import Scheduler
from core.settings import Settings
from core.validation import VALIDATOR_SETTINGS

NAMES = frozenset(f.name for f in fields(Settings))


class RecordingSettings(Settings):
    """Settings that remember which fields were read."""

    def __getattribute__(self, name: str) -> Any:
        if name in NAMES:
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return object.__getattribute__(self, name)


BODIES: list[dict[str, Any]] = [
    {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]},
    {
        "tasks": [
            {"name": "l", "type": "shell", "payload": {"script": "true"}},
            {
                "name": "m",
                "type": "python",
                "payload": {"code": "pass"},
                "map": {"over": "l", "max_parallel": 2},
                "depends_on": ["l"],
                "priority": 3,
                "timeout_s": 60,
                "max_attempts": 2,
                "resources": {"cpus": 1, "memory_mb": 256},
                "runs_on": ["gpu"],
            },
            {
                "name": "c",
                "type": "container",
                "payload": {"image": "alpine:3", "argv": ["true"]},
                "network": "egress",
            },
        ]
    },
]


def test_validating_job_bodies_reads_exactly_the_validator_settings() -> None:
    settings = RecordingSettings(
        allow_task_network=True,
        egress_allow=("example.com",),
        allowed_images=("alpine:*",),
        runner_groups=("runner=", "gpu=gpu"),
    )
    validator = Scheduler.validator_for(settings)  # the API's and the scheduler's own
    for body in BODIES:
        try:
            validator.validate(body)
        except ApiError as exc:  # only what is read matters; the bodies should pass
            pytest.fail(f"{body}: {exc.details}")
    read = settings.__dict__["_read"]
    assert read == VALIDATOR_SETTINGS, (read - VALIDATOR_SETTINGS, VALIDATOR_SETTINGS - read)


def test_every_validator_setting_is_a_setting() -> None:
    assert VALIDATOR_SETTINGS <= NAMES
