"""Choosing the task runtime from what the operator asked for and what the engine has."""

from __future__ import annotations

import re

import pytest

from runners import runtimes

# What ``docker info`` lists under Runtimes: name -> its config.
PLAIN: dict[str, dict[str, str]] = {"runc": {}, "io.containerd.runc.v2": {}}
GVISOR = {**PLAIN, "runsc": {"path": "/usr/bin/runsc"}}


def test_runc_is_runc_whatever_the_engine_has() -> None:
    assert runtimes.choose("runc", GVISOR).runtime == "runc"
    assert runtimes.choose("runc", PLAIN).runtime == "runc"


def test_auto_takes_runsc_where_registered_and_says_why() -> None:
    chosen = runtimes.choose("auto", GVISOR)
    assert chosen.runtime == "runsc" and "has runsc registered" in chosen.reason
    fallback = runtimes.choose("auto", PLAIN)
    assert fallback.runtime == "runc" and "no runsc registered" in fallback.reason


def test_runsc_asked_for_and_missing_is_refused_never_weakened() -> None:
    assert runtimes.choose("runsc", GVISOR).runtime == "runsc"
    with pytest.raises(
        runtimes.RuntimeUnavailable, match=re.escape("it has: io.containerd.runc.v2, runc")
    ):
        runtimes.choose("runsc", PLAIN)


def test_an_unknown_runtime_is_an_error() -> None:
    with pytest.raises(ValueError, match="one of runc, runsc, auto"):
        runtimes.choose("kata", GVISOR)


def test_the_egress_runtime_must_be_registered() -> None:
    # runsc as registered runs with --network=none: egress tasks use runc unless told.
    runtimes.check_egress("runc", GVISOR)
    runtimes.check_egress("runsc-egress", {**GVISOR, "runsc-egress": {}})
    with pytest.raises(runtimes.RuntimeUnavailable, match="HOMERUN_EGRESS_RUNTIME=runsc-egress"):
        runtimes.check_egress("runsc-egress", GVISOR)
