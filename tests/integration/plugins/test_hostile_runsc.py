"""The hostile basics again, with task containers under gVisor (``HOMERUN_TASK_RUNTIME=runsc``).

Runs where the engine has a runtime named ``runsc`` registered (docs/operations.md, "Task
runtime"), and is skipped, saying so, elsewhere. The tests are test_hostile.py's own,
collected here a second time so that they run against this module's stack: escapes (network,
read-only root, setuid, the Docker socket, other tasks' files) and time (a kill at the
time-out, whatever the task does with SIGTERM), and the runner carrying on. First, the proof
that the containers really are gVisor's.

Also collected: memory, tmpfs and output floods, io_uring and the default seccomp refusals,
and output JSON nested past the bound. Capabilities have their own test here: gVisor's
``/proc/self/status`` has no ``CapAmb`` or ``NoNewPrivs`` line.

Left out, as measured under Debian's runsc (0.0~20221219, ptrace platform) on a 20.10
engine: the fork bombs, which under ptrace kill the sandbox (its host threads count against
the pids limit) instead of meeting EAGAIN or the time-out: contained, but a different
verdict; per-uid kernel limits, which gVisor's kernel keeps per sandbox, so the host's
per-uid counters the runc test exhausts are never reached from a task; and the disk rate
limit, which does not hold under gVisor: its gofer writes to the host on the task's behalf,
outside the task cgroup's block-I/O throttle (docs/operations.md, Task runtime).
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import httpx
import pytest

from tests.conftest import wait_for
from tests.harness.services import Services
from tests.harness.stack import Stack

from .conftest import plugin_stack, submit, wait_job
from .test_hostile import (  # noqa: F401 (collected again, under runsc)
    canary,
    not_root_status,
    shell,
    test_50_mib_of_output_is_truncated_without_growing_the_runner,
    test_another_tasks_files_and_processes_are_invisible,
    test_filling_the_tmpfs_stops_at_its_size,
    test_ignoring_sigterm_does_not_outlive_the_time_out,
    test_io_uring_is_refused_and_the_default_seccomp_refusals_remain,
    test_memory_hog_is_oom_killed_and_says_so,
    test_no_docker_socket,
    test_no_network_dns_or_tcp_to_the_host_and_its_services,
    test_output_nested_960_deep_fails_the_task_and_reads_still_answer,
    test_root_filesystem_and_placed_files_are_read_only,
    test_setuid_is_refused,
    test_sleep_past_the_time_out_is_killed,
    test_the_runner_still_runs_a_normal_task,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runner_survives")]


@pytest.fixture(scope="module")
def stack(module_services: Services) -> Iterator[Stack]:
    client = docker.from_env()
    try:
        registered = sorted(client.info().get("Runtimes") or {})
    finally:
        client.close()
    if "runsc" not in registered:
        pytest.skip(f"the Docker engine has no runsc runtime registered (it has {registered})")
    with plugin_stack(module_services, task_runtime="runsc") as running:
        yield running


def test_task_containers_run_under_runsc(api: httpx.Client, stack: Stack) -> None:
    job_id = submit(api, shell("sleep 30", name="t", max_attempts=1))
    client = docker.from_env()
    try:
        [container] = wait_for(
            lambda: client.containers.list(filters={"label": f"homerun.job={job_id}"}),
            timeout=30,
            message="the task's container",
        )
        assert container.attrs["HostConfig"]["Runtime"] == "runsc"
    finally:
        api.post(f"/v1/jobs/{job_id}/cancel")
        client.close()
    assert wait_job(api, job_id)["status"] == "cancelled"


def test_not_root_and_no_capabilities_under_gvisor(api: httpx.Client) -> None:
    status = not_root_status(api, "CapInh|CapPrm|CapEff|CapBnd|Seccomp")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    # 2: a seccomp filter is on, inside the sandbox too (the runtime's --oci-seccomp).
    assert status["Seccomp"] == "2", status
