"""Both Redis of the deployed stack refuse whoever does not hold the password (issue 12, 15).

Before, anything on the data network could rewrite the queue or inject events for any
token: Redis ran without a password and with protected mode off.
"""

from __future__ import annotations

import docker

from tests.e2e.conftest import ROOT, Stack, running_containers

# Run inside the notifier: a process on the data network, as an attacker there would be.
# It speaks RESP by hand, without any password, to both Redis.
_PROBE = """
import socket
for host in ("redis-queue", "redis-events"):
    with socket.create_connection((host, 6379), timeout=5) as s:
        s.sendall(b"*3\\r\\n$3\\r\\nSET\\r\\n$5\\r\\nowned\\r\\n$1\\r\\n1\\r\\n")
        print(host, s.recv(200).decode().strip())
"""


def test_a_client_without_the_password_is_refused_by_both_redis(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    (notifier, *_) = running_containers(docker_client, stack.service("notifier"))
    result = docker_client.containers.get(notifier).exec_run(["python3", "-c", _PROBE])
    assert result.exit_code == 0, result.output
    lines = result.output.decode().splitlines()
    assert lines == [
        "redis-queue -NOAUTH Authentication required.",
        "redis-events -NOAUTH Authentication required.",
    ]


def test_the_password_is_in_no_container_config(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    # The value arrives as a Swarm secret file; neither the Redis command line nor any
    # service's environment carries it.
    secrets = ROOT / ".homerun" / "stacks" / stack.name / "secrets"
    password = (secrets / "redis-password").read_text().strip()
    for key in ("redis-queue", "redis-events", "api", "runner", "notifier"):
        for cid in running_containers(docker_client, stack.service(key)):
            assert password not in str(docker_client.api.inspect_container(cid)), key
            top = docker_client.api.top(cid, ps_args="-eo pid,args")
            assert password not in str(top), key
