"""The per-attempt workspace: what is written where, and which paths a spec may not use."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from plugins.tasktypes import PayloadError
from runners import workspace
from runners.containers import instance_name


def test_prepare_writes_payload_inputs_files_and_an_empty_output(tmp_path: Path) -> None:
    root = workspace.attempt_dir(str(tmp_path), "inst", "task-1", 2)
    space = workspace.prepare(
        root,
        payload={"a": 1},
        inputs={"up": {"v": 2}},
        files={"/homerun/task.sh": b"echo hi", "/etc/conf": b"c"},
    )
    assert root == tmp_path / "inst" / "task-1.2"
    assert set(space.readonly) == {"/homerun/input.json", "/homerun/task.sh", "/etc/conf"}
    assert json.loads(Path(space.readonly["/homerun/input.json"]).read_text()) == {"a": 1}
    assert Path(space.readonly["/homerun/task.sh"]).read_bytes() == b"echo hi"
    assert space.inputs_dir is not None
    assert json.loads((space.inputs_dir / "up.json").read_text()) == {"v": 2}
    assert space.output_file.stat().st_size == 0
    assert stat.S_IMODE(space.output_file.stat().st_mode) == 0o666
    assert space.read_output(100) == (None, 0)
    space.output_file.write_bytes(b"[1]")
    assert space.read_output(100) == (b"[1]", 3)
    assert space.read_output(2) == (None, 3)
    assert workspace.leftovers(str(tmp_path), "inst") == [("task-1", 2, root)]
    workspace.remove(root)
    assert workspace.leftovers(str(tmp_path), "inst") == []


def test_a_spec_file_may_replace_input_json(tmp_path: Path) -> None:
    space = workspace.prepare(
        tmp_path / "a", payload={"a": 1}, inputs={}, files={"/homerun/input.json": b"[2]"}
    )
    assert Path(space.readonly["/homerun/input.json"]).read_bytes() == b"[2]"


@pytest.mark.parametrize(
    "path",
    [
        "/homerun",
        "/homerun/output.json",
        "/homerun/inputs",
        "/homerun/inputs/a.json",
        "/proc/self",
        "/sys/x",
        "/dev/null",
        "relative",
        "/a/../b",
        "/a//b",
    ],
)
def test_reserved_or_malformed_paths_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(PayloadError):
        workspace.prepare(tmp_path / "a", payload={}, inputs={}, files={path: b""})


def test_the_instance_name_ignores_the_password() -> None:
    assert instance_name("mine", "postgresql://x") == "mine"
    one = instance_name("", "postgresql://u:one@db:5432/homerun")
    assert one == instance_name("", "postgresql://u:two@db:5432/homerun")
    assert one != instance_name("", "postgresql://u@db:5432/other")
