"""A file out of one task and into the next, through the deployed stack: task A writes it
under /homerun/artifacts, task B (on whichever runner) reads it under /homerun/inputs/A/,
and the client downloads A's artifact through the edge, whole and by Range, with the
sha256 the API lists."""

from __future__ import annotations

import hashlib

from tests.e2e.conftest import Stack, submit, wait_job

SIZE = 5 * 1024 * 1024 + 7  # past several 256 KiB chunks, not a multiple of one
PIPELINE = {
    "name": "e2e-artifacts",
    "tasks": [
        {
            "name": "make",
            "type": "shell",
            "payload": {
                "script": f"mkdir -p /homerun/artifacts/out && head -c {SIZE} /dev/urandom"
                " > /homerun/artifacts/out/blob.bin && sha256sum /homerun/artifacts/out/blob.bin"
            },
        },
        {
            "name": "use",
            "type": "shell",
            "depends_on": ["make"],
            "payload": {
                "script": "sha256sum /homerun/inputs/make/out/blob.bin | cut -d' ' -f1"
                ' | sed \'s/.*/{"sha256": "&"}/\' > /homerun/output.json'
            },
        },
    ],
}


def test_a_file_passes_downstream_and_downloads_by_range_with_its_sha256(stack: Stack) -> None:
    with stack.http(timeout=60.0) as http:
        job = submit(http, PIPELINE)
        final = wait_job(http, job["id"])
        assert final["status"] == "succeeded", final
        tasks = {t["name"]: t for t in final["tasks"]}
        make = tasks["make"]["id"]
        base = f"/v1/jobs/{job['id']}/tasks/{make}/artifacts"
        listed = http.get(base).raise_for_status().json()
        [artifact] = listed["artifacts"]
        assert (artifact["path"], artifact["size"]) == ("out/blob.bin", SIZE)
        # B read exactly the bytes stored.
        assert tasks["use"]["output"] == {"sha256": artifact["sha256"]}

        url = f"{base}/out/blob.bin"
        first = http.get(url, headers={"Range": "bytes=0-999999"})
        assert first.status_code == 206, first.text
        assert first.headers["content-range"] == f"bytes 0-999999/{SIZE}"
        rest = http.get(url, headers={"Range": "bytes=1000000-"})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes 1000000-{SIZE - 1}/{SIZE}"
        joined = first.content + rest.content
        assert len(joined) == SIZE
        assert hashlib.sha256(joined).hexdigest() == artifact["sha256"]
        whole = http.get(url)
        assert whole.status_code == 200 and whole.content == joined
