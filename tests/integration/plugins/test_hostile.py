"""Hostile payloads: each is contained, reported with a clear reason, and the runner carries on.

Every test submits its payload over HTTP to a real ``homerun api`` + ``homerun runner``
(``conftest.stack``) and reads the verdict back over HTTP. After each one the
``runner_survives`` fixture checks that the runner process is still alive and that no task
container is left on the engine; the last test runs an ordinary task on the same runner.
Scripts that probe the lock-down print one verdict line per probe, so a failed assertion
shows exactly which door was open.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
import pytest

from core.jsondepth import MAX_JSON_DEPTH
from plugins.builtin.python import IMAGE as PYTHON_IMAGE
from plugins.tasktypes import Limits
from runners import identity, workspace
from tests.conftest import wait_for
from tests.harness.stack import Stack, new_token

from .conftest import run_task, submit, task_detail, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runner_survives")]

MIB = 1024 * 1024
DEFAULTS = Limits()
# A time-out kill must not take longer than this beyond the time-out itself: the engine's
# kill is immediate, the rest is persisting the result and our polling.
KILL_SLACK_SECONDS = 12


def shell(script: str, **task: Any) -> dict[str, Any]:
    return {"type": "shell", "payload": {"script": script}, **task}


def python(code: str, input: Any = None, **task: Any) -> dict[str, Any]:
    return {"type": "python", "payload": {"code": code, "input": input}, **task}


def lines(task: dict[str, Any]) -> list[str]:
    return str(task["result"]["stdout"]).splitlines()


def vm_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in KiB (VmRSS now, VmHWM the peak so far)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def reason(task: dict[str, Any]) -> str:
    """The failure reason a client reads: the task's error, else its last attempt's."""
    return str(task.get("error") or task["attempts"][-1].get("error") or "")


# --- resource exhaustion ------------------------------------------------------------------


def test_fork_bomb_is_capped_by_the_pids_limit(api: httpx.Client) -> None:
    # Fork until the kernel says no, keeping every child alive, and report how far it got.
    code = """
import json, os, time
forked, error = 0, None
while forked < 10_000:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.strerror
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    forked += 1
json.dump({"forked": forked, "error": error}, open("/homerun/output.json", "w"))
"""
    task, _ = run_task(api, python(code, timeout_s=60))
    assert task["status"] == "succeeded", task
    assert task["output"]["error"] == "Resource temporarily unavailable", task["output"]
    assert 0 < task["output"]["forked"] < DEFAULTS.pids


def test_shell_fork_bomb_is_killed_at_the_time_out(api: httpx.Client) -> None:
    # The bomb runs from the one fork made while pids are plenty; the main shell then forks
    # no more (a dash that cannot fork exits at once, which would end the task before its
    # time-out, as CI once saw): it becomes a sleep that only the time-out ends.
    script = "bomb() { bomb | bomb & }\n(bomb) &\nexec sleep 60\n"
    task, took = run_task(api, shell(script, timeout_s=3))
    assert task["status"] == "failed"
    assert task["attempts"][-1]["failure_kind"] == "timeout", task
    assert "timed out" in reason(task)
    assert took < 3 + KILL_SLACK_SECONDS


def test_memory_hog_is_oom_killed_and_says_so(api: httpx.Client) -> None:
    code = """
chunks = []
for n in range(1, 200):
    chunks.append(b"x" * (16 * 1024 * 1024))  # touched pages: really resident
    print(f"allocated {n * 16} MiB", flush=True)
