"""The task seccomp profile: the engine's default less io_uring, in keys 20.10 parses."""

from __future__ import annotations

import json

from runners import seccomp

# What moby 20.10's profiles/seccomp/seccomp.go decodes; Go ignores any other key, so a key
# from a newer profile (``defaultErrnoRet``, ``errno`` on a rule...) would be dropped silently.
PROFILE_KEYS = {"defaultAction", "architectures", "archMap", "syscalls"}
RULE_KEYS = {"name", "names", "action", "errnoRet", "args", "comment", "includes", "excludes"}
FILTER_KEYS = {"caps", "arches", "minKernel"}


def test_the_profile_refuses_io_uring_by_its_default_action() -> None:
    profile = json.loads(seccomp.task_profile())
    # No default errno: the engine's EPERM, which is what the hostile suite expects.
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }
    assert not allowed & set(seccomp.REFUSED)
    # The rest of the default is there: a few the default allows, a few only with caps.
    assert {"read", "write", "clone", "openat", "inotify_init1", "io_setup"} <= allowed
    by_cap = {
        name: rule["includes"].get("caps")
        for rule in profile["syscalls"]
        for name in rule["names"]
        if rule["includes"].get("caps")
    }
    assert by_cap["unshare"] == ["CAP_SYS_ADMIN"]
    assert "keyctl" not in allowed and "add_key" not in allowed


def test_the_profile_uses_only_keys_the_20_10_daemon_parses() -> None:
    profile = json.loads(seccomp.task_profile())
    assert set(profile) <= PROFILE_KEYS
    for rule in profile["syscalls"]:
        assert set(rule) <= RULE_KEYS, rule
        for side in ("includes", "excludes"):
            assert set(rule.get(side, {})) <= FILTER_KEYS, rule


def test_security_opt_carries_the_profile() -> None:
    option = seccomp.security_opt()
    assert option.startswith("seccomp={")
    assert json.loads(option.removeprefix("seccomp=")) == json.loads(seccomp.task_profile())
