"""Runner groups in the topology: one more runner service per group, the API told them all,
and a deployment that declares none exactly as before."""

from __future__ import annotations

import pytest

from stack.topology import (
    RunnerGroup,
    StackConfig,
    build_topology,
    parse_runner_group,
)


def test_without_groups_nothing_changes() -> None:
    topology = build_topology(StackConfig())
    assert not [s for s in topology.services if s.key.startswith("runner-")]
    assert "HOMERUN_RUNNER_GROUPS" not in topology.service("api").env
    assert "HOMERUN_RUNNER_LABELS" not in topology.service("runner").env


def test_each_group_is_a_runner_service_with_its_labels_placement_and_size() -> None:
    config = StackConfig(
        runner_concurrency=4,
        placement_labels=True,
        runner_groups=(
            parse_runner_group(
                "big:replicas=2,concurrency=3,labels=ssd+bigdisk,constraint=node.labels.disk==big"
            ),
            parse_runner_group("gpu:labels=gpu"),
        ),
    )
    topology = build_topology(config)
    big, gpu, default = (topology.service(k) for k in ("runner-big", "runner-gpu", "runner"))
    assert big.env["HOMERUN_RUNNER_LABELS"] == "bigdisk,ssd"
    assert big.env["HOMERUN_RUNNER_CONCURRENCY"] == "3"
    assert gpu.env["HOMERUN_RUNNER_CONCURRENCY"] == "4"
    assert (big.replicas, gpu.replicas) == (2, 1)
    assert big.constraints == ("node.labels.homerun.runner==true", "node.labels.disk==big")
    assert big.resources == default.resources
    assert big.command == default.command and big.mounts == default.mounts
    assert topology.service("api").env["HOMERUN_RUNNER_GROUPS"] == (
        "runner=,big=bigdisk+ssd,gpu=gpu"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("big:labels=Big", "lowercase"),
        ("big:colour=red", "expected NAME:"),
        ("big:replicas=x", "invalid literal"),
        ("Big Disk:labels=a", "name"),
    ],
)
def test_a_malformed_group_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        StackConfig(runner_groups=(parse_runner_group(text),))


def test_group_names_are_unique_and_not_the_default_runners() -> None:
    with pytest.raises(ValueError, match="unique"):
        StackConfig(runner_groups=(RunnerGroup("a"), RunnerGroup("a")))
    with pytest.raises(ValueError, match="unique"):
        StackConfig(runner_groups=(RunnerGroup("runner"),))
