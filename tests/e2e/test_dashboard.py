"""The dashboard on the deployed stack (issue 15): served under /ui/ by every API replica,
through the edge, one sign-in good on all of them (their session key is one Swarm secret).

The browser suite (tests/integration/ui) drives the pages themselves; this checks what only
the stack has: the edge in front, two replicas behind it, the key they share.
"""

from __future__ import annotations

import json
import re

import docker
import httpx

from stack.topology import APP_PORT
from tests.e2e.conftest import Stack, running_containers

# Run inside one API replica: its own /ui/jobs with the cookie the edge's sign-in gave.
_OWN_PAGE = """
import json, sys, urllib.request
request = urllib.request.Request(
    "http://127.0.0.1:%d/ui/jobs", headers={"Cookie": sys.argv[1]}
)
with urllib.request.urlopen(request, timeout=10) as response:
    body = response.read().decode()
    print(json.dumps({"status": response.status, "jobs": "<h1>Jobs</h1>" in body}))
"""


def _sign_in(http: httpx.Client, token: str) -> None:
    page = http.get("/ui/signin")
    assert page.status_code == 200, page.text
    assert 'type="password"' in page.text
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    done = http.post(
        "/ui/signin", data={"csrf": match.group(1), "token": token, "next": "/ui/jobs"}
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/jobs"


def test_one_sign_in_through_the_edge_is_good_on_every_api_replica(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        _sign_in(http, stack.token)
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        # Through the edge, on whichever replica it picks, again and again.
        for _ in range(6):
            jobs = http.get("/ui/jobs")
            assert jobs.status_code == 200, jobs.text
            assert "<h1>Jobs</h1>" in jobs.text
            assert "script-src 'self'" in jobs.headers["content-security-policy"]
        assert http.get("/ui/static/ui.js").status_code == 200
    # On each replica by itself: the cookie one of them signed is good on the other.
    replicas = running_containers(docker_client, stack.service("api"))
    assert len(replicas) == 2, replicas
    for cid in replicas:
        result = docker_client.containers.get(cid).exec_run(
            ["python3", "-c", _OWN_PAGE % APP_PORT, cookie]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"status": 200, "jobs": True}, cid


def test_without_a_session_the_edge_serves_the_sign_in_page_only(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        jobs = http.get("/ui/jobs")
        assert jobs.status_code == 303, jobs.text
        assert jobs.headers["location"].startswith("/ui/signin")
        # A made-up token is refused at the form, with the form again.
        page = http.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        refused = http.post("/ui/signin", data={"csrf": csrf.group(1), "token": "made-up"})
        assert refused.status_code == 401
        assert 'type="password"' in refused.text