"""
    task, _ = run_task(api, python(code, timeout_s=60))
    assert task["status"] == "failed"
    last = task["attempts"][-1]
    assert last["exit_code"] == 137, last
    assert "memory" in reason(task).lower(), reason(task)
    reached = [int(m) for m in re.findall(r"allocated (\d+) MiB", task["result"]["stdout"])]
    assert reached and max(reached) <= DEFAULTS.memory_bytes // MIB


def test_filling_the_tmpfs_stops_at_its_size(api: httpx.Client) -> None:
    script = (
        "head -c 200000000 /dev/zero > /tmp/fill 2>/dev/null; echo tmp=$(wc -c < /tmp/fill)\n"
        "rm -f /tmp/fill\n"
        "head -c 200000000 /dev/zero > /homerun/fill 2>/dev/null;"
        " echo homerun=$(wc -c < /homerun/fill)\n"
    )
    task, _ = run_task(api, shell(script, timeout_s=60))
    assert task["status"] == "succeeded", task
    sizes = dict(line.split("=") for line in lines(task))
    assert 0 < int(sizes["tmp"]) <= DEFAULTS.tmpfs_bytes
    assert 0 < int(sizes["homerun"]) <= DEFAULTS.tmpfs_bytes


@pytest.mark.parametrize(
    ("stream", "script"),
    [
        ("stdout", "yes 'all work and no play makes jack a dull boy' | head -c 52428800"),
        ("stdout", "head -c 52428800 /dev/zero | tr '\\0' x"),  # one 50 MiB line
        ("stderr", "yes 'error error error error error' | head -c 52428800 >&2"),
    ],
    ids=["stdout-lines", "stdout-one-line", "stderr-lines"],
)
def test_50_mib_of_output_is_truncated_without_growing_the_runner(
    api: httpx.Client, stack: Stack, stream: str, script: str
) -> None:
    pid = stack.processes["runner"].proc.pid
    run_task(api, shell("echo warm-up"))  # first-use allocations are not this test's concern
    peak_before = vm_kib(pid, "VmHWM")
    task, _ = run_task(api, shell(script, timeout_s=120))
    peak_after = vm_kib(pid, "VmHWM")
    assert task["status"] == "succeeded", reason(task)
    result = task["result"]
    assert result[f"{stream}_truncated"] is True
    assert 0 < len(result[stream].encode()) <= 64 * 1024 + 3  # one cut character -> U+FFFD
    # 50 MiB went through; the runner's peak resident memory grew by far less than that.
    assert (peak_after - peak_before) < 16 * 1024, (peak_before, peak_after)


DISK_WINDOW_SECONDS = 3
# Direct writes to the one host-disk file a task has, for a fixed time or until done; the
# file is emptied afterwards, so only the count is the task's output.
DISK_WRITER = """
timeout {window} dd if=/dev/zero of=/homerun/output.json bs=64k count={blocks} oflag=direct \
    2>/dev/null
