"""A map job through the CLI, as a user runs it: ``submit --watch`` shows the map's
instances as counts, ``get`` the map task's counts, ``instances`` each instance."""

from __future__ import annotations

import json

import pytest

from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration

SQUARE = (
    "i=$(sed -n 's/.*\"index\": *\\([0-9]*\\).*/\\1/p' /homerun/inputs/_map.json)\n"
    'if [ "$i" = 2 ] && [ "$HOMERUN_ATTEMPT" = 1 ]; then exit 3; fi\n'
    "echo $((i * i)) > /homerun/output.json"
)
JOB = {
    "name": "fan",
    "tasks": [
        {
            "name": "sq",
            "type": "shell",
            "payload": {"script": SQUARE},
            "map": {"over_items": ["a", "b", "c", "d", "e"], "max_parallel": 2},
        },
        {
            "name": "sum",
            "type": "shell",
            "payload": {"script": "cat /homerun/inputs/sq.json > /homerun/output.json"},
            "depends_on": ["sq"],
        },
    ],
}


async def test_a_map_job_watched_read_and_listed(system: System) -> None:
    path = system.tmp / "job.json"
    path.write_text(json.dumps(JOB))
    run = run_cli(system, "submit", "-f", str(path), "--watch", "--no-logs")
    assert run.code == 0, f"{run.text}\n{run.stderr}\n{system.logs()}"
    out = run.text
    job_id = out[0].removeprefix("submitted job ")
    assert "sq: mapped over 5 item(s), 2 at once" in out, out
    assert any(line.startswith("sq[2]: attempt 1 failed") for line in out), out
    assert not any(line.startswith("sq[0]") for line in out), out  # no line per success
    assert "  [2/2] ✓ sq succeeded (5/5 ✓5) · ✓ sum succeeded" in out, out

    got = run_cli(system, "get", job_id)
    assert got.code == 0 and "    map: 5 instance(s): succeeded 5" in got.text, got.text
    listed = run_cli(system, "instances", job_id, "sq", "--limit", "3")
    assert listed.code == 0, listed.stderr
    assert [line.split()[0] for line in listed.text[:3]] == ["sq[0]", "sq[1]", "sq[2]"]
    assert listed.text[3].startswith("  more: --cursor ")
    with system.client() as client:  # closed, or its socket outlives the test
        final = client.get_job(job_id)
    sum_task = next(t for t in final.tasks if t.name == "sum")
    assert sum_task.output == [0, 1, 4, 9, 16]
