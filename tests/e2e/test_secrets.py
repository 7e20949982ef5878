"""A secret through the deployed stack: the keyring a Swarm secret, the file on the node's
tmpfs for the task's uid only, its value redacted from what comes back, and in no service's
or task container's configuration."""

from __future__ import annotations

import json
import uuid

import docker

from tests.e2e.conftest import Stack, submit, wait_job

SCRIPT = (
    "stat -c 'mode=%a uid=%u' /run/secrets/deploy-key\n"
    "cat /run/secrets/deploy-key; echo\n"
    "cat /run/secrets/deploy-key | base64\n"
    'printf \'{"k": "%s"}\' "$(cat /run/secrets/deploy-key)" > /homerun/output.json\n'
)


def test_a_secret_reaches_its_task_as_a_file_and_nothing_else(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    value = f"e2e-{uuid.uuid4().hex}"
    with stack.http() as http:
        put = http.put("/v1/secrets/deploy-key", json={"value": value})
        assert put.status_code == 201, put.text
        job = submit(
            http,
            {
                "tasks": [
                    {
                        "name": "reader",
                        "type": "shell",
                        "secrets": ["deploy-key"],
                        "payload": {"script": SCRIPT},
                    }
                ]
            },
        )
        done = wait_job(http, job["id"])
        assert done["status"] == "succeeded", done
        task = http.get(f"/v1/jobs/{job['id']}/tasks/{done['tasks'][0]['id']}").json()
    stdout = task["result"]["stdout"]
    assert "mode=400 uid=" in stdout and "uid=0" not in stdout, stdout
    assert stdout.count("[redacted:deploy-key]") == 2, stdout
    assert task["output"] == {"k": "[redacted:deploy-key]"}
    assert value not in json.dumps(task)
    # No service of the stack carries it in its spec (env, labels, mounts).
    for service in docker_client.services.list(filters={"name": stack.name}):
        assert value not in json.dumps(service.attrs), service.name
