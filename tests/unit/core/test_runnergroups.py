"""Label sets and the HOMERUN_RUNNER_GROUPS grammar (core/runnergroups.py)."""

from __future__ import annotations

import pytest

from core import runnergroups
from core.runnergroups import RunnerGroup
from core.settings import Settings, SettingsError


def test_a_label_set_is_one_string_per_set() -> None:
    assert runnergroups.label_set(["ssd", "bigdisk", "ssd"]) == "bigdisk,ssd"
    assert runnergroups.label_set([]) == ""
    assert runnergroups.labels_of("bigdisk,ssd") == {"bigdisk", "ssd"}
    assert runnergroups.labels_of("") == frozenset()


def test_subsets_are_every_label_set_a_runner_can_take() -> None:
    assert runnergroups.subsets(["b", "a"]) == ["", "a", "b", "a,b"]
    assert runnergroups.subsets([]) == [""]
    assert len(runnergroups.subsets([f"l{i}" for i in range(runnergroups.MAX_LABELS)])) == 256


def test_fits_needs_every_label() -> None:
    assert runnergroups.fits([], [])
    assert runnergroups.fits(["a"], ["a", "b"])
    assert not runnergroups.fits(["a", "c"], ["a", "b"])


def test_groups_parse_and_refuse() -> None:
    assert runnergroups.parse_groups(["runner=", "big=bigdisk+ssd"]) == (
        RunnerGroup("runner", frozenset()),
        RunnerGroup("big", frozenset({"bigdisk", "ssd"})),
    )
    for bad in (["big"], ["big=Big"], ["a=", "a=x"], [f"x={'+'.join('abcdefghi')}"]):
        with pytest.raises(ValueError):
            runnergroups.parse_groups(bad)


def test_settings_refuse_bad_labels_naming_the_variable() -> None:
    assert Settings.from_env({"HOMERUN_RUNNER_LABELS": "gpu,bigdisk"}).runner_labels == (
        "gpu",
        "bigdisk",
    )
    with pytest.raises(SettingsError, match="HOMERUN_RUNNER_LABELS"):
        Settings.from_env({"HOMERUN_RUNNER_LABELS": "gpu:1"})
    with pytest.raises(SettingsError, match="HOMERUN_RUNNER_GROUPS"):
        Settings.from_env({"HOMERUN_RUNNER_GROUPS": "big"})


def test_waiting_for_says_which_labels() -> None:
    assert runnergroups.waiting_for(["gpu", "bigdisk"]) == (
        "waiting for a runner with labels [bigdisk, gpu]"
    )
    assert runnergroups.waiting_for([]) == "waiting for a runner"
