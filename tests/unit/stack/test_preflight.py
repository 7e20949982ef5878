"""scripts/stackctl.py preflight, against a fake engine: a deploy from a machine whose secret
files are not the running stack's (a lost .homerun/, a second checkout, an edited file) is
stopped before anything changes; the same files, or a stack not running, go ahead."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stack import secretfiles
from stack.topology import StackConfig, build_topology

STACK = "hrpre"


def _stackctl() -> Any:
    path = Path(__file__).parents[3] / "scripts" / "stackctl.py"
    spec = importlib.util.spec_from_file_location("stackctl_preflight", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _engine(secret_names: list[str]) -> Any:
    """An engine running one service of the stack that uses ``secret_names``."""
    spec = {
        "TaskTemplate": {"ContainerSpec": {"Secrets": [{"SecretName": n} for n in secret_names]}}
    }
    service = SimpleNamespace(name=f"{STACK}_api", attrs={"Spec": spec})
    return SimpleNamespace(services=SimpleNamespace(list=lambda **_: [service]))


@pytest.fixture
def deployed(tmp_path: Path) -> tuple[Path, list[str]]:
    """This machine's secret files and the names a deploy from them gave the secrets."""
    directory = tmp_path / "secrets"
    secretfiles.ensure(directory, generate=True)
    key = secretfiles.read_naming_key(directory)
    assert key is not None
    topology = secretfiles.named(
        build_topology(StackConfig(stack=STACK)), secretfiles.read(directory), key
    )
    return directory, [s.name for s in topology.secrets]


def test_the_same_files_or_no_stack_go_ahead(
    deployed: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stackctl = _stackctl()
    directory, names = deployed
    monkeypatch.setattr(stackctl, "_client", lambda: _engine(names))
    assert stackctl.preflight(STACK, directory, None) == []
    monkeypatch.setattr(stackctl, "_client", lambda: _engine([]))
    assert stackctl.preflight(STACK, directory.parent / "lost", None) == []


def test_lost_or_other_files_stop(
    deployed: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stackctl = _stackctl()
    directory, names = deployed
    monkeypatch.setattr(stackctl, "_client", lambda: _engine(names))
    lost = stackctl.preflight(STACK, directory.parent / "lost", None)
    assert len(lost) == len(names) and all("is missing" in p for p in lost)
    (directory / "admin-token").write_text("edited by hand")
    (edited,) = stackctl.preflight(STACK, directory, None)
    assert "admin-token holds another value" in edited
    # ...unless that key is the one being rotated (make rotate).
    assert stackctl.preflight(STACK, directory, "admin-token") == []
