"""The API and the notifier validate job bodies alike: the notifier's scheduler checks each
tick's job again when it fires, so any validator setting that differed between the two made
a schedule the API had accepted skip every tick (a container task's image allow-list,
egress, runner groups, the map bound). Both renderings of every parity case are read back
and the two services' validator settings compared, as the processes would read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, env_name
from core.validation import VALIDATOR_SETTINGS
from stack.topology import RunnerGroup, StackConfig, build_topology
from tests.unit.stack.test_parity import CASES, _both

VALIDATOR_ENV = frozenset(env_name(name) for name in VALIDATOR_SETTINGS)


def _validator_view(env: dict[str, str]) -> dict[str, Any]:
    """The validator settings a process started with ``env`` holds (secret files aside)."""
    plain = {k: v for k, v in env.items() if not k.endswith("_FILE")}
    settings = Settings.from_env(plain)
    return {name: getattr(settings, name) for name in sorted(VALIDATOR_SETTINGS)}


def _services(form: dict[str, Any], stack: str) -> tuple[dict[str, str], dict[str, str]]:
    services = form["services"]
    return services[f"{stack}_api"]["env"], services[f"{stack}_notifier"]["env"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_and_notifier_get_the_same_validator_env_in_both_renderings(
    tmp_path: Path, case: str
) -> None:
    _, composed, pulumied = _both(tmp_path, case)
    stack = str(CASES[case][1].get("stackName", "homerun"))
    for form in (composed, pulumied):
        api, notifier = _services(form, stack)
        assert {k: v for k, v in api.items() if k in VALIDATOR_ENV} == {
            k: v for k, v in notifier.items() if k in VALIDATOR_ENV
        }
        assert _validator_view(api) == _validator_view(notifier)


def test_what_a_schedule_needs_reaches_the_notifier() -> None:
    # The settings that differ from their defaults here are the ones the notifier lacked.
    config = StackConfig(
        allowed_images=("alpine:*",),
        egress=True,
        egress_allow=("api.example.com",),
        runner_groups=(RunnerGroup(name="gpu", labels=("gpu",)),),
        max_map_items=50,
    )
    topology = build_topology(config)
    api = _validator_view(dict(topology.service("api").env))
    notifier = _validator_view(dict(topology.service("notifier").env))
    assert notifier == api
    assert notifier["allowed_images"] == ("alpine:*",)
    assert notifier["allow_task_network"] is True
    assert notifier["egress_allow"] == ("api.example.com",)
    assert notifier["runner_groups"] == ("runner=", "gpu=gpu")
    assert notifier["max_map_items"] == 50
    assert notifier != _validator_view({})  # the view can tell a difference
