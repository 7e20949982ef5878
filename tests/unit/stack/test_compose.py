"""`python -m stack.compose`: the compose file for `docker stack deploy`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import compose
from stack.model import EndpointMode, PublishMode
from stack.topology import SECRET_KEYS, SERVICE_KEYS, StackConfig, build_topology

ROOT = Path(__file__).resolve().parents[3]


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "compose.yml"
    rc = compose.main(
        [
            *args,
            "--secrets-dir",
            str(tmp_path / "secrets"),
            "--config-dir",
            str(tmp_path / "configs"),
            "-o",
            str(out),
        ]
    )
    text = out.read_text() if out.exists() else ""
    return rc, (yaml.safe_load(text) if text else {}), text


def test_the_cli_prints_a_compose_file_with_named_objects(tmp_path):
    # The documented invocation, as scripts run it: from the repo root, to stdout.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stack.compose",
            "--stack",
            "hrcli",
            "--secrets-dir",
            str(tmp_path / "s"),
            "--config-dir",
            str(tmp_path / "c"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    doc = yaml.safe_load(result.stdout)
    assert doc["version"] == "3.8"
    assert list(doc["services"]) == list(SERVICE_KEYS)
    for section in ("networks", "secrets", "configs", "volumes"):
        assert all(v["name"].startswith("hrcli_") for v in doc[section].values()), section
    assert doc["networks"]["data"]["internal"] is True
    assert "endpoint_mode=vip publish_mode=ingress" in result.stderr


def test_secret_files_are_generated_once_private_and_never_inlined(tmp_path):
    rc, doc, text = _run(tmp_path)
    assert rc == 0
    files = {key: Path(s["file"]) for key, s in doc["secrets"].items()}
    # Every secret but the stack's own registry's and the egress proxy's (neither here).
    assert sorted(files) == sorted(set(SECRET_KEYS) - {"registry-password", "egress-proxy-key"})
    assert {"admin-token", "db-password", "redis-password", "replication-password"} <= set(files)
    values = {}
    for key, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values[key] = path.read_text()
        assert len(values[key]) >= 32
        assert values[key] not in text
    assert len(set(values.values())) == len(files)
    # A second run keeps them: the database was initialised with these passwords.
    assert _run(tmp_path)[0] == 0
    assert {k: p.read_text() for k, p in files.items()} == values


def test_missing_secrets_can_be_refused(tmp_path, capsys):
    rc, _, _ = _run(tmp_path, "--no-generate-secrets")
    assert rc == 1
    assert "missing" in capsys.readouterr().err


def test_auto_modes_use_the_preflight_and_explicit_flags_win(tmp_path, monkeypatch):
    monkeypatch.setattr(compose, "detect_modes", lambda: (EndpointMode.DNSRR, PublishMode.HOST))
    _, doc, _ = _run(tmp_path, "--auto-modes")
    assert doc["services"]["api"]["deploy"]["endpoint_mode"] == "dnsrr"
    assert doc["services"]["edge"]["ports"][0]["mode"] == "host"
    _, doc, _ = _run(tmp_path, "--auto-modes", "--endpoint-mode", "vip")
    assert doc["services"]["api"]["deploy"]["endpoint_mode"] == "vip"
    assert doc["services"]["edge"]["ports"][0]["mode"] == "host"


def test_print_modes(monkeypatch, capsys):
    monkeypatch.setattr(compose, "detect_modes", lambda: (EndpointMode.DNSRR, PublishMode.HOST))
    assert compose.main(["--print-modes"]) == 0
    assert capsys.readouterr().out == "dnsrr host\n"


def test_invalid_combinations_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path, "--endpoint-mode", "dnsrr", "--publish-mode", "ingress")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        _run(tmp_path, "--resources", "api=lots")


def test_dollars_reach_the_container_unchanged(tmp_path):
    topology = build_topology(StackConfig(allowed_images=("img$HOME",)))
    doc = compose.render(
        topology,
        {s.key: tmp_path for s in topology.secrets},
        {c.key: tmp_path for c in topology.configs},
    )
    assert doc["services"]["runner"]["environment"]["HOMERUN_ALLOWED_IMAGES"] == "img$$HOME"


def test_allowed_images_reach_the_api_and_the_runner(tmp_path):
    rc, doc, _ = _run(tmp_path, "--allowed-images", "alpine:*, team/tool:1")
    assert rc == 0
    for key in ("api", "runner"):
        assert doc["services"][key]["environment"]["HOMERUN_ALLOWED_IMAGES"] == (
            "alpine:*,team/tool:1"
        )


def test_config_files_are_rewritten_only_when_changed(tmp_path):
    topology = build_topology(StackConfig())
    (path,) = compose.write_configs(topology, tmp_path).values()
    assert path.read_text() == topology.config("edge-conf").data
    os.utime(path, (1, 1))
    compose.write_configs(topology, tmp_path)
    assert path.stat().st_mtime == 1


# --------------------------------------------------------------------------- own registry

HOST_MODES = ("--endpoint-mode", "dnsrr", "--publish-mode", "host")


def test_run_registry_with_the_routing_mesh(tmp_path):
    rc, doc, _ = _run(tmp_path, "--run-registry", "--registry-port", "5055")
    assert rc == 0
    assert list(doc["services"]) == ["registry", *SERVICE_KEYS]
    registry = doc["services"]["registry"]
    assert registry["image"] == "registry:2"
    assert "command" not in registry  # the image's own
    assert registry["ports"] == [
        {"target": 5000, "published": 5055, "protocol": "tcp", "mode": "ingress"}
    ]
    assert registry["networks"] == {"registry": None}
    assert registry["volumes"][0]["source"] == "registry"
    assert doc["networks"]["registry"]["internal"] is False
    assert doc["volumes"]["registry"] == {"name": "homerun_registry"}
    assert doc["services"]["api"]["image"] == "127.0.0.1:5055/homerun/app:0.1.0"
    env = doc["services"]["runner"]["environment"]
    assert env["HOMERUN_TASK_IMAGE_REGISTRY"] == "127.0.0.1:5055"


def test_run_registry_with_host_mode_ports(tmp_path):
    rc, doc, _ = _run(
        tmp_path,
        *HOST_MODES,
        "--run-registry",
        "--registry-image",
        "mirror.example/registry:2",
        "--registry-proxy-image",
        "mirror.example/haproxy:2.6",
    )
    assert rc == 0
    assert list(doc["services"])[:2] == ["registry", "registry-proxy"]
    registry, proxy = doc["services"]["registry"], doc["services"]["registry-proxy"]
    assert "ports" not in registry
    assert registry["image"] == "mirror.example/registry:2"
    assert proxy["image"] == "mirror.example/haproxy:2.6"
    assert proxy["deploy"]["mode"] == "global"
    assert proxy["ports"] == [
        {"target": 5000, "published": 5000, "protocol": "tcp", "mode": "host"}
    ]
    (config,) = proxy["configs"]
    assert proxy["command"] == ["haproxy", "-W", "-db", "-f", config["target"]]
    text = Path(doc["configs"][config["source"]]["file"]).read_text()
    assert "mode tcp" in text and "registry:5000" in text


def test_registry_only_renders_the_registry_part_as_the_full_file_does(tmp_path):
    args = (*HOST_MODES, "--stack", "hrpart", "--run-registry", "--placement-labels")
    rc, full, _ = _run(tmp_path / "full", *args)
    assert rc == 0
    # The part needs the registry's htpasswd, the same secret as the full file's (same
    # secrets directory: make up renders both from one).
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "secrets").symlink_to(tmp_path / "full" / "secrets")
    rc, part, _ = _run(tmp_path / "part", *args, "--registry-only", "--no-generate-secrets")
    assert rc == 0
    assert list(part["services"]) == ["registry", "registry-proxy"]
    assert sorted(part) == ["configs", "networks", "secrets", "services", "version", "volumes"]
    assert list(part["secrets"]) == ["registry-htpasswd"]
    assert (
        part["secrets"]["registry-htpasswd"]["name"] == full["secrets"]["registry-htpasswd"]["name"]
    )
    assert list(part["networks"]) == ["registry"]
    assert list(part["volumes"]) == ["registry"]
    assert list(part["configs"]) == ["registry-proxy-conf"]
    for key in part["services"]:
        assert part["services"][key] == full["services"][key], key
    for section in ("networks", "volumes"):
        for key, value in part[section].items():
            assert value == full[section][key], (section, key)
    # Same config object: same name, same content (each run writes its own copy).
    part_conf, full_conf = (
        part["configs"]["registry-proxy-conf"],
        full["configs"]["registry-proxy-conf"],
    )
    assert part_conf["name"] == full_conf["name"]
    assert Path(part_conf["file"]).read_text() == Path(full_conf["file"]).read_text()


def test_registry_only_with_the_routing_mesh_is_the_registry_alone(tmp_path):
    rc, part, _ = _run(tmp_path, "--run-registry", "--registry-only")
    assert rc == 0
    assert list(part["services"]) == ["registry"]
    assert "configs" not in part and list(part["secrets"]) == ["registry-htpasswd"]


@pytest.mark.parametrize(
    "args",
    [
        ("--registry-only",),
        ("--run-registry", "--registry", "reg.example:5000"),
        ("--run-registry", "--registry-port", "8000"),
        ("--registry-port", "70000"),
    ],
)
def test_registry_flags_that_contradict_each_other_are_usage_errors(tmp_path, args):
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path, *args)
    assert exc.value.code == 2


def test_the_registry_flags_reach_the_config():
    from stack.compose import _parser, config_from_args

    args = _parser().parse_args(
        [
            "--run-registry",
            "--registry-port",
            "5099",
            "--registry-image",
            "r:1",
            "--registry-proxy-image",
            "h:1",
            *HOST_MODES,
        ]
    )
    config = config_from_args(args)
    assert (
        config.run_registry,
        config.registry_port,
        config.registry_image,
        config.registry_proxy_image,
    ) == (True, 5099, "r:1", "h:1")
    assert config_from_args(_parser().parse_args([])) == StackConfig()
