"""The seccomp profile every task container runs under: Docker's default, less io_uring.

A profile given with ``security_opt=["seccomp=<json>"]`` *replaces* the engine's default
rather than adding to it, so ``seccomp-task.json`` beside this module is the default profile
itself with only io_uring taken out, and nothing else loosened:

- source: moby/moby ``profiles/seccomp/default.json`` at tag v20.10.24, commit
  5d6db842238e3c4f5f9fb9ad70ea46b35227d084: the commit the engine generation we run reports
  (``docker version``: 20.10.24, git commit 5d6db84), so the file uses exactly the keys
  that daemon parses (``defaultAction``, ``archMap``, ``syscalls`` with ``names``,
  ``action``, ``args``, ``includes``/``excludes`` of ``caps``/``arches``/``minKernel``);
  Apache-2.0, as moby is;
- changed: the three names ``io_uring_enter``, ``io_uring_register`` and ``io_uring_setup``
  deleted from the first allow rule (``diff`` against the upstream file shows those three
  lines and a final newline, nothing more). The default action (``SCMP_ACT_ERRNO``, EPERM)
  then refuses them.

Why io_uring: its rings run kernel work outside the syscalls seccomp sees, it has been the
kernel's most fertile ground for privilege escalations, and no task needs it. Later Docker
releases refuse it by default too (moby 25.0); 20.10 allowed it.

When the engine is upgraded, take that release's default profile and remove the same three
names again (a newer profile may use keys an older daemon rejects, and vice versa).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

PROFILE_FILE = "seccomp-task.json"
# What the profile refuses beyond the default (tests/unit/runners/test_seccomp.py checks it).
REFUSED = ("io_uring_enter", "io_uring_register", "io_uring_setup")


@functools.cache
def task_profile() -> str:
    """The profile as the compact JSON the engine takes in ``security_opt``."""
    text = resources.files(__package__).joinpath(PROFILE_FILE).read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def security_opt() -> str:
    """The ``security_opt`` entry that applies the task profile."""
    return f"seccomp={task_profile()}"