echo "rc=$? written=$(wc -c < /homerun/output.json)"
: > /homerun/output.json
"""


def _disk_write(api: httpx.Client, size: int) -> tuple[int, int]:
    """(dd's exit status, bytes written) for a task writing ``size`` bytes in the window."""
    script = DISK_WRITER.format(window=DISK_WINDOW_SECONDS, blocks=size // (64 * 1024))
    task, _ = run_task(api, shell(script, timeout_s=30))
    assert task["status"] == "succeeded", reason(task)
    report = dict(pair.split("=") for pair in lines(task)[0].split())
    return int(report["rc"]), int(report["written"])


def test_direct_writes_to_the_host_disk_are_held_to_the_rate_limit(
    api: httpx.Client, stack: Stack
) -> None:
    rate = stack.settings.task_disk_bytes_per_second
    # 48 MiB: within RLIMIT_FSIZE (the tmpfs size), and at the disk's own speed (GB/s, the
    # issue saw 2.3) written in well under a second.
    rc, written = _disk_write(api, 48 * MIB)
    assert rc == 124, "dd finished within the window: nothing held it"  # timeout's status
    # Measured over the window, with a second's slack for the start: never near 48 MiB.
    ceiling = rate * (DISK_WINDOW_SECONDS + 1)
    assert rate <= written <= ceiling, (written, ceiling)
    # A task writing less than a second's worth is not held: all of it, within the window.
    rc, written = _disk_write(api, rate // 2)
    assert (rc, written) == (0, rate // 2)


# --- time ---------------------------------------------------------------------------------


def test_sleep_past_the_time_out_is_killed(api: httpx.Client) -> None:
    task, took = run_task(api, shell("echo started; sleep 600", timeout_s=2))
    assert task["status"] == "failed"
    last = task["attempts"][-1]
    assert last["failure_kind"] == "timeout", last
    assert "timed out after 2" in reason(task), reason(task)
    assert task["result"]["stdout"] == "started\n"  # output up to the kill is kept
    assert took < 2 + KILL_SLACK_SECONDS


@pytest.mark.parametrize(
    "task",
    [
        shell("trap '' TERM INT HUP\nwhile :; do sleep 1; done", timeout_s=2),
        shell(
            "sh -c \"trap '' TERM; while :; do sleep 1; done\" &\ntrap '' TERM\nwait", timeout_s=2
        ),
        python(
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "while True: time.sleep(1)\n",
            timeout_s=2,
        ),
    ],
    ids=["sh-trap", "sh-child-traps", "python-sig-ign"],
)
def test_ignoring_sigterm_does_not_outlive_the_time_out(
    api: httpx.Client, task: dict[str, Any]
) -> None:
    detail, took = run_task(api, task)
    assert detail["status"] == "failed"
    assert detail["attempts"][-1]["failure_kind"] == "timeout", detail
    assert took < 2 + KILL_SLACK_SECONDS


# --- escape attempts ----------------------------------------------------------------------


def _host_addresses() -> set[str]:
    """Every IPv4 address of this host: its interfaces, docker0 and the swarm bridges."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    found = set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))
    assert "127.0.0.1" in found and len(found) > 1, out
    return found


NETWORK_PROBE = """
import json, socket, sys
spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(open("/homerun/input.json"))
report = {"dns": {}, "tcp": {}, "udp": {}, "interfaces": []}
for name in spec["names"]:
    try:
        report["dns"][name] = socket.getaddrinfo(name, 80)[0][4][0]
    except OSError:
        report["dns"][name] = None
for host, port in spec["targets"]:
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
            report["tcp"][f"{host}:{port}"] = "connected"
        except OSError as exc:
            report["tcp"][f"{host}:{port}"] = type(exc).__name__
for host in ("8.8.8.8", "1.1.1.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 53))
            s.send(b"x")
            report["udp"][host] = "sent"
        except OSError as exc:
            report["udp"][host] = type(exc).__name__
with open("/proc/net/dev") as f:
    report["interfaces"] = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
report["gateway"] = None
with open("/proc/net/route") as f:
    for fields in (l.split() for l in f.readlines()[1:]):
        if fields[1] == "00000000":  # the default route; its gateway in little-endian hex
            report["gateway"] = socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
print(json.dumps(report))
"""


@pytest.fixture
def canary() -> Iterator[int]:
    """A TCP listener on every host address: what a task with a network could reach."""
    with socket.create_server(("0.0.0.0", 0)) as server:
        yield int(server.getsockname()[1])


def _probe_with_a_network(spec: dict[str, Any]) -> dict[str, Any]:
    """The probe in a plain bridge-network container: the control that shows it can see."""
    client = docker.from_env()
    container = client.containers.create(
        PYTHON_IMAGE,
        ["python3", "-c", NETWORK_PROBE, json.dumps(spec)],
        name=f"homerun-test-netcontrol-{uuid.uuid4().hex[:10]}",
        network_mode="bridge",
        user="65534:65534",
    )
    try:
        container.start()
        container.wait(timeout=120)
        report: dict[str, Any] = json.loads(container.logs(stdout=True, stderr=False))
        return report
    finally:
        container.remove(force=True)
        client.close()


def test_no_network_dns_or_tcp_to_the_host_and_its_services(
    api: httpx.Client, stack: Stack, canary: int
) -> None:
    api_port = urlsplit(stack.url).port
    redis_ports = [
        urlsplit(url).port
        for url in (stack.settings.queue_redis_url, stack.settings.events_redis_url)
    ]
    # This stack's API and Redis, the machine's Postgres and Redis, the Docker API and the
    # swarm's ports, common services, and the canary.
    ports = [api_port, *redis_ports, 5432, 6379, 2375, 2376, 2377, 7946, 22, 80, 443, canary]
    addresses = sorted(_host_addresses())
    spec = {
        "names": ["example.com", "pypi.org", "host.docker.internal", "gateway.docker.internal"],
        "targets": [[address, port] for address in addresses for port in ports],
    }
    # The control: with a network, the same probe reaches the canary through docker0.
    control = _probe_with_a_network(spec)
    assert control["gateway"] in addresses, control  # docker0, seen from inside
    assert control["tcp"][f"{control['gateway']}:{canary}"] == "connected", control["tcp"]
    assert "eth0" in control["interfaces"]

    task, _ = run_task(
        api,
        python(
            NETWORK_PROBE + "json.dump(report, open('/homerun/output.json', 'w'))\n",
            spec,
            timeout_s=120,
        ),
    )
    assert task["status"] == "succeeded", reason(task)
    report = task["output"]
    assert report["interfaces"] == ["lo"]
    assert report["gateway"] is None
    assert all(v is None for v in report["dns"].values()), report["dns"]
    connected = [t for t, outcome in report["tcp"].items() if outcome == "connected"]
    assert not connected, connected
    assert len(report["tcp"]) == len(addresses) * len(ports)
    assert "sent" not in report["udp"].values(), report["udp"]


def test_root_filesystem_and_placed_files_are_read_only(api: httpx.Client) -> None:
    script = """
for path in /evil /etc/evil /usr/local/bin/evil /var/evil /root/evil /homerun/input.json \
            /homerun/task.sh /etc/passwd; do
    if (echo x >> "$path") 2>/dev/null; then echo "WROTE $path"; else echo "denied $path"; fi
done
for dir in /tmp /homerun; do
    if echo ok > "$dir/probe" 2>/dev/null; then echo "writable $dir"; else echo "BROKEN $dir"; fi
done
"""
    task, _ = run_task(api, shell(script))
    assert task["status"] == "succeeded", reason(task)
    out = lines(task)
    assert not [line for line in out if line.startswith(("WROTE", "BROKEN"))], out
    assert sum(line.startswith("denied") for line in out) == 8
    assert "writable /tmp" in out and "writable /homerun" in out


def not_root_status(api: httpx.Client, fields: str) -> dict[str, str]:
    """Run a task that prints its ids and the ``fields`` (a regex alternation) of
    /proc/self/status; assert it is not root in any id; those status lines by name."""
    script = f"""
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
grep -E '^({fields}):' /proc/self/status
"""
    task, _ = run_task(api, shell(script))
    assert task["status"] == "succeeded", reason(task)
    out = lines(task)
    ids = dict(pair.split("=") for pair in out[0].split())
    assert ids["uid"] != "0" and ids["gid"] != "0", out
    assert "0" not in ids["groups"].split(), out
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out[1:])}


def test_not_root_and_no_capabilities(api: httpx.Client) -> None:
    status = not_root_status(api, "CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"] == "1"


def test_setuid_is_refused(api: httpx.Client) -> None:
    code = """
import json, os
report = {}
try:
    os.setuid(0)
    report["setuid"] = "became root"
except PermissionError:
    report["setuid"] = "denied"
report["euid"] = os.geteuid()
json.dump(report, open("/homerun/output.json", "w"))
"""
    task, _ = run_task(api, python(code, timeout_s=30))
    assert task["status"] == "succeeded", reason(task)
    assert task["output"]["setuid"] == "denied"
    assert task["output"]["euid"] != 0


def test_no_docker_socket(api: httpx.Client) -> None:
    code = """
import json, os, socket
report = {}
for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
             "/var/run/docker/containerd/containerd.sock"):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            report[path] = "connected"
        except OSError as exc:
            report[path] = type(exc).__name__
report["mounts"] = [l for l in open("/proc/self/mountinfo") if "sock" in l]
json.dump(report, open("/homerun/output.json", "w"))
"""
    task, _ = run_task(api, python(code, timeout_s=30))
    assert task["status"] == "succeeded", reason(task)
    report = task["output"]
    assert report.pop("mounts") == []
    assert set(report.values()) == {"FileNotFoundError"}, report


def test_the_runner_reaches_docker_only_through_the_guard(stack: Stack, api: httpx.Client) -> None:
    # As deployed: the suite's runner holds the guard's socket, never the engine's.
    assert stack.settings.docker_url == f"unix://{stack.settings.guard_socket}"
    task, _ = run_task(api, python("print('through the guard')", timeout_s=30))
    assert task["status"] == "succeeded", reason(task)
    guard = stack.processes["guard"]
    assert guard.alive
    assert f"guarding unix:///var/run/docker.sock on {stack.settings.guard_socket}" in (
        guard.output()
    )


# x86_64 numbers: the task images are amd64, as the engine is.
SYSCALL_PROBE = """
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
probes = {
    # io_uring_setup(1, NULL): EFAULT if the kernel got as far as reading the params.
    "io_uring_setup": (425, 1, 0),
    "io_uring_enter": (426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": (427, -1, 0, 0, 0),
    "unshare_newuser": (272, CLONE_NEWUSER),
    # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0); add_key for a new key.
    "keyctl": (250, 0, -3, 0),
    "add_key": (248, b"user", b"homerun", b"x", 1, -3),
}
report = {}
for name, (number, *args) in probes.items():
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    report[name] = "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
json.dump(report, open("/homerun/output.json", "w"))
"""


def test_io_uring_is_refused_and_the_default_seccomp_refusals_remain(api: httpx.Client) -> None:
    task, _ = run_task(api, python(SYSCALL_PROBE, timeout_s=30))
    assert task["status"] == "succeeded", reason(task)
    report = task["output"]
    # Refused by the filter (EPERM) before the kernel looks at an argument (EFAULT, EBADF,
    # EINVAL: what the allowed calls answer to these arguments).
    assert report["io_uring_setup"] == "EPERM", report
    assert report["io_uring_enter"] == "EPERM", report
    assert report["io_uring_register"] == "EPERM", report
    # The engine's default protections are still in force: a custom profile replaces the
    # default, so these would succeed under a profile that only listed io_uring.
    assert report["unshare_newuser"] == "EPERM", report
    assert report["keyctl"] == "EPERM", report
    assert report["add_key"] == "EPERM", report


INOTIFY_HOG = """
import ctypes, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
held, error = [], None
while len(held) < 10_000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        error = os.strerror(ctypes.get_errno())
        break
    held.append(fd)
report = {"uid": os.getuid(), "held": len(held), "error": error}
with open("/homerun/output.json", "w") as out:
    json.dump(report, out)
time.sleep(120)  # held until the test cancels the job (a cancelled task keeps no output)
"""
INOTIFY_ONE = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
error = None if fd >= 0 else os.strerror(ctypes.get_errno())
report = {"uid": os.getuid(), "gid": os.getgid(), "error": error}
json.dump(report, open("/homerun/output.json", "w"))
"""


def test_one_tokens_task_cannot_use_up_another_tokens_per_uid_limits(stack: Stack) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    token_ids, clients = [], []
    for name in ("hog", "neighbour"):
        token_id, plaintext = new_token(stack.settings.database_url, name)
        token_ids.append(token_id)
        clients.append(
            httpx.Client(
                base_url=stack.url, headers={"Authorization": f"Bearer {plaintext}"}, timeout=30
            )
        )
    hog, neighbour = clients
    # Token A's task opens inotify instances until the kernel refuses, and holds them.
    hog_job = submit(hog, python(INOTIFY_HOG, name="hog", timeout_s=120, max_attempts=1))
    try:
        hog_task = task_detail(hog, hog_job, "hog")["id"]
        # It writes its output file once it holds all it could get: read it on the host.
        report = workspace.attempt_dir(stack.settings.work_dir, stack.instance, hog_task, 1)

        def holding() -> dict[str, Any]:
            found: dict[str, Any] = json.loads((report / "output.json").read_text())
            return found

        hogged = wait_for(holding, timeout=60, interval=0.1, message="the hog to hold instances")
        assert hogged["error"] == "Too many open files", hogged
        assert 0 < hogged["held"] <= limit, hogged
        # Token B's task, meanwhile, still gets one; and so it would without the hog.
        probe, _ = run_task(neighbour, python(INOTIFY_ONE, timeout_s=30))
        assert probe["status"] == "succeeded", reason(probe)
        assert probe["output"]["error"] is None, probe["output"]
        hog.post(f"/v1/jobs/{hog_job}/cancel").raise_for_status()
        assert wait_job(hog, hog_job)["status"] == "cancelled"
        # Another task of token A runs as A's uid again; B's is another uid, and neither
        # is root, nobody or a host account's.
        again, _ = run_task(hog, python(INOTIFY_ONE, timeout_s=30))
        uids = [hogged["uid"], again["output"]["uid"], probe["output"]["uid"]]
        assert uids[0] == uids[1] == identity.task_uid(token_ids[0]), uids
        assert uids[2] == probe["output"]["gid"] == identity.task_uid(token_ids[1]), uids
        assert uids[0] != uids[2] and min(uids) >= identity.FIRST_UID, uids
    finally:
        hog.post(f"/v1/jobs/{hog_job}/cancel")  # a no-op once it ended
        for client in clients:
            client.close()


# Built at run time from two halves, so the searching script does not contain it verbatim.
SECRET_HALVES = ("homerun-hostile", "-secret-7f3a9c")
SEARCH = f"""
secret="$(printf '%s%s' '{SECRET_HALVES[0]}' '{SECRET_HALVES[1]}')"
if grep -rqsF "$secret" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; then
    echo FOUND
else
    echo "not found"
fi
# Globs, not ls: they read the directories without stat, which gVisor's Debian build answers
# with EINVAL to coreutils' statx (test_hostile_runsc.py).
n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo "processes=$n"
for f in /homerun/* /tmp/*; do printf '%s ' "${{f##*/}}"; done; echo
"""
# The planter searches too, right after planting: the control that shows the search finds it.
PLANT = f"""
secret="$(printf '%s%s' '{SECRET_HALVES[0]}' '{SECRET_HALVES[1]}')"
echo "$secret" > /homerun/secret.txt
echo "$secret" > /tmp/secret.txt
{SEARCH}
sleep 6
"""


def test_another_tasks_files_and_processes_are_invisible(api: httpx.Client) -> None:
    # "search" runs beside "plant" (the runner runs 4 at once); "after" runs once it ended.
    job_id = submit(
        api,
        {"name": "plant", "type": "shell", "payload": {"script": PLANT}},
        {"name": "search", "type": "shell", "payload": {"script": "sleep 2\n" + SEARCH}},
        {"name": "after", "type": "shell", "payload": {"script": SEARCH}, "depends_on": ["plant"]},
    )
    job = wait_job(api, job_id, timeout=90)
    assert job["status"] == "succeeded", job
    plant = task_detail(api, job_id, "plant")
    assert lines(plant)[0] == "FOUND", lines(plant)
    assert "secret.txt" in lines(plant)[2]
    for name in ("search", "after"):
        task = task_detail(api, job_id, name)
        out = lines(task)
        assert out[0] == "not found", (name, out)
        # Its own shell, ls/grep at most: never the other task's sleep.
        assert int(out[1].removeprefix("processes=")) <= 4, (name, out)
        assert "secret.txt" not in out[2], (name, out)
    # The searcher really looked (2 s after it was claimed) while the planter was alive.
    search = task_detail(api, job_id, "search")
    looked = datetime.fromisoformat(search["started_at"]) + timedelta(seconds=2)
    assert looked < datetime.fromisoformat(plant["finished_at"]), (search, plant)


# --- and the runner is still fine -----------------------------------------------------------


# --- hostile output -----------------------------------------------------------------------


def test_output_nested_960_deep_fails_the_task_and_reads_still_answer(
    api: httpx.Client,
) -> None:
    # Deep enough to pass the runner's parser, too deep for the API's own stack to read
    # back: before the bound, every GET of the job answered 500, forever.
    code = 'open("/homerun/output.json", "w").write("[" * 960 + "]" * 960)'
    job_id = submit(api, {"name": "t", "max_attempts": 1, **python(code)})

    def finished() -> dict[str, Any] | None:
        r = api.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    job = wait_for(finished, timeout=60, interval=0.1, message=job_id)
    assert job["status"] == "failed", job
    task = task_detail(api, job_id, "t")
    assert task["status"] == "failed" and task["output"] is None, task
    assert len(task["attempts"]) == 1, task["attempts"]  # max_attempts 1: never re-run as lost
    last = task["attempts"][-1]
    assert last["failure_kind"] == "output", last  # never retried: the same bytes again
    assert reason(task) == f"bad output: it nests more than {MAX_JSON_DEPTH} arrays or objects deep"
    assert api.get("/v1/jobs").status_code == 200


def test_the_runner_still_runs_a_normal_task(api: httpx.Client, stack: Stack) -> None:
    task, _ = run_task(api, shell("echo '{\"ok\": true}' > /homerun/output.json; echo done"))
    assert task["status"] == "succeeded", reason(task)
    assert task["output"] == {"ok": True}
    assert lines(task) == ["done"]
    assert vm_kib(stack.processes["runner"].proc.pid, "VmRSS") < 200 * 1024
